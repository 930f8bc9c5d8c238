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
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from relik_jax.text.words import Word, tokenize, word_columns

__all__ = ["Label", "TripletLabel", "Window", "WindowSplitter", "candidate_texts", "window_bounds"]

# A predicted triplet inside a window: (subject index, relation, object index, confidence), indices into the
# window's `predicted_spans`.
WindowTriplet = tuple[int, str, int, float]
Label = tuple[int, int, str]  # gold (start, end exclusive, label): chars, or window-relative words
TripletLabel = tuple[Label, str, Label]  # gold (subject, relation, object)


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


def candidate_texts(candidates: Iterable[Any] | None) -> list[str] | None:
    """Candidate texts from strings, JSON dicts (`{"text": ...}`) or retrieved documents (a `.text`)."""
    if candidates is None:
        return None
    if isinstance(candidates, list) and set(map(type, candidates)) <= {str}:  # the common case, checked in C
        return list(candidates)
    return [c if isinstance(c, str) else c["text"] if isinstance(c, dict) else c.text for c in candidates]


def _label(x: Sequence) -> Label:
    return int(x[0]), int(x[1]), str(x[2])


def _triplet(t: dict[str, Any]) -> TripletLabel:
    return _label(t["subject"]), str(t["relation"]), _label(t["object"])


def _triplet_row(t: TripletLabel) -> dict[str, Any]:
    return {"subject": list(t[0]), "relation": t[1], "object": list(t[2])}


