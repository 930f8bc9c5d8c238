"""Inputs of `benchmarks/e2e.py`: texts, candidates and reader specs, from the project's shared data (never timed).

Workloads (the issue's sizes; `--docs N` overrides the document count; NAME-full = NAME with a DeBERTa-v3-base
shaped reader, 12 layers, hidden 768, on `full_docs` documents; the others have 3 layers, hidden 192):
  el       EL, AIDA testb docs 0-39 (520 windows 32/16), K=100 AIDA titles per document (its gold titles + random
           ones, fixed per document): ~1,100 sub-words per window, more than the reader's 1,000, so the candidates
           are split into two patches (995 reader rows, 49-982 sub-words, mean 594) (el-full: doc 4, 8 windows)
  re       RE, NYT test sentences 0-299 (315 windows 64/32, rows of 192-380 sub-words), K=24: every NYT relation
           name (re-full: 20 sentences)
  re13     the same with the first 13 NYT relation names (the issue's "before" measurement)
  cie      closed IE, NYT test sentences 0-99 (105 windows, rows of 379-537 sub-words), 17 relation names + 40
           entity types (Wikidata classes), use_nme (cie-full: 10 sentences)

Reader specs (built by `reference/e2e_readers.py` under the reference venv): DeBERTa-v3-style backbone (SMALL or BASE
below), a 600-piece spm trained on AIDA train + NYT dev text, heads calibrated on AIDA testa / NYT dev documents to
their gold mention rate.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from relik_jax import paths
from relik_jax.data.corpora import read_aida, read_nyt
from relik_jax.text.windows import WindowSplitter

NME = "--NME--"

# Real Wikidata classes (labels of frequent `instance of` values) used as the cIE entity-type candidates.
ENTITY_TYPES = [
    "human", "city", "country", "sovereign state", "organization", "business", "political party", "university",
    "sports team", "association football club", "newspaper", "government agency", "film", "book",
    "musical group", "river", "mountain", "island", "state of the United States", "county", "village",
    "airport", "military unit", "religious organization", "ethnic group", "language", "award", "war",
    "election", "sports league", "stadium", "building", "museum", "school", "hospital", "brand", "product",
    "occupation", "television series", "album",
]

# Backbone shapes. init_range: weights large enough to mix the tokens, small enough to keep fp32 from chaos (at 12
# layers, 0.2 makes the reference's own fp32 and fp64 outputs differ by 0.3: see reference/e2e_readers.py).
SMALL = {"layers": 3, "hidden": 192, "heads": 3, "intermediate": 768, "linears": 192, "init_range": 0.2}
BASE = {"layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072, "linears": 512,  # DeBERTa-v3-base shape
        "init_range": 0.02}
SPM_VOCAB = 600  # a small vocabulary (long rows: AIDA titles ~8.7 pieces): K=100 EL rows need two patches

# reader kind: head, relation / candidate symbols, entity-type symbols (NME + types), use_nme
READERS = {"el": ("span", 101, 0, False), "re": ("triplet", 24, 0, False), "cie": ("triplet", 24, 41, True)}

# workload: task, reader kind, corpus, documents (first `docs` from index `first`; `full_docs` with the full-depth
# reader), K (relations for cIE), window size / stride
WORKLOADS = {
    "el": dict(task="span", reader="el", corpus="aida", docs=40, full_docs=1, first=0, full_first=4, k=100,
               window=(32, 16)),
    "re": dict(task="triplet", reader="re", corpus="nyt", docs=300, full_docs=20, k=24, window=(64, 32)),
    "re13": dict(task="triplet", reader="re", corpus="nyt", docs=300, full_docs=20, k=13, window=(64, 32)),
    "cie": dict(task="both", reader="cie", corpus="nyt", docs=100, full_docs=10, k=17, types=40, window=(64, 32)),
}
FULL = "-full"  # name suffix: the same workload with the full-depth reader on `full_docs` documents
DEFAULT_WORKLOADS = "el,re,re13,cie,el-full"


class Corpora:
    """The real texts, gold counts and candidate pools (read once)."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        if key not in self._cache:
            self._cache[key] = {
                "aida": lambda: list(read_aida("testb")),
                "aida-testa": lambda: list(read_aida("testa")),
                "aida-train": lambda: list(read_aida("train")),
                "nyt": lambda: list(read_nyt("test")),
                "nyt-valid": lambda: list(read_nyt("valid")),
                "relations": lambda: [r["rebel_name"] for r in json.loads(
                    paths.data_path("nyt", "nyt_relations.json").read_text())["relations"]],
            }[key]()
        return self._cache[key]

    def titles(self) -> list[str]:
        if "titles" not in self._cache:
            docs = self.get("aida-train") + self.get("aida-testa") + self.get("aida")
            self._cache["titles"] = sorted({m.label for d in docs for m in d.mentions if m.label != NME})
        return self._cache["titles"]

    def el_candidates(self, doc: Any, seed: int, k: int = 100) -> list[str]:
        """The document's gold titles + random AIDA titles up to K, shuffled (fixed per document)."""
        gold = list(dict.fromkeys(m.label for m in doc.mentions if m.label != NME))[:k]
        pool = [t for t in self.titles() if t not in set(gold)]
        rng = np.random.default_rng(seed)
        cands = gold + [pool[i] for i in rng.choice(len(pool), k - len(gold), replace=False)]
        rng.shuffle(cands)
        return cands


