"""Pipeline output objects, shaped like the reference's `relik.inference.data.objects` (reference §4.4).

`Span(start, end, label, text)` (char offsets, end exclusive, or word offsets with annotation_type="word"),
`Triplet(subject, label, object, confidence)`, `Candidates(span, triplet)` and `RelikOutput` with
`to_dict()`. Beyond the reference, `RelikOutput.entities()` groups the mentions of each linked entity and
`RelikOutput.unique_triplets()` collapses triplets that several windows predicted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from relik_jax.labels import NME

__all__ = ["Span", "Triplet", "Candidates", "RelikOutput", "candidate_to_dict"]


class Span(NamedTuple):
    start: int
    end: int  # exclusive
    label: str
    text: str


class Triplet(NamedTuple):
    subject: Span
    label: str
    object: Span
    confidence: float  # rounded to 2 decimals, as the reference does


@dataclass(slots=True)
class Candidates:
    """Retrieved candidates: one list per window (`span` for entities, `triplet` for relations)."""

    span: list[list[Any]] | None = None
    triplet: list[list[Any]] | None = None


def candidate_to_dict(candidate: Any) -> dict:
    """A retrieved passage as the reference's `Document.to_dict()`: `{"text", "id", "metadata"}`."""
    if hasattr(candidate, "document") and hasattr(candidate, "score"):  # a retrieval hit: report its passage
        candidate = candidate.document
    if hasattr(candidate, "to_dict"):
        return candidate.to_dict()
    if isinstance(candidate, dict):
        return {
            "text": candidate.get("text"),
            "id": candidate.get("id"),
            "metadata": candidate.get("metadata", {}),
        }
    return {"text": str(candidate), "id": None, "metadata": {}}


@dataclass(slots=True)
class RelikOutput:
    text: str
    tokens: list[str]
    id: int | str | None = None
    spans: list[Span] = field(default_factory=list)
    triplets: list[Triplet] = field(default_factory=list)
    candidates: Candidates = field(default_factory=Candidates)
    windows: list | None = None
    # (start, end) -> [(label, probability), ...] of the EL reader (first window wins); not in `to_dict`, which
    # follows the reference's output keys
    span_probabilities: dict[tuple[int, int], list[tuple[str, float]]] | None = None
    # why this document has no annotations (`Relik.stream(..., on_error="record")`); None for a normal output
    error: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict with the reference's keys (`text`, `tokens`, `spans`, `triplets`, `candidates`, and
        `windows` when kept); spans/triplets become lists as `json.dumps` of the reference's tuples gives."""

        def cands(groups: list[list[Any]] | None) -> list:
            # the reference wraps the per-window lists once more: [[[doc, ...] per window]]
            if not groups:
                return []
            return [[[candidate_to_dict(c) for c in window] for window in groups]]

        out = {
            "text": self.text,
            "tokens": list(self.tokens),
            "spans": [list(s) for s in self.spans],
            "triplets": [[list(t.subject), t.label, list(t.object), t.confidence] for t in self.triplets],
            "candidates": {"span": cands(self.candidates.span), "triplet": cands(self.candidates.triplet)},
        }
        if self.windows is not None:
            out["windows"] = [w.to_dict() if hasattr(w, "to_dict") else w for w in self.windows]
        if self.error is not None:
            out["error"] = self.error
        return out

    def entities(self, include_nme: bool = False) -> dict[str, list[Span]]:
        """Document-level view: linked entity -> its mentions (all windows), in text order."""
        groups: dict[str, list[Span]] = {}
        for span in sorted(self.spans):
            if span.label == NME and not include_nme:
                continue
            groups.setdefault(span.label, []).append(span)
        return groups

    def unique_triplets(self) -> list[Triplet]:
        """Triplets with the same subject, relation and object (predicted by overlapping windows) collapsed
        into one, keeping the highest confidence; sorted by subject then object position."""
        best: dict[tuple, Triplet] = {}
        for t in self.triplets:
            key = (t.subject, t.label, t.object)
            if key not in best or t.confidence > best[key].confidence:
                best[key] = t
        return sorted(best.values(), key=lambda t: (t.subject, t.object, t.label))
