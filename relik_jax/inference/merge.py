"""Windows -> documents: the one merge of per-window predictions (reference `WindowManager.merge_windows`).

A document's windows are folded together as they complete (`DocumentMerge.add`), so the pipeline can stream a
long document without keeping its windows:

- spans: the sorted union of `(char_start, char_end, label)` (the same span with two labels keeps both);
- triplets: re-indexed from window-local span indices to spans, unioned as `(subject, relation, object, conf)`
  (the same triplet predicted by two windows with two confidences keeps both, as the reference's set does);
- span probabilities: the first window that has a span wins;
- text: the document from its first window's first char to its last window's last char (the reference writes
  `w1.text[:w2.offset - w1.offset] + w2.text`); when the document text is not given it is rebuilt that way;
- candidates: one list per window, in window order;
- public output (default) holds only well-formed spans: `start < end`, inside the text. The reference's EL reader
  may end a span before its start (an end token before the start token), so 25-100 % of the spans of an untrained
  model are empty or inverted; `raw=True` keeps the reference's exact output (the parity tests compare it).
  Triplets whose subject or object span is dropped are dropped with it.

`merge_windows(windows)` groups any windows by `doc_id` (first-seen order), sorts each document's windows by
offset and merges them: the evaluation path and tests use it, the pipeline uses `DocumentMerge` directly.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from relik_jax.inference.outputs import Candidates, RelikOutput, Span, Triplet
from relik_jax.text.windows import Window

CharSpan = tuple[int, int, str]
# tuple.__new__ builds the NamedTuples in C (their own __new__ is Python code)
_span, _triplet = functools.partial(tuple.__new__, Span), functools.partial(tuple.__new__, Triplet)

__all__ = ["DocumentMerge", "merge_windows"]


class DocumentMerge:
    """Predictions of one document, merged window by window. Windows must be added in offset order."""

    def __init__(self, doc_id: Any, text: str | None = None, words: Sequence[str] | None = None,
                 keep_windows: bool = False, keep_candidates: bool = True, raw: bool = False) -> None:
        self.doc_id = doc_id
        self.raw = raw  # True: the reference's exact spans, empty and inverted ones included
        self.source = text  # the document text, when known (span texts are sliced from it)
        self.words = list(words) if words is not None else None
        self.keep_windows, self.keep_candidates = keep_windows, keep_candidates
        self.first_char: int | None = None
        self.last_char = 0
        self.pieces = ""  # the rebuilt text when `text` is not given
        self.spans: set[CharSpan] = set()
        self.span_probs: dict[tuple[int, int], list[tuple[str, float]]] = {}
        self.triplets: set[tuple[CharSpan, str, CharSpan, float]] = set()
        self.span_candidates: list[Any] = []
        self.triplet_candidates: list[Any] = []
        self.window_words: dict[int, str] = {}
        self.windows: list[Window] = []

    def add(self, window: Window, span_candidates: Any = None, triplet_candidates: Any = None) -> None:
        """Fold in one window's `predicted_spans` / `predicted_span_probs` / `predicted_triplets` and the
        candidates to report for it (None: the window's own, if any)."""
        if self.first_char is None:
            self.first_char = window.offset
            self.pieces = window.text
        elif self.source is None:
            self.pieces = self.pieces[: window.offset - self.first_char] + window.text
        self.last_char = max(self.last_char, window.char_end)
        spans = [(int(s), int(e), str(label)) for s, e, label in window.predicted_spans]
        self.spans.update(spans)
        for key, value in window.predicted_span_probs.items():
            self.span_probs.setdefault(tuple(key), value)
        for si, rel, oi, conf in window.predicted_triplets:
            self.triplets.add((spans[si], rel, spans[oi], float(conf)))
        span_c = window.span_candidates if span_candidates is None else span_candidates
        trip_c = window.triplet_candidates if triplet_candidates is None else triplet_candidates
        if span_c is not None and self.keep_candidates:
            self.span_candidates.append(span_c)
        if trip_c is not None and self.keep_candidates:
            self.triplet_candidates.append(trip_c)
        if self.words is None:
            for i, word in enumerate(window.words):
                self.window_words.setdefault(window.first_word + i, word)
        if self.keep_windows:
            self.windows.append(window)

    def output(self) -> RelikOutput:
        """The document's `RelikOutput`: spans sorted by (start, end, label), triplets sorted, confidences
        rounded to 2 decimals (the reference's output)."""
        if self.source is not None:
            source, base = self.source, 0
            text = source[self.first_char:self.last_char] if self.first_char is not None else source
        else:
            source, base, text = self.pieces, self.first_char or 0, self.pieces
        lo, hi = base, base + len(source)
        # each kept span's Span once (triplets reuse them); kept: start < end, inside the text (or raw output)
        made = {t: _span((t[0], t[1], t[2], source[t[0] - base:t[1] - base])) for t in self.spans
                if self.raw or lo <= t[0] < t[1] <= hi}
        triplets = sorted(t for t in self.triplets if t[0] in made and t[2] in made)
        probs = {k: v for k, v in self.span_probs.items() if self.raw or lo <= k[0] < k[1] <= hi}
        words = self.words if self.words is not None else [self.window_words[i] for i in sorted(self.window_words)]
        return RelikOutput(
            text=text,
            tokens=list(words),
            id=self.doc_id,
            spans=sorted(made.values()),
            triplets=[_triplet((made[s], r, made[o], round(c, 2))) for s, r, o, c in triplets],
            candidates=Candidates(span=self.span_candidates or None, triplet=self.triplet_candidates or None),
            windows=self.windows or None,
            span_probabilities=probs,
        )


def merge_windows(windows: Iterable[Window], texts: Mapping[Any, str] | None = None,
                  keep_windows: bool = False, raw: bool = False) -> list[RelikOutput]:
    """Group `windows` by `doc_id` (first-seen order), sort by offset and merge each document. `texts`: the
    documents' texts by id (span texts are sliced from them; default: the text rebuilt from the windows); `raw`:
    keep empty / inverted spans (see the module docstring)."""
    by_doc: dict[Any, list[Window]] = {}
    for w in windows:
        by_doc.setdefault(w.doc_id, []).append(w)
    out = []
    for doc_id, ws in by_doc.items():
        merge = DocumentMerge(doc_id, (texts or {}).get(doc_id), keep_windows=keep_windows, raw=raw)
        for w in sorted(ws, key=lambda w: (w.offset, w.window_id)):
            merge.add(w)
        out.append(merge.output())
    return out
