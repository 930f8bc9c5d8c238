"""Reader outputs -> spans / triplets, word and char offsets, step-for-step as the reference (host side, numpy).

Span reader (`RelikReaderForSpanExtraction._batch_predict`, `RelikDataset.merge_patches_predictions`,
`convert_to_char_annotations`):
- token indices drop the CLS (`position - 1`);
- linking class c -> `predictable_candidates[c - 1]` [QUIRK: class 0, the CLS column, -> the *last* candidate];
  the top-k probability list uses the same `- 1`;
- patches are merged in order, a span keeps the first non-NME title (NME can be overridden);
- char spans `(token2char_start[s], token2char_end[e], title)`, NME removed; end < start is possible [QUIRK].

Triplet reader (`RelikReaderForTripletExtraction._batch_predict`, `RelikREDataset._convert_annotations`,
`convert_to_char_annotations`, `_new_output_format`):
- entities in (start, end) order; triplets = every (i, j, r) with P > threshold (strict), lexicographic,
  self-relations (i == j) kept; probability `float(float32(p).round(2))`;
- entity sub-tokens snap to word boundaries (start left, end right); entities that cannot be snapped are
  skipped, and triplet indices then point into the shortened list [QUIRK]; NME entities are kept;
- word spans `(w_start, w_end + 1, label)`, char spans via the word -> sub-token inverse maps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from relik_jax.reader.inputs import NME, SpanRow, TextTokens, TripletRow

Span = tuple[int, int, str]


@dataclasses.dataclass
class SpanPatch:
    """Decoded predictions of one span-reader row, in text sub-token indices (CLS dropped)."""

    predicted_window_labels: dict[str, list[list[int]]]
    span_title_probabilities: dict[tuple[int, int], list[tuple[str, float]]]
    predictable_candidates: list[str]


def decode_span_row(row: SpanRow, mentions: Sequence[tuple[int, int]], ed_pred: np.ndarray, ed_probs: np.ndarray,
                    top_k: int = 5) -> SpanPatch:
    """mentions: (start, end) positions (with CLS) in reference order; ed_pred [M]; ed_probs [M, C] (valid C)."""
    cands = row.predictable_candidates
    labels: dict[str, list[list[int]]] = {}
    probs: dict[tuple[int, int], list[tuple[str, float]]] = {}
    m = len(mentions)
    if not m:
        return SpanPatch(labels, probs, list(cands))
    names = np.empty(len(cands), object)
    names[:] = list(cands)
    spans = (np.asarray(mentions, np.int64).reshape(m, 2) - 1).tolist()
    p = np.asarray(ed_probs)[:m]
    # per-row argsort (the same sort per row as a 1-D call, so ties order as before), highest first
    order = p.argsort(axis=-1)[:, ::-1]
    n = min(top_k, p.shape[1]) if top_k != -1 else p.shape[1]
    top = order[:, :n]
    top_names = names[top - 1].tolist()  # column k is candidate k - 1 (column 0 wraps to the last, as in the reference)
    top_probs = np.take_along_axis(p, top, axis=1).tolist()
    for (s, e), title, tn, tp in zip(spans, names[np.asarray(ed_pred)[:m].astype(np.int64) - 1].tolist(), top_names,
                                     top_probs, strict=True):
        labels.setdefault(title, []).append([s, e])
        probs[(s, e)] = list(zip(tn, tp, strict=True))
    return SpanPatch(labels, probs, list(cands))


def merge_patches(patches: Sequence[SpanPatch]) -> tuple[dict[str, list[tuple[int, int]]],
                                                        dict[tuple[int, int], list[tuple[str, float]]]]:
    """Patches in patch order -> (title -> spans, span -> top-k probabilities)."""
    span2title: dict[tuple[int, int], str] = {}
    span_probs: dict[tuple[int, int], list[tuple[str, float]]] = {}
    for patch in patches:
        for title, spans in patch.predicted_window_labels.items():
            for span in spans:
                span = tuple(span)
                current = span2title.get(span)
                if current is None or current == NME:
                    span2title[span] = title
        for span, tp in patch.span_title_probabilities.items():
            span_probs.setdefault(span, tp)
    labels: dict[str, list[tuple[int, int]]] = {}
    for span, title in span2title.items():
        labels.setdefault(title, []).append(span)
    return labels, span_probs


def span_char_annotations(text: TextTokens, labels: dict[str, list[tuple[int, int]]],
                          span_probs: dict[tuple[int, int], list[tuple[str, float]]], remove_nmes: bool = True
                          ) -> tuple[set[Span], dict[tuple[int, int], list[tuple[str, float]]]]:
    spans = {(text.char_starts[s], text.char_ends[e], title) for title, ss in labels.items()
             if not (remove_nmes and title == NME) for s, e in ss}
    probs = {(text.char_starts[s], text.char_ends[e]): tp for (s, e), tp in span_probs.items()}
    return spans, probs


def _snap(text: TextTokens, n_tokens: int, s: int, e: int) -> tuple[int, int] | None:
    """Sub-token span -> document word span (start snapped left to a sub-token that starts a word, end right to one
    that ends a word), None if it runs off the row: the reference's dict loops, on the word-index lists."""
    starts, ends, n_text = text.word_start_list, text.word_end_list, len(text)
    while s >= 0 and (s >= n_text or starts[s] < 0):
        s -= 1
    e = max(e, 0)
    while e < n_text and ends[e] < 0:  # no word ends in [SEP] and the candidates: past the words, the loop ran off
        e += 1
    if s < 0 or e >= min(n_text, n_tokens):
        return None
    return starts[s], ends[e]


