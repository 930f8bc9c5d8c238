"""Annotated documents -> the reference's data formats (relik-reference.md §4).

`to_raw_el` / `to_raw_re` (§4.2, the inputs of `relik data create-windows`), `create_windows` (that command) and
`labelled_windows` (§4.3 windowized reader data with `window_labels`, `window_labels_tokens`,
`window_triplet_labels`, `window_triplet_labels_tokens`), `to_dpr` (§4.1 retriever training rows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from relik_jax.data.corpora import NME, LabelledDocument, Mention
from relik_jax.reader.inputs import ReaderWindow
from relik_jax.text.windows import WindowSplitter
from relik_jax.text.words import tokenize


def to_raw_el(doc: LabelledDocument, doc_id: int | str | None = None, include_triplets: bool = False) -> dict:
    """§4.2 raw EL format: `{"doc_id", "doc_text", "doc_span_annotations": [[start, end, title]]}` (chars).

    `relik data create-windows` wants integer doc ids: pass `doc_id`. `include_triplets` adds
    `doc_triplet_annotations` with char spans (the char-level RE input the same command accepts)."""
    row: dict[str, Any] = {
        "doc_id": doc.doc_id if doc_id is None else doc_id,
        "doc_text": doc.text,
        "doc_span_annotations": [[m.start, m.end, m.label] for m in doc.mentions],
    }
    if include_triplets:
        row["doc_triplet_annotations"] = [
            {"subject": [t.subject.start, t.subject.end, t.subject.label], "relation": t.relation,
             "object": [t.object.start, t.object.end, t.object.label]}
            for t in doc.triplets
        ]  # fmt: skip
    return row


def _word_span(m: Mention, offsets: list[tuple[int, int]]) -> tuple[int, int]:
    """Word span `[ws, we)` covering the char span (words overlapping it)."""
    ws = next((i for i, (_, e) in enumerate(offsets) if e > m.start), len(offsets))
    we = next((i for i in range(len(offsets) - 1, -1, -1) if offsets[i][0] < m.end), -1) + 1
    return ws, max(we, ws + 1)


def to_raw_re(doc: LabelledDocument, doc_id: int | str | None = None) -> dict:
    """§4.2 raw RE format: word-level spans over `doc_words` (the dataset's words, else relik_jax.text.words)."""
    if doc.words:
        words, offsets = doc.words, doc.word_offsets
    else:
        ws = tokenize(doc.text)
        words, offsets = [w.text for w in ws], [(w.start, w.end) for w in ws]

    def span(m: Mention) -> list:
        return [*_word_span(m, offsets), m.label]

    return {
        "doc_id": doc.doc_id if doc_id is None else doc_id,
        "doc_words": list(words),
        "doc_span_annotations": [span(m) for m in doc.mentions],
        "doc_triplet_annotations": [
            {"subject": span(t.subject), "relation": t.relation, "object": span(t.object)}
            for t in doc.triplets
        ],
    }


# ------------------------------------------------------------------------------------------- labelled windows
def create_windows(
    rows: Iterable[dict],
    window_size: int | str | None = 32,
    window_stride: int | None = 16,
    is_split_into_words: bool = False,
    labels_are_tokens: bool = False,
    title_mapping: dict[str, str] | None = None,
    relation_mapping: dict[str, str] | None = None,
    write_batch_size: int = 10_000,
) -> Iterator[dict]:
    """`relik data create-windows` on raw §4.2 rows: windowized reader-training rows (§4.3) with gold labels.

    Reproduces the reference command, including its quirks:
    - documents are processed in batches of `write_batch_size`, and every window of a batch gets the first
      word of the batch's first document as `doc_topic`; a falsy doc id becomes the position in the batch;
    - char labels (`labels_are_tokens=False`) are trimmed of spaces, kept when inside the window text, and
      mapped to window-relative words: exact boundaries, else snapped to the words containing them, else
      left out of `window_labels_tokens` only; triplet arguments fall back to the matching window label;
    - word labels (`labels_are_tokens=True`, with `is_split_into_words=True` and `doc_words`) are
      document-level word spans kept when `start >= first word` and `end <= last word` (so a label ending
      at a window's last word is dropped); the reference then reads chars from window-level maps with
      document-level indices, which is only right for one window per document, so more windows raise a
      ValueError here.
    `window_size=None` or "none" -> one window per document (the README's RE setting)."""
    if labels_are_tokens and not is_split_into_words:
        raise ValueError(
            "labels_are_tokens=True needs is_split_into_words=True (word-level `doc_words` input)"
        )
    splitter = WindowSplitter(window_size, window_stride)
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == write_batch_size:
            yield from _create_windows_batch(batch, splitter, is_split_into_words, labels_are_tokens,
                                             title_mapping, relation_mapping)  # fmt: skip
            batch = []
    if batch:
        yield from _create_windows_batch(batch, splitter, is_split_into_words, labels_are_tokens,
                                         title_mapping, relation_mapping)  # fmt: skip


def _create_windows_batch(
    batch: list[dict],
    splitter: Any,
    is_split_into_words: bool,
    labels_are_tokens: bool,
    title_mapping: dict[str, str] | None,
    relation_mapping: dict[str, str] | None,
) -> Iterator[dict]:
    field_name = "doc_words" if is_split_into_words else "doc_text"
    topic: str | None = None
    for position, doc in enumerate(batch):
        if field_name not in doc:
            raise ValueError(f"raw document {doc.get('doc_id')!r} has no {field_name!r} field")
        source = doc[field_name]
        doc_id = doc["doc_id"] if doc["doc_id"] else position
        windows = list(
            splitter.split_document(source, doc_id=doc_id, is_split_into_words=is_split_into_words)
        )
        if topic is None:  # [quirk] set once per batch
            topic = windows[0].doc_topic if windows else ""
        labels = [
            [s, e, _map(label, title_mapping, relation_mapping)]
            for s, e, label in doc["doc_span_annotations"]
        ]
        triplets = doc.get("doc_triplet_annotations")
        if triplets is not None and title_mapping:
            triplets = [
                {"subject": [*t["subject"][:2], title_mapping.get(t["subject"][2], t["subject"][2])],
                 "relation": title_mapping.get(t["relation"], t["relation"]),
                 "object": [*t["object"][:2], title_mapping.get(t["object"][2], t["object"][2])]}
                for t in triplets
            ]  # fmt: skip
        if labels_are_tokens and len(windows) > 1 and (labels or triplets):
            raise ValueError(
                f"document {doc_id!r}: word-level labels with {len(windows)} windows; the reference maps "
                "them to chars with document-level indices in window-level maps (wrong past the first "
                "window). Use window_size=None or char-level labels."
            )
        text = " ".join(source) if is_split_into_words else source
        for window in windows:
            window.doc_topic = topic
            row = window.to_dict()
            if labels_are_tokens:
                row.update(_token_labels(window, labels, triplets))
            else:
                row.update(_char_labels(window, text, labels, triplets))
            yield row


def _map(label: str, title_mapping: dict[str, str] | None, relation_mapping: dict[str, str] | None) -> str:
    if title_mapping is not None:
        label = title_mapping.get(label, label)
    if relation_mapping is not None:
        label = relation_mapping.get(label, label)
    return label


def _strip_spaces(text: str, start: int, end: int) -> tuple[int, int]:
    while 0 <= end - 1 < len(text) and text[end - 1] == " ":
        end -= 1
    while 0 <= start < len(text) and text[start] == " ":
        start += 1
    return start, end


def _char_labels(window: Any, text: str, labels: list, triplets: list | None) -> dict:
    lo, hi = window.offset, window.offset + len(window.text)
    starts, ends = window.word_starts.tolist(), window.word_ends.tolist()
    window_labels = []
    for s, e, label in labels:
        s, e = _strip_spaces(text, s, e)
        if s >= lo and e <= hi and s <= e:
            window_labels.append([s, e, label])
    window_labels_tokens = []
    for s, e, label in window_labels:
        ws, we = _exact_words(starts, ends, s, e)
        if ws is None or we is None:
            ws, we = _snapped_words(starts, ends, s, e)
        if ws is not None and we is not None:
            window_labels_tokens.append([ws, we, label])
    out: dict[str, Any] = {"window_labels": window_labels, "window_labels_tokens": window_labels_tokens}
    if triplets is None:
        return out
    kept = []
    for t in triplets:
        ss, se = _strip_spaces(text, t["subject"][0], t["subject"][1])
        os_, oe = _strip_spaces(text, t["object"][0], t["object"][1])
        if ss >= lo and se <= hi and os_ >= lo and oe <= hi:
            kept.append({"subject": [ss, se, t["subject"][2]], "relation": t["relation"],
                         "object": [os_, oe, t["object"][2]]})  # fmt: skip
    kept_tokens = []
    for t in kept:
        subject = _triplet_arg_words(starts, ends, t["subject"], window_labels, window_labels_tokens)
        obj = _triplet_arg_words(starts, ends, t["object"], window_labels, window_labels_tokens)
        if subject is None or obj is None:
            continue
        kept_tokens.append({"subject": [*subject, t["subject"][2]], "relation": t["relation"],
                            "object": [*obj, t["object"][2]]})  # fmt: skip
    out["window_triplet_labels"] = kept
    out["window_triplet_labels_tokens"] = kept_tokens
    return out


def _exact_words(starts: list[int], ends: list[int], s: int, e: int) -> tuple[int | None, int | None]:
    ws = next((i for i, v in enumerate(starts) if v == s), None)
    we = next((i + 1 for i, v in enumerate(ends) if v == e), None)
    return ws, we


def _snapped_words(starts: list[int], ends: list[int], s: int, e: int) -> tuple[int | None, int | None]:
    """The reference's fallback: scan words in order, taking every word whose [start, end] (inclusive)
    holds the char, until both ends are found (a later adjacent word can overwrite the start)."""
    ws = we = None
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        if a <= s <= b:
            ws = i
        if a <= e <= b:
            we = i + 1
        if ws is not None and we is not None:
            break
    return ws, we


def _triplet_arg_words(
    starts: list[int], ends: list[int], arg: list, window_labels: list, window_labels_tokens: list
) -> tuple[int, int] | None:
    ws, we = _exact_words(starts, ends, arg[0], arg[1])
    if ws is not None and we is not None:
        return ws, we
    # fall back to the window label with the same chars, read at the same position in the token labels
    idx = next((i for i, lab in enumerate(window_labels) if lab[0] == arg[0] and lab[1] == arg[1]), None)
    if idx is None or idx >= len(window_labels_tokens):
        return None
    return window_labels_tokens[idx][0], window_labels_tokens[idx][1]


def _token_labels(window: Any, labels: list, triplets: list | None) -> dict:
    first = window.first_word
    last = window.first_word + len(window.words) - 1
    starts, ends = window.word_starts.tolist(), window.word_ends.tolist()
    tokens = [lab for lab in labels if lab[0] >= first and lab[1] <= last]  # [quirk] end vs last word
    out: dict[str, Any] = {
        "window_labels_tokens": tokens,
        "window_labels": [[starts[s], ends[e - 1], label] for s, e, label in tokens],
    }
    if triplets is None:
        return out
    # [quirk] the reference tests the object's end twice instead of its start
    kept = [
        t for t in triplets
        if t["subject"][0] >= first and t["subject"][1] <= last and first <= t["object"][1] <= last
    ]  # fmt: skip
    out["window_triplet_labels_tokens"] = kept
    out["window_triplet_labels"] = [
        {"subject": [starts[t["subject"][0]], ends[t["subject"][1] - 1], t["subject"][2]],
         "relation": t["relation"],
         "object": [starts[t["object"][0]], ends[t["object"][1] - 1], t["object"][2]]}
        for t in kept
    ]  # fmt: skip
    return out


def labelled_windows(
    docs: Iterable[LabelledDocument],
    window_size: int | str | None = 32,
    window_stride: int | None = 16,
    use_dataset_words: bool = False,
    title_map: dict[str, str] | None = None,
    batch_doc_topic: bool = False,
) -> Iterator[dict]:
    """Windowized reader-training rows (§4.3) of annotated `LabelledDocument`s, with char labels (`window_labels`,
    `window_labels_tokens`, and for RE `window_triplet_labels`, `window_triplet_labels_tokens`), made by
    `create_windows` (the reference's `relik data create-windows`).

    Words come from relik_jax.text.words (the reference's spaCy) or, with `use_dataset_words=True`, from the
    dataset's tokens split on single spaces (the reference's `--is-split-into-words`; labels stay char-level,
    which the reference cannot do). `doc_topic` is each document's first word unless `batch_doc_topic`
    (the reference command's value: the first document's first word for up to 10,000 documents)."""
    splitter = WindowSplitter(window_size, window_stride)
    topic: str | None = None
    for doc in docs:
        if use_dataset_words and (not doc.words or doc.text != " ".join(doc.words)):
            raise ValueError(
                f"document {doc.doc_id!r}: use_dataset_words=True needs words joined by single spaces = text"
            )
        row = to_raw_el(doc, include_triplets=bool(doc.triplets))
        if use_dataset_words:
            row["doc_words"] = list(doc.words)
        for window in _create_windows_batch([row], splitter, use_dataset_words, False, title_map, None):
            if batch_doc_topic:
                topic = window["doc_topic"] if topic is None else topic
                window["doc_topic"] = topic
            yield window


def to_dpr(
    windows: Iterable[dict],
    documents: Iterable[dict],
    label_type: str = "span",
    title_map: dict[str, str] | None = None,
    missing: set[str] | None = None,
) -> Iterator[dict]:
    """§4.1 DPR-like retriever training rows: the reference's `relik data convert-to-dpr`.

    `documents` is the passage store: dicts `{"text", "id", "metadata"}` (e.g. `read_jsonl` of a
    documents.jsonl; for repeated texts the last one wins). For every labelled window, each label
    (`window_labels` titles, or `window_triplet_labels` relations with `label_type="triplet"`), stripped,
    NME skipped, mapped through `title_map` (spans only), that names a passage becomes a positive with
    `metadata.passage_id = "<doc_id>_<offset>_<label index>"`; labels naming no passage go to `missing`;
    windows without positives are skipped. [Quirk kept] a passage that a window names twice appears twice,
    both times with the passage id of its last occurrence (the reference mutates one shared object)."""
    if label_type not in ("span", "triplet"):
        raise ValueError(f"label_type must be 'span' or 'triplet', got {label_type!r}")
    title_map = title_map or {}
    store: dict[str, dict] = {}
    for d in documents:
        store[d["text"]] = {"text": d["text"], "id": d.get("id"), "metadata": dict(d.get("metadata") or {})}
    for w in windows:
        if label_type == "triplet":
            labels = [(i, t["relation"]) for i, t in enumerate(w.get("window_triplet_labels", []))]
        else:
            labels = [(i, lab[2]) for i, lab in enumerate(w.get("window_labels", []))]
        positives: list[dict] = []
        for i, label in labels:
            if not label:
                continue
            label = label.strip()
            if label_type == "span":
                if label == NME:
                    continue
                label = title_map.get(label, label)
            passage = store.get(label)
            if passage is None:
                if missing is not None:
                    missing.add(label)
                continue
            passage["metadata"]["passage_id"] = f"{w['doc_id']}_{w['offset']}_{i}"
            positives.append(passage)
        if not positives:
            continue
        yield {
            "id": f"{w['doc_id']}_{w['offset']}",
            "doc_topic": w["doc_topic"],
            "question": w["doc_text"] if "doc_text" in w else w["text"],
            "positive_ctxs": [
                {"text": p["text"], "id": p["id"], "metadata": dict(p["metadata"])} for p in positives
            ],
            "negative_ctxs": "",
            "hard_negative_ctxs": "",
        }


CharSpan = tuple[int, int, str]  # (char start, char end exclusive, label)
WordSpan = tuple[int, int, str]  # (window-relative word start, word end exclusive, label)


@dataclasses.dataclass
class LabelledWindow:
    """A reader window with its gold labels (char level for EL and evaluation, word level for RE)."""

    window: ReaderWindow
    labels: list[CharSpan]
    word_labels: list[WordSpan]
    triplets: list[tuple[CharSpan, str, CharSpan]]  # char-level (evaluation)
    word_triplets: list[tuple[WordSpan, str, WordSpan]]

    @classmethod
    def from_dict(cls, d: dict[str, Any], span_candidates: Sequence[str] | None = None,
                  triplet_candidates: Sequence[str] | None = None) -> LabelledWindow:
        """From a windowized row (`windowing.labelled_windows` / the reference's §4.3 JSONL); candidates given here
        override the row's `span_candidates` / `triplet_candidates`."""
        window = ReaderWindow.from_reference(d)
        if span_candidates is not None:
            window.span_candidates = list(span_candidates)
        if triplet_candidates is not None:
            window.triplet_candidates = list(triplet_candidates)
        labels = [(int(s), int(e), str(lab)) for s, e, lab in d.get("window_labels", [])]
        word_labels = [(int(s), int(e), str(lab)) for s, e, lab in d.get("window_labels_tokens", [])]

        def trip(rows: list) -> list:
            return [((*map(int, t["subject"][:2]), str(t["subject"][2])), str(t["relation"]),
                     (*map(int, t["object"][:2]), str(t["object"][2]))) for t in rows]

        return cls(window, labels, word_labels, trip(d.get("window_triplet_labels", [])),
                   trip(d.get("window_triplet_labels_tokens", [])))
