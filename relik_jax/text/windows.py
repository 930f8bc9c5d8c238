"""Documents -> overlapping word windows -> documents again (reference §1.6).

`WindowSplitter(size, stride)` cuts a document's words into windows exactly as the reference's
`WindowSentenceSplitter`: `for i in range(0, n, stride)`, and a window that would run past the end is shifted
left to end at the last word unless that shift is `>= stride` (then splitting stops). With n=40, size 32,
stride 16: `[0, 32)`, `[8, 40)`. `size=None` (or "none") keeps the whole document as one window.

A `Window` carries `doc_id`, `window_id`, `text` (the raw char slice of the document from its first to its
last word), `words`, `offset` (char start), absolute word char offsets as numpy arrays, and the index of its
first word in the document. `to_dict()` emits the reference's windowized JSONL fields (`tokens`, `words`,
`token2char_start/end` keyed by window-relative word index, `char2token_start/end` keyed by absolute char,
mapping to document-level word indices; keys are strings as in JSON; `spans` = given mentions, always
present as in the reference).

`doc_topic` is the first word of the document. [Reference quirk] the reference assigns it once per batch call,
so every document of a batch gets the first document's first word; `split_documents(...,
batch_doc_topic=True)` reproduces that, the default gives each document its own first word (the topic only
matters when a retriever uses `use_doc_topic`, which is off at inference).

The reader fills a window's `predicted_*` fields; `relik_jax.inference.merge` folds windows back into documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from relik_jax.text.words import Word, tokenize

__all__ = ["Window", "WindowSplitter", "window_bounds"]

# A predicted triplet inside a window: (subject index, relation, object index, confidence), indices into the
# window's `predicted_spans`.
WindowTriplet = tuple[int, str, int, float]


def window_bounds(n_words: int, size: int | None, stride: int | None = None) -> Iterator[tuple[int, int]]:
    """Word ranges `[start, end)` of the windows of a document with `n_words` words (reference algorithm)."""
    if size is None:
        if n_words:
            yield 0, n_words
        return
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"window size must be a positive int or None, got {size!r}")
    stride = size if not stride else stride
    if stride < 0:
        raise ValueError(f"window stride must be >= 0, got {stride!r}")
    for i in range(0, n_words, stride):
        if i != 0 and i + size > n_words:
            overflow = i + size - n_words
            if overflow >= stride:
                break
            i -= overflow
        yield i, min(i + size, n_words)


@dataclass(slots=True, eq=False)
class Window:
    doc_id: int | str
    window_id: int
    text: str
    words: list[str]
    offset: int  # char start of the first word in the document
    word_starts: np.ndarray  # (W,) int64 absolute char starts
    word_ends: np.ndarray  # (W,) int64 absolute char ends (exclusive)
    first_word: int  # document-level index of words[0]
    doc_topic: str | None = None
    spans: list[tuple] = field(default_factory=list)  # given mentions (start, end[, label]), absolute chars
    # filled by the reader
    predicted_spans: list[tuple[int, int, str]] = field(default_factory=list)
    predicted_span_probs: dict[tuple[int, int], list[tuple[str, float]]] = field(default_factory=dict)
    predicted_triplets: list[WindowTriplet] = field(default_factory=list)
    span_candidates: list[Any] | None = None
    triplet_candidates: list[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other JSONL keys (labels, candidates scores, ...)

    @property
    def char_start(self) -> int:
        return self.offset

    @property
    def char_end(self) -> int:
        return int(self.word_ends[-1]) if len(self.word_ends) else self.offset

    def char_span_to_words(self, start: int, end: int) -> tuple[int, int]:
        """Window-relative word span `[ws, we)` of the words overlapping chars `[start, end)`."""
        ws = int(np.searchsorted(self.word_ends, start, side="right"))
        we = int(np.searchsorted(self.word_starts, end, side="left"))
        return ws, max(we, ws + 1)

    def to_dict(self) -> dict[str, Any]:
        """The reference's windowized-JSONL row (§4.3)."""
        starts, ends = self.word_starts.tolist(), self.word_ends.tolist()
        doc_idx = range(self.first_word, self.first_word + len(starts))
        row: dict[str, Any] = {
            "doc_id": self.doc_id,
            "window_id": self.window_id,
            "text": self.text,
            "tokens": list(self.words),
            "words": list(self.words),
            "doc_topic": self.doc_topic,
            "offset": self.offset,
            "spans": [list(sp) for sp in self.spans],
            "token2char_start": {str(i): s for i, s in enumerate(starts)},
            "token2char_end": {str(i): e for i, e in enumerate(ends)},
            "char2token_start": {str(s): i for s, i in zip(starts, doc_idx, strict=True)},
            "char2token_end": {str(e): i for e, i in zip(ends, doc_idx, strict=True)},
        }
        if self.span_candidates is not None:
            row["span_candidates"] = self.span_candidates
        if self.triplet_candidates is not None:
            row["triplet_candidates"] = self.triplet_candidates
        row.update(self.extra)
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Window:
        """Parse a reference windowized-JSONL row (unknown keys are kept in `extra`)."""
        words = row.get("words") or row.get("tokens")
        if words is None or "token2char_start" not in row:
            raise ValueError(f"not a windowized row (needs words/tokens and token2char_start): {sorted(row)}")
        n = len(words)
        starts = np.array([row["token2char_start"][str(i)] for i in range(n)], dtype=np.int64)
        ends = np.array([row["token2char_end"][str(i)] for i in range(n)], dtype=np.int64)
        first = int(row["char2token_start"][str(int(starts[0]))]) if n else 0
        known = {
            "doc_id", "window_id", "text", "tokens", "words", "doc_topic", "offset", "token2char_start",
            "token2char_end", "char2token_start", "char2token_end", "spans", "span_candidates",
            "triplet_candidates",
        }  # fmt: skip
        return cls(
            doc_id=row["doc_id"],
            window_id=int(row.get("window_id", 0)),
            text=row["text"],
            words=list(words),
            offset=int(row.get("offset", int(starts[0]) if n else 0)),
            word_starts=starts,
            word_ends=ends,
            first_word=first,
            doc_topic=row.get("doc_topic"),
            spans=[tuple(s) for s in row.get("spans", [])],
            span_candidates=row.get("span_candidates"),
            triplet_candidates=row.get("triplet_candidates"),
            extra={k: v for k, v in row.items() if k not in known},
        )


