"""Evaluation measures as the reference computes them (relik-reference.md §5).

- EL strong matching: a prediction counts only with the exact (char_start, char_end, title) of a gold mention;
  NME (`--NME--`) predictions and gold mentions are excluded (InKB). Micro P/R/F1 over all documents/windows,
  plus span-only (boundary) P/R/F1.
- RE micro-F1 "boundaries": a triplet is (subject start, subject end, relation, object start, object end); entity
  labels are ignored. "Strict" (cIE) also requires the subject and object labels to match.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from relik_jax.labels import NME


@dataclasses.dataclass
class PRF:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, predicted: set, gold: set) -> None:
        self.tp += len(predicted & gold)
        self.fp += len(predicted - gold)
        self.fn += len(gold - predicted)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}precision": self.precision, f"{prefix}recall": self.recall, f"{prefix}f1": self.f1,
                f"{prefix}tp": self.tp, f"{prefix}fp": self.fp, f"{prefix}fn": self.fn}


Mention = tuple[int, int, str]  # (start, end exclusive, label)


def el_strong_matching(predicted: Iterable[Sequence[Mention]], gold: Iterable[Sequence[Mention]]) -> dict[str, float]:
    """InKB micro P/R/F1 of (start, end, title) plus span-only P/R/F1; one sequence per document (or window)."""
    core, spans = PRF(), PRF()
    for pred, ref in zip(predicted, gold, strict=True):
        p = {(s, e, t) for s, e, t in pred if t != NME}
        g = {(s, e, t) for s, e, t in ref if t != NME}
        core.add(p, g)
        spans.add({(s, e) for s, e, _ in p}, {(s, e) for s, e, _ in g})
    return {**core.as_dict(), **spans.as_dict("span_")}


Triplet = tuple[Mention, str, Mention]  # (subject, relation, object)


def re_matching(predicted: Iterable[Sequence[Triplet]], gold: Iterable[Sequence[Triplet]]) -> dict[str, float]:
    """RE micro P/R/F1 on boundaries, strict (with entity labels), and entity-span F1."""
    boundaries, strict, ents = PRF(), PRF(), PRF()
    for pred, ref in zip(predicted, gold, strict=True):
        boundaries.add({(s[0], s[1], r, o[0], o[1]) for s, r, o in pred},
                       {(s[0], s[1], r, o[0], o[1]) for s, r, o in ref})
        strict.add({(tuple(s), r, tuple(o)) for s, r, o in pred}, {(tuple(s), r, tuple(o)) for s, r, o in ref})
        ents.add({(m[0], m[1]) for s, _, o in pred for m in (s, o)}, {(m[0], m[1]) for s, _, o in ref for m in (s, o)})
    return {**boundaries.as_dict(), **strict.as_dict("strict_"), **ents.as_dict("span_")}


def recall_at_k(ranked: Iterable[Sequence[str]], gold: Iterable[Iterable[str]], ks: Sequence[int]) -> dict[str, float]:
    """Micro recall@k: |top-k ∩ gold| / |gold| summed over samples (the reference's retriever metric)."""
    hits = dict.fromkeys(ks, 0)
    total = 0
    for r, g in zip(ranked, gold, strict=True):
        g = set(g)
        total += len(g)
        for k in ks:
            hits[k] += len(g & set(r[:k]))
    return {f"recall@{k}": hits[k] / total if total else 0.0 for k in ks}
