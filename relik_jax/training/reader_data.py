"""Reader training data: labelled windows with candidates for train / dev / test, per `config.dataset`.

Candidates are every relation (CoNLL04, NYT), the gold labels plus random others (toy, REBEL sample: stand-ins for a
retriever) or a retriever's top-k (AIDA, cached as the reference's windowized JSONL).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import ml_collections
import numpy as np

from relik_jax.data import corpora as datasets
from relik_jax.data import jsonl
from relik_jax.data import toy as toy_data
from relik_jax.data.corpora import LabelledDocument
from relik_jax.data.retrieval import aida_kb
from relik_jax.data.windowing import LabelledWindow, labelled_windows
from relik_jax.retriever.encoder import Retriever, add_candidates, resolve_encoder

SPLITS = ("train", "dev", "test")
AIDA_SPLITS = {"train": "train", "dev": "testa", "test": "testb"}
Splits = dict[str, list[LabelledWindow]]


def document_windows(docs: Sequence[LabelledDocument], config: ml_collections.ConfigDict) -> list[dict]:
    """Windowized rows with labels (§4.3) of `docs` per the config's window size (0 = one per document) / stride."""
    size = config.window_size if config.window_size else None
    return list(labelled_windows(docs, size, config.window_stride, use_dataset_words=config.use_dataset_words))


def split_windows(config: ml_collections.ConfigDict) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """Labelled window rows per split and each split's sorted document `mention_labels` / `relations`: parsed from
    the original files (`data_format` "jsonl", the default) or read from prepared TFDS array_record files
    (`data_format` "tfds", `tfds_data_dir`; relik_jax.data.tfds)."""
    fmt = config.get("data_format", "jsonl")
    if fmt == "tfds":
        from relik_jax.data.tfds import training_windows  # the optional [data] extra

        return training_windows(config)
    if fmt != "jsonl":
        raise ValueError(f"config.data_format={fmt!r}: expected 'jsonl' (parse the original files) or 'tfds'")
    if config.dataset == "rebel":
        raw = datasets.rebel_splits(list(datasets.read_rebel_sample()))
    else:
        reader = datasets.read_conll04 if config.dataset == "conll04" else datasets.read_nyt
        raw = {s: list(reader(config.get(f"{s}_split", s))) for s in SPLITS}
    labels = {s: {"mention_labels": sorted({m.label for d in docs for m in d.mentions}),
                  "relations": sorted({t.relation for d in docs for t in d.triplets})} for s, docs in raw.items()}
    return {s: document_windows(docs, config) for s, docs in raw.items()}, labels


def load_splits(config: ml_collections.ConfigDict) -> Splits:
    """Labelled windows with candidates for train / dev / test, per `config.dataset`."""
    name = config.dataset
    tfds = config.get("data_format", "jsonl") == "tfds"
    if tfds and name not in ("conll04", "nyt", "rebel", "windows"):
        raise ValueError(f"config.data_format='tfds' reads prepared conll04, nyt, rebel or windows data, not {name!r}")
    if name == "toy":
        return toy_splits(config)
    if name in ("conll04", "nyt"):
        return relation_splits(config)
    if name == "rebel":
        return rebel_splits(config)
    if name == "aida":
        return aida_splits(config)
    if name == "windows" and tfds:
        windows, _ = split_windows(config)
        return {s: [LabelledWindow.from_dict(d) for d in rows] for s, rows in windows.items()}
    if name == "windows":  # windowized JSONL files with candidates (e.g. AIDA after a retriever run)
        return {s: [LabelledWindow.from_dict(d) for d in jsonl.read_jsonl(config[f"{s}_windows"])] for s in SPLITS}
    raise ValueError(f"config.dataset={name!r}: expected toy, conll04, nyt, rebel, aida or windows")


def toy_splits(config: ml_collections.ConfigDict) -> Splits:
    """The generated toy world: EL candidates = gold titles + random others (`num_candidates` in all, shuffled);
    RE / cIE: mentions labelled with their entity types, every toy relation a candidate."""
    raw = {s: toy_data.documents(n, config.seed + k, s)
           for k, (s, n) in enumerate([("train", config.toy_train), ("dev", config.toy_eval),
                                       ("test", config.toy_eval)])}
    titles = toy_data.all_titles()
    type_names = sorted({toy_data.entity_type(t) for t in titles})
    if config.task != "el":  # RE / cIE: labels are entity types
        for docs in raw.values():
            for d in docs:
                d.mentions = [dataclasses.replace(m, label=toy_data.entity_type(m.label)) for m in d.mentions]
                d.triplets = [dataclasses.replace(
                    t, subject=dataclasses.replace(t.subject, label=toy_data.entity_type(t.subject.label)),
                    object=dataclasses.replace(t.object, label=toy_data.entity_type(t.object.label)))
                    for t in d.triplets]
    rng = np.random.default_rng(config.seed)
    out = {}
    for split, docs in raw.items():
        rows = []
        for w in document_windows(docs, config):
            if config.task == "el":
                gold = sorted({lab for _, _, lab in w["window_labels"]})
                others = [t for t in titles if t not in gold]
                k = max(0, config.num_candidates - len(gold))
                cands = gold + [others[i] for i in rng.permutation(len(others))[:k]]
                cands = [cands[i] for i in rng.permutation(len(cands))]
                rows.append(LabelledWindow.from_dict(w, span_candidates=cands))
            else:
                rows.append(LabelledWindow.from_dict(
                    w, triplet_candidates=list(toy_data.RELATIONS),
                    span_candidates=type_names if config.get("entity_types") else None))
        out[split] = rows
    return out


