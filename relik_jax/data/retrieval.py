"""Retriever training data: closed KBs (AIDA titles, relation names + definitions) and DPR samples."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import ml_collections

from relik_jax.data import corpora as datasets
from relik_jax.data import windowing
from relik_jax.retriever.index import Document


@dataclasses.dataclass
class RetrievalSample:
    """One training/eval question: a window text (+ doc topic) and the KB rows of its gold passages."""

    question: str
    doc_topic: str | None
    positives: list[int]
    id: str = ""


def samples_from_dpr(rows: Sequence[dict], kb: Sequence[Document]) -> tuple[list[RetrievalSample], int]:
    """§4.1 DPR rows → samples; gold passages are matched to the KB by `text`. Returns (samples, #unmatched
    gold passages, which are dropped)."""
    row_of = {}
    for i, doc in enumerate(kb):
        row_of.setdefault(doc.text, i)
    samples, missing = [], 0
    for r in rows:
        positives = []
        for ctx in r["positive_ctxs"]:
            if ctx["text"] in row_of:
                positives.append(row_of[ctx["text"]])
            else:
                missing += 1
        if positives:
            samples.append(RetrievalSample(r["question"], r.get("doc_topic") or None, positives, r.get("id", "")))
    return samples, missing


def aida_kb(docs: dict[str, list] | None = None, add_rebel_titles: bool = True) -> list[Document]:
    """The closed AIDA KB: every linked title of the AIDA file (all splits), + the REBEL-sample titles."""
    if docs is None:
        docs = {split: list(datasets.read_aida(split)) for split in ("train", "testa", "testb")}
    titles = {m.label for split in docs.values() for d in split for m in d.mentions if m.label != datasets.NME}
    if add_rebel_titles:
        titles |= {d.topic for d in datasets.read_rebel_sample()}
    return [Document(t, i, {}) for i, t in enumerate(sorted(titles))]


def aida_kb_and_samples(config: ml_collections.ConfigDict) -> tuple[list[Document], dict[str, list]]:
    """Closed KB = every title of the AIDA file (+ REBEL-sample titles) and DPR samples per split."""
    docs = {split: list(datasets.read_aida(split)) for split in ("train", "testa", "testb")}
    kb = aida_kb(docs, config.get("kb_add_rebel_titles", True))
    out: dict[str, list] = {}
    for split, split_docs in docs.items():
        windows = windowing.labelled_windows(
            split_docs, config.window_size, config.window_stride, use_dataset_words=True
        )
        rows = list(windowing.to_dpr(windows, [d.to_dict() for d in kb]))
        samples, missing = samples_from_dpr(rows, kb)
        if missing:
            raise ValueError(f"AIDA {split}: {missing} gold titles are not in the KB")
        out[split] = samples
    return kb, out


def relation_kb_and_samples(config: ml_collections.ConfigDict) -> tuple[list[Document], dict[str, list]]:
    """Relation retrieval (NYT or REBEL sample): KB = relation names (+ definition metadata), label type
    triplet."""
    if config.dataset == "nyt":
        splits = {
            "train": list(datasets.read_nyt(config.get("train_split", "dev"))),
            "test": list(datasets.read_nyt("test")),
        }
        names = sorted(set(datasets.nyt_relation_names().values()))
    elif config.dataset == "rebel":
        docs = list(datasets.read_rebel_sample())
        cut = int(len(docs) * 0.9)  # the sample has no split: last 10% held out
        splits = {"train": docs[:cut], "test": docs[cut:]}
        names = sorted(datasets.read_rebel_relation_counts())
    else:
        raise ValueError(f"unknown relation dataset {config.dataset!r} (expected 'nyt' or 'rebel')")
    definitions = {r.label: r.description for r in datasets.read_wikidata_properties()}
    kb = [Document(n, i, {"definition": definitions.get(n, "")}) for i, n in enumerate(names)]
    out = {}
    for split, docs in splits.items():
        windows = windowing.labelled_windows(
            docs, config.window_size, config.window_stride, use_dataset_words=config.dataset == "nyt"
        )
        rows = list(windowing.to_dpr(windows, [d.to_dict() for d in kb], label_type="triplet"))
        out[split], _ = samples_from_dpr(rows, kb)
    return kb, out