@dataclass(slots=True, eq=False)
class Window:
    """A window of a document's words: what the splitter yields, the reader reads (with its candidates) and the
    merge folds back; training and evaluation windows also carry gold labels (None = not labelled)."""

    doc_id: int | str | None
    window_id: int
    text: str
    words: list[str]
    offset: int  # char start of the first word in the document
    word_starts: np.ndarray  # (W,) int64 absolute char starts
    word_ends: np.ndarray  # (W,) int64 absolute char ends (exclusive)
    first_word: int  # document-level index of words[0]
    doc_topic: str | None = None
    spans: list[tuple] = field(default_factory=list)  # given mentions (start, end[, label]), absolute chars
    # candidates: strings, or retrieved documents (`.text`); the reader reads `candidate_texts` of them
    span_candidates: list[Any] | None = None
    triplet_candidates: list[Any] | None = None
    # gold labels (the windowized rows' `window_labels`, `window_labels_tokens`, `window_triplet_labels`,
    # `window_triplet_labels_tokens`): char spans (absolute) and word spans (`[ws, we)` of the window's words)
    labels: list[Label] | None = None
    word_labels: list[Label] | None = None
    triplet_labels: list[TripletLabel] | None = None
    word_triplet_labels: list[TripletLabel] | None = None
    # filled by the reader
    predicted_spans: list[tuple[int, int, str]] = field(default_factory=list)
    predicted_span_probs: dict[tuple[int, int], list[tuple[str, float]]] = field(default_factory=dict)
    predicted_triplets: list[WindowTriplet] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # other JSONL keys (candidate scores, ...)

    def __post_init__(self) -> None:
        self.word_starts = np.asarray(self.word_starts, dtype=np.int64)
        self.word_ends = np.asarray(self.word_ends, dtype=np.int64)
        if not len(self.words) == len(self.word_starts) == len(self.word_ends):
            raise ValueError(f"window {self.doc_id}/{self.window_id}: {len(self.words)} words but "
                             f"{len(self.word_starts)} starts and {len(self.word_ends)} ends")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Window):
            return NotImplemented
        return all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
                   for a, b in ((getattr(self, f.name), getattr(other, f.name)) for f in fields(Window)))
    @classmethod
    def from_words(cls, words: Sequence[str], word_starts: Sequence[int], word_ends: Sequence[int],
                   first_word: int = 0, *, doc_id: int | str | None = None, window_id: int = 0,
                   **kwargs: Any) -> Window:
        """A window from its words and their absolute char offsets (the text has spaces between the words)."""
        starts, ends = [int(s) for s in word_starts], [int(e) for e in word_ends]
        offset = starts[0] if starts else 0
        text = ""
        for w, s in zip(words, starts, strict=True):
            text += " " * (s - offset - len(text)) + w
        return cls(doc_id, window_id, text, list(words), offset, np.asarray(starts, np.int64),
                   np.asarray(ends, np.int64), first_word, **kwargs)

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

    def char2word_start(self) -> dict[int, int]:
        """Absolute char start -> document-level word index."""
        return dict(zip(self.word_starts.tolist(), range(self.first_word, self.first_word + len(self.words)),
                        strict=True))

    def char2word_end(self) -> dict[int, int]:
        """Absolute char end -> document-level word index."""
        return dict(zip(self.word_ends.tolist(), range(self.first_word, self.first_word + len(self.words)),
                        strict=True))

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
            row["span_candidates"] = candidate_texts(self.span_candidates)
        if self.triplet_candidates is not None:
            row["triplet_candidates"] = candidate_texts(self.triplet_candidates)
        for key, labels in (("window_labels", self.labels), ("window_labels_tokens", self.word_labels)):
            if labels is not None:
                row[key] = [list(x) for x in labels]
        for key, triplets in (("window_triplet_labels", self.triplet_labels),
                              ("window_triplet_labels_tokens", self.word_triplet_labels)):
            if triplets is not None:
                row[key] = [_triplet_row(t) for t in triplets]
        row.update(self.extra)
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Window:
        """Parse a windowized-JSONL row (ours or the reference's, with or without candidates and gold labels; unknown
        keys are kept in `extra`)."""
        words = row.get("words") or row.get("tokens")
        if words is None or "token2char_start" not in row:
            raise ValueError(f"not a windowized row (needs words/tokens and token2char_start): {sorted(row)}")
        n = len(words)
        starts = np.array([row["token2char_start"][str(i)] for i in range(n)], dtype=np.int64)
        ends = np.array([row["token2char_end"][str(i)] for i in range(n)], dtype=np.int64)
        first = int(row["char2token_start"][str(int(starts[0]))]) if n else 0

        def labels(key: str) -> list[Label] | None:
            return [_label(x) for x in row[key]] if row.get(key) is not None else None

        def triplets(key: str) -> list[TripletLabel] | None:
            return [_triplet(t) for t in row[key]] if row.get(key) is not None else None

        return cls(
            doc_id=row.get("doc_id"),
            window_id=int(row.get("window_id") or 0),
            text=row.get("text", ""),
            words=list(words),
            offset=int(row["offset"]) if row.get("offset") is not None else int(starts[0]) if n else 0,
            word_starts=starts,
            word_ends=ends,
            first_word=first,
            doc_topic=row.get("doc_topic"),
            spans=[tuple(s) for s in row.get("spans", [])],
            span_candidates=candidate_texts(row.get("span_candidates")),
            triplet_candidates=candidate_texts(row.get("triplet_candidates")),
            labels=labels("window_labels"),
            word_labels=labels("window_labels_tokens"),
            triplet_labels=triplets("window_triplet_labels"),
            word_triplet_labels=triplets("window_triplet_labels_tokens"),
            extra={k: v for k, v in row.items() if k not in ROW_KEYS},
        )


ROW_KEYS = {
    "doc_id", "window_id", "text", "tokens", "words", "doc_topic", "offset", "token2char_start", "token2char_end",
    "char2token_start", "char2token_end", "spans", "span_candidates", "triplet_candidates", "window_labels",
    "window_labels_tokens", "window_triplet_labels", "window_triplet_labels_tokens",
}  # fmt: skip  # the windowized-row keys that `Window` has fields for


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
        yield from self.split_columns(text, doc_id, *word_columns(ws), doc_topic, spans)

    def split_columns(self, text: str, doc_id: int | str, words: list[str], starts: Sequence[int],
                      ends: Sequence[int], doc_topic: str | None = None, spans: Iterable[Sequence] = ()
                      ) -> Iterator[Window]:
        """`split_document` of words given as columns: texts, absolute char starts and ends (as
        `relik_jax.text.words.tokenize_columns` returns them)."""
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        topic = doc_topic if doc_topic is not None else (words[0] if words else "")
        spans = sorted(spans)
        for window_id, (a, b) in enumerate(window_bounds(len(words), self.window_size, self.window_stride)):
            lo, hi = starts.item(a), ends.item(b - 1)
            yield Window(
                doc_id=doc_id,
                window_id=window_id,
                text=text[lo:hi],
                words=words[a:b],
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