def relation_splits(config: ml_collections.ConfigDict) -> Splits:
    """CoNLL04 / NYT: every relation (`config.relations`, else those of all splits) is a candidate; cIE: the
    train split's entity types are the span candidates."""
    windows, labels = split_windows(config)
    relations = list(config.relations) if config.get("relations") else sorted(
        {r for m in labels.values() for r in m["relations"]})
    types = list(labels["train"]["mention_labels"]) if config.get("entity_types") else None
    return {s: [LabelledWindow.from_dict(w, triplet_candidates=relations, span_candidates=types) for w in rows]
            for s, rows in windows.items()}


def rebel_splits(config: ml_collections.ConfigDict) -> Splits:
    """REBEL sample: gold entities / relations plus random others from the sample (no retriever here)."""
    windows, labels = split_windows(config)
    titles = sorted({t for m in labels.values() for t in m["mention_labels"]})
    relations = sorted({r for m in labels.values() for r in m["relations"]})
    rng = np.random.default_rng(config.seed)
    out = {}
    for split, ws in windows.items():
        rows = []
        for w in ws:
            gold_e = sorted({lab for _, _, lab in w["window_labels"]})
            gold_r = sorted({t["relation"] for t in w.get("window_triplet_labels", [])})
            ents = with_negatives(gold_e, titles, config.num_candidates, rng)
            rels = with_negatives(gold_r, relations, config.max_relations, rng)
            rows.append(LabelledWindow.from_dict(w, span_candidates=ents, triplet_candidates=rels))
        out[split] = rows
    return out


def aida_splits(config: ml_collections.ConfigDict) -> Splits:
    """AIDA train / testa / testb windows (`window_size` / `window_stride`, the dataset's words) with the top
    `num_candidates` titles of a retriever as span candidates: `config.retriever` (encoder folder, e.g. a
    `train_retriever` workdir's `encoder/`) over `config.retriever_index` (index folder; "" = an index of the
    closed AIDA KB built here), queries paired with the document topic when `config.use_doc_topics`. With
    `config.candidates_cache` (a folder) the windows with candidates are written there once and read back
    afterwards (`aida_<split>_top<k>.jsonl`, the reference's windowized format)."""
    k = int(config.num_candidates)
    cache = Path(config.get("candidates_cache", "") or "")
    files = {s: cache / f"aida_{a}_top{k}.jsonl" for s, a in AIDA_SPLITS.items()}
    if str(cache) != "." and all(f.is_file() for f in files.values()):
        return {s: [LabelledWindow.from_dict(w) for w in jsonl.read_jsonl(f)] for s, f in files.items()}
    if not config.get("retriever"):
        raise ValueError("config.dataset='aida' needs config.retriever=ENCODER_FOLDER (a retriever encoder, e.g. "
                         "all-MiniLM-L6-v2 or a train_retriever workdir's encoder/) or a config.candidates_cache "
                         "folder holding aida_{train,testa,testb}_top<k>.jsonl")
    index = config.get("retriever_index", "") or None
    retriever = Retriever.from_pretrained(resolve_encoder(config.retriever), index)
    if retriever.index is None:
        retriever.build_index(aida_kb(), progress="Indexing the AIDA KB" if config.verbose else None)
    if str(cache) != ".":
        cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, aida_split in AIDA_SPLITS.items():
        counts: dict[str, int] = {}
        rows = list(add_candidates(retriever, document_windows(list(datasets.read_aida(aida_split)), config), k,
                                   use_doc_topics=bool(config.get("use_doc_topics", True)), recall=counts))
        if config.verbose:
            print(f"AIDA {aida_split}: {len(rows)} windows, gold titles among the top {k}: "
                  f"{counts.get('found', 0)}/{counts.get('gold', 0)}")
        if str(cache) != ".":
            jsonl.write_jsonl(rows, files[split])
        out[split] = [LabelledWindow.from_dict(w) for w in rows]
    return out


def with_negatives(gold: list[str], pool: list[str], k: int, rng: np.random.Generator) -> list[str]:
    """Gold labels plus random others up to k, shuffled (stand-in for retriever candidates)."""
    gold = gold[:k]
    gs = set(gold)
    others = [p for p in pool if p not in gs]
    picks = [others[i] for i in rng.choice(len(others), size=min(k - len(gold), len(others)), replace=False)]
    out = gold + picks
    return [out[i] for i in rng.permutation(len(out))]