def span_word_annotations(text: TextTokens, n_tokens: int, labels: dict[str, list[tuple[int, int]]],
                          remove_nmes: bool = True) -> set[Span]:
    """WORD annotation type of the span reader (document-level word indices, end exclusive)."""
    out = set()
    for title, spans in labels.items():
        if remove_nmes and title == NME:
            continue
        for s, e in spans:
            w = _snap(text, n_tokens, s, e)
            if w is not None:
                out.add((w[0], w[1] + 1, title))
    return out


@dataclasses.dataclass
class TripletPrediction:
    """Word-level and char-level outputs of one triplet-reader window (reference `_new_output_format`)."""

    word_entities: list[Span]  # in entity order (after the snapping filter)
    word_triplets: list[dict[str, Any]]  # {"subject": Span, "relation": str, "object": Span, "probability": float}
    spans: list[Span]  # char spans, sorted(set, key=start)
    triplets: list[tuple[int, str, int, float]]  # (subject index in spans, relation, object index, probability)


def decode_triplet_row(row: TripletRow, mentions: Sequence[tuple[int, int]], type_pred: np.ndarray | None,
                       re_probs: np.ndarray, threshold: float) -> TripletPrediction:
    """mentions (start, end) positions with CLS, reference order; type_pred [M] or None; re_probs [M, M, R]."""
    ment = mentions.tolist() if isinstance(mentions, np.ndarray) else [tuple(m) for m in mentions]
    if not ment:
        return TripletPrediction([], [], [], [])
    n = len(ment)
    text = row.text
    starts, ends = text.word_start_list, text.word_end_list  # a row has a few mentions: scalar steps are cheapest
    n_text = len(starts)
    types = np.asarray(type_pred)[:n].tolist() if type_pred is not None else [None] * n
    cands = row.span_candidates
    entities: list[Span] = []
    char_entities: list[Span] = []
    last_start, last_end = starts[::-1], ends[::-1]  # word -> its last sub-token (the reference inverts a dict)
    for (s, e), t in zip(ment, types, strict=True):
        w = _snap(text, row.n_all_tokens, s - 1, e - 1)
        if w is None:
            continue
        label = cands[t] if (cands and t is not None) else NME
        entities.append((w[0], w[1] + 1, label))
        char_entities.append((text.starts.item(n_text - 1 - last_start.index(w[0])),
                              text.ends.item(n_text - 1 - last_end.index(w[1])), label))
    probs = np.asarray(re_probs, dtype=np.float32)[:n, :n]
    above = probs > np.float32(threshold)
    if above.any():
        subj_a, obj_a, rel_a = np.nonzero(above)  # lexicographic (i, j, r), as argwhere
        probabilities = probs[above].round(2).tolist()  # float32 rounding, as the reference
        subj, obj, rel = subj_a.tolist(), obj_a.tolist(), rel_a.tolist()
    else:
        subj, obj, rel, probabilities = [], [], [], []
    if len(entities) < n:  # cells whose subject or object was dropped by the snapping filter: the reference would
        keep = [i < len(entities) and j < len(entities) for i, j in zip(subj, obj, strict=True)]  # raise IndexError
        subj, obj, rel, probabilities = ([x for x, k in zip(v, keep, strict=True) if k]
                                         for v in (subj, obj, rel, probabilities))
    relations = row.triplet_candidates
    word_triplets = [{"subject": entities[i], "relation": relations[r], "object": entities[j], "probability": p}
                     for i, j, r, p in zip(subj, obj, rel, probabilities, strict=True)]
    spans = sorted(set(char_entities), key=lambda x: x[0])
    first: dict[tuple[int, int], int] = {}  # (start, end) -> its first index in `spans`
    for k, p in enumerate(spans):
        first.setdefault(p[:2], k)
    index = [first[c[:2]] for c in char_entities]  # entity k -> its span's index
    triplets = [(index[i], relations[r], index[j], p) for i, j, r, p in zip(subj, obj, rel, probabilities, strict=True)]
    return TripletPrediction(entities, word_triplets, spans, triplets)