class WindowSplitter:
    """Splits documents into word windows (`size=None` -> one window per document)."""

    def __init__(self, window_size: int | str | None = 32, window_stride: int | None = 16) -> None:
        if isinstance(window_size, str):
            if window_size.lower() != "none":
                raise ValueError(f"window_size must be an int, None or 'none', got {window_size!r}")
            window_size = None
        self.window_size = window_size
        self.window_stride = window_stride
        list(window_bounds(0, window_size, window_stride))  # validate arguments early

    def split_document(
        self,
        text: str | list[str],
        doc_id: int | str = 0,
        words: Sequence[Word] | Sequence[str] | None = None,
        doc_topic: str | None = None,
        is_split_into_words: bool = False,
        spans: Iterable[Sequence] = (),
    ) -> Iterator[Window]:
        """Windows of one document (a generator: long documents are not materialised window by window).

        `words`: precomputed `Word`s, or strings that appear in order in `text` separated by whitespace
        (a dataset's own tokens); default: relik_jax.text.words on `text`. `spans`: given mentions
        `(start, end[, label])` (absolute chars) copied into the windows that contain them."""
        if isinstance(text, list):  # pre-split words: the reference joins them with single spaces
            text, is_split_into_words = " ".join(text), True
        if not isinstance(text, str):
            raise TypeError(f"document text must be str or list of words, got {type(text).__name__}")
        ws = _as_words(text, words, is_split_into_words)
        starts = np.fromiter((w.start for w in ws), dtype=np.int64, count=len(ws))
        ends = np.fromiter((w.end for w in ws), dtype=np.int64, count=len(ws))
        topic = doc_topic if doc_topic is not None else (ws[0].text if ws else "")
        spans = sorted(spans)
        for window_id, (a, b) in enumerate(window_bounds(len(ws), self.window_size, self.window_stride)):
            lo, hi = int(starts[a]), int(ends[b - 1])
            yield Window(
                doc_id=doc_id,
                window_id=window_id,
                text=text[lo:hi],
                words=[w.text for w in ws[a:b]],
                offset=lo,
                word_starts=starts[a:b],
                word_ends=ends[a:b],
                first_word=a,
                doc_topic=topic,
                spans=[tuple(s) for s in spans if lo <= s[0] and s[1] <= hi],
            )

    def split_documents(
        self,
        texts: Iterable[str | list[str]],
        doc_ids: Iterable[int | str] | None = None,
        is_split_into_words: bool = False,
        batch_doc_topic: bool = False,
    ) -> Iterator[Window]:
        """Windows of several documents (doc ids default to the input index, as in the reference).

        `batch_doc_topic=True` reproduces the reference quirk: every document's `doc_topic` is the first word
        of the first document."""
        ids = iter(doc_ids) if doc_ids is not None else None
        first_topic: str | None = None
        for i, text in enumerate(texts):
            doc_id = next(ids) if ids is not None else i
            split = is_split_into_words
            if isinstance(text, list):
                text, split = " ".join(text), True
            ws = _as_words(text, None, split)
            topic = ws[0].text if ws else ""  # the reference's value for a document without words
            if batch_doc_topic:
                first_topic = topic if i == 0 else first_topic
                topic = first_topic
            yield from self.split_document(text, doc_id, ws, doc_topic=topic)


def _as_words(
    text: str, words: Sequence[Word] | Sequence[str] | None, is_split_into_words: bool
) -> Sequence[Word]:
    if words is None:
        return tokenize(text, is_split_into_words=is_split_into_words)
    if not words or isinstance(words[0], Word):
        return words  # type: ignore[return-value]
    out, pos = [], 0
    for i, w in enumerate(words):
        start = text.find(w, pos)
        if start < 0 or text[pos:start].strip():
            raise ValueError(f"word {i} {w!r} not found after char {pos} of the document text")
        out.append(Word(w, start, start + len(w), i))
        pos = start + len(w)
    return out