def mentions_per_word(docs: list[Any]) -> float:
    return sum(len(d.mentions) for d in docs) / max(1, sum(len(d.text.split()) for d in docs))


def reader_name(kind: str, full: bool) -> str:
    shape = BASE if full else SMALL
    return f"{kind}-l{shape['layers']}-h{shape['hidden']}"


def reader_spec(kind: str, full: bool, corpora: Corpora) -> dict[str, Any]:
    """What e2e_readers.build needs: shapes, spm corpus (AIDA train + NYT dev, never timed texts), calibration
    documents (AIDA testa / NYT dev) with their candidates and gold mention rate."""
    head, symbols, types, use_nme = READERS[kind]
    shape = BASE if full else SMALL
    corpus = [d.text for d in corpora.get("aida-train")[:300]] + [d.text for d in corpora.get("nyt-valid")[:2000]]
    if head == "span":
        docs = corpora.get("aida-testa")[: 2 if full else 3]
        cal = {"texts": [d.text for d in docs], "window": [32, 16],
               "span_candidates": [corpora.el_candidates(d, 10_000 + i) for i, d in enumerate(docs)]}
    else:
        docs = corpora.get("nyt-valid")[: 20 if full else 40]
        rels = corpora.get("relations")[: 17 if types else symbols]
        cal = {"texts": [d.text for d in docs], "window": [64, 32], "triplet_candidates": [rels] * len(docs)}
        if types:
            cal["span_candidates"] = [ENTITY_TYPES] * len(docs)
    cal["mentions_per_word"] = mentions_per_word(docs)
    return {"kind": head, "backbone": {k: v for k, v in shape.items() if k != "linears"},
            "linears": shape["linears"], "symbols": symbols, "types": types, "use_nme": use_nme,
            "seed": 4321 + list(READERS).index(kind) * 100 + (50 if full else 0),
            "spm": {"vocab_size": SPM_VOCAB, "corpus": corpus}, "calibration": cal}


def workload_inputs(name: str, corpora: Corpora, n_docs: int | None, quick: bool) -> dict[str, Any]:
    """Texts and candidates of a workload (JSON: what both sides get). `quick`: the first one-window documents."""
    full = name.endswith(FULL)
    w = WORKLOADS[name.removesuffix(FULL)]
    docs = corpora.get(w["corpus"])
    n = n_docs or w["full_docs" if full else "docs"]
    splitter = WindowSplitter(*w["window"])
    if quick:
        picked = [i for i in range(len(docs)) if sum(1 for _ in splitter.split_document(docs[i].text)) == 1][:n]
    else:
        first = w.get("full_first" if full else "first", 0)
        picked = list(range(first, first + n))
    texts = [docs[i].text for i in picked]
    if w["task"] == "span":
        candidates: Any = [corpora.el_candidates(docs[i], i, w["k"]) for i in picked]
    elif w["task"] == "triplet":
        candidates = [corpora.get("relations")[: w["k"]]] * len(texts)
    else:
        candidates = {"span": [ENTITY_TYPES[: w["types"]]] * len(texts),
                      "triplet": [corpora.get("relations")[: w["k"]]] * len(texts)}
    return {"name": name, "reader": reader_name(w["reader"], full), "kind": w["reader"], "full": full,
            "task": w["task"], "window_size": w["window"][0], "window_stride": w["window"][1], "top_k": w["k"],
            "documents": picked, "texts": texts, "candidates": candidates,
            "windows": sum(1 for _ in splitter.split_documents(texts)),
            "gold_mentions": sum(len(docs[i].mentions) for i in picked)}
