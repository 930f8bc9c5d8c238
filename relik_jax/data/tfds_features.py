"""TFDS example format of a reader-training window: one windowized row (§4.3) <-> one typed feature dict.

`encode_window(row)` splits a row into typed features (ids, text, words, char offsets, gold spans and triplets,
candidates); keys the typed features do not cover travel as JSON in `extra_json`; `decode_window` inverts it
exactly (checked when a builder writes each example). Used by `relik_jax.data.tfds`'s builders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import tensorflow_datasets as tfds
except ImportError as e:  # an optional extra: say how to get it
    raise ImportError(
        "relik_jax.data.tfds needs tensorflow-datasets, array-record and importlib-resources (no TensorFlow): "
        "pip install 'relik-jax[data]'  (or: pip install tensorflow-datasets array-record importlib-resources)"
    ) from e

__all__ = ["window_features", "encode_window", "decode_window", "tfds"]

_TEXT = tfds.features.Text
_SEQ_TEXT = lambda: tfds.features.Sequence(tfds.features.Text())  # noqa: E731
_INTS = lambda k: tfds.features.Tensor(shape=(None, k) if k else (None,), dtype=np.int64)  # noqa: E731




def window_features() -> tfds.features.FeaturesDict:
    """Features of one window. Text comes back as bytes, int arrays as int64 numpy arrays.

    word_starts / word_ends: [W] absolute char offsets; window_labels*: [N, 2] (start, end) + names;
    window_triplet_labels*: [N, 4] (subject start, end, object start, end) + subject / relation / object names."""
    def triplets(prefix: str) -> dict[str, Any]:
        return {prefix: _INTS(4), f"{prefix}_subjects": _SEQ_TEXT(), f"{prefix}_relations": _SEQ_TEXT(),
                f"{prefix}_objects": _SEQ_TEXT()}

    return tfds.features.FeaturesDict({
        "index": np.int64,  # position of the window in the split (the in-memory order)
        "doc_id": _TEXT(),
        "doc_id_is_int": np.bool_,
        "window_id": np.int64,
        "offset": np.int64,
        "first_word": np.int64,  # document-level index of words[0]
        "text": _TEXT(),
        "doc_topic": _TEXT(),
        "words": _SEQ_TEXT(),
        "word_starts": _INTS(0),
        "word_ends": _INTS(0),
        "window_labels": _INTS(2),
        "window_labels_names": _SEQ_TEXT(),
        "window_labels_tokens": _INTS(2),
        "window_labels_tokens_names": _SEQ_TEXT(),
        "has_triplets": np.bool_,
        **triplets("window_triplet_labels"),
        **triplets("window_triplet_labels_tokens"),
        "has_span_candidates": np.bool_,
        "span_candidates": _SEQ_TEXT(),
        "has_triplet_candidates": np.bool_,
        "triplet_candidates": _SEQ_TEXT(),
        "extra_json": _TEXT(),  # JSON object: keys the typed fields do not reproduce exactly, `__absent__` keys
    })


_TYPED_KEYS = ("doc_id", "window_id", "text", "tokens", "words", "doc_topic", "offset", "token2char_start",
               "token2char_end", "char2token_start", "char2token_end", "window_labels", "window_labels_tokens",
               "window_triplet_labels", "window_triplet_labels_tokens", "span_candidates", "triplet_candidates")


def _spans(rows: Sequence[Sequence[Any]]) -> tuple[np.ndarray, list[str]]:
    arr = np.asarray([[int(r[0]), int(r[1])] for r in rows], np.int64).reshape(-1, 2)
    return arr, [str(r[2]) for r in rows]


def _triplets(rows: Sequence[dict[str, Any]], prefix: str) -> dict[str, Any]:
    arr = np.asarray([[int(t["subject"][0]), int(t["subject"][1]), int(t["object"][0]), int(t["object"][1])]
                      for t in rows], np.int64).reshape(-1, 4)
    return {prefix: arr, f"{prefix}_subjects": [str(t["subject"][2]) for t in rows],
            f"{prefix}_relations": [str(t["relation"]) for t in rows],
            f"{prefix}_objects": [str(t["object"][2]) for t in rows]}


def _typed(row: dict[str, Any], index: int) -> dict[str, Any]:
    """The typed fields of a window row; values the schema cannot hold become defaults (the round-trip check in
    `encode_window` then moves the original into `extra_json`)."""
    words = [str(w) for w in (row.get("words") or row.get("tokens") or [])]
    t2c_s, t2c_e = row.get("token2char_start") or {}, row.get("token2char_end") or {}
    try:
        starts = [int(t2c_s[str(i)]) for i in range(len(words))]
        ends = [int(t2c_e[str(i)]) for i in range(len(words))]
        first = int((row.get("char2token_start") or {})[str(starts[0])]) if words else 0
    except (KeyError, TypeError, ValueError):
        starts, ends, first = [], [], 0

    def safe(fn: Any, value: Any, default: Any) -> Any:
        try:
            return fn(value)
        except (KeyError, TypeError, ValueError, IndexError):
            return default

    empty_spans = (np.zeros((0, 2), np.int64), [])
    labels = safe(_spans, row.get("window_labels") or [], empty_spans)
    labels_tokens = safe(_spans, row.get("window_labels_tokens") or [], empty_spans)
    has_trip = "window_triplet_labels" in row or "window_triplet_labels_tokens" in row
    doc_id = row.get("doc_id")
    out = {
        "index": index,
        "doc_id": str(doc_id) if doc_id is not None else "",
        "doc_id_is_int": isinstance(doc_id, int) and not isinstance(doc_id, bool),
        "window_id": safe(int, row.get("window_id"), 0),
        "offset": safe(int, row.get("offset"), 0),
        "first_word": first,
        "text": str(row.get("text") or ""),
        "doc_topic": row["doc_topic"] if isinstance(row.get("doc_topic"), str) else "",
        "words": words,
        "word_starts": np.asarray(starts, np.int64),
        "word_ends": np.asarray(ends, np.int64),
        "window_labels": labels[0],
        "window_labels_names": labels[1],
        "window_labels_tokens": labels_tokens[0],
        "window_labels_tokens_names": labels_tokens[1],
        "has_triplets": has_trip,
        "has_span_candidates": row.get("span_candidates") is not None,
        "span_candidates": safe(lambda c: [str(x) for x in c], row.get("span_candidates") or [], []),
        "has_triplet_candidates": row.get("triplet_candidates") is not None,
        "triplet_candidates": safe(lambda c: [str(x) for x in c], row.get("triplet_candidates") or [], []),
    }
    for key in ("window_triplet_labels", "window_triplet_labels_tokens"):
        out.update(safe(lambda r, k=key: _triplets(r, k), row.get(key) or [], _triplets([], key)))
    return out


def _text(x: Any) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _texts(xs: Any) -> list[str]:
    return [_text(x) for x in xs]


def _ints(a: Any) -> list:
    return np.asarray(a, np.int64).tolist()


def decode_window(ex: dict[str, Any]) -> dict[str, Any]:
    """A window row (the dict `datasets.labelled_windows` yields, §4.3) from a decoded example."""
    words = _texts(ex["words"])
    starts, ends = _ints(ex["word_starts"]), _ints(ex["word_ends"])
    first = int(ex["first_word"])
    doc_id: Any = _text(ex["doc_id"])
    row: dict[str, Any] = {
        "doc_id": int(doc_id) if bool(ex["doc_id_is_int"]) else doc_id,
        "window_id": int(ex["window_id"]),
        "text": _text(ex["text"]),
        "tokens": list(words),
        "words": words,
        "doc_topic": _text(ex["doc_topic"]),
        "offset": int(ex["offset"]),
        "token2char_start": {str(i): s for i, s in enumerate(starts)},
        "token2char_end": {str(i): e for i, e in enumerate(ends)},
        "char2token_start": {str(s): first + i for i, s in enumerate(starts)},
        "char2token_end": {str(e): first + i for i, e in enumerate(ends)},
        "window_labels": [[s, e, n] for (s, e), n in zip(_ints(ex["window_labels"]),
                                                         _texts(ex["window_labels_names"]), strict=True)],
        "window_labels_tokens": [[s, e, n] for (s, e), n in zip(_ints(ex["window_labels_tokens"]),
                                                                _texts(ex["window_labels_tokens_names"]),
                                                                strict=True)],
    }
    if bool(ex["has_triplets"]):
        for key in ("window_triplet_labels", "window_triplet_labels_tokens"):
            row[key] = [{"subject": [ss, se, sub], "relation": rel, "object": [os_, oe, obj]}
                        for (ss, se, os_, oe), sub, rel, obj in zip(
                            _ints(ex[key]), _texts(ex[f"{key}_subjects"]), _texts(ex[f"{key}_relations"]),
                            _texts(ex[f"{key}_objects"]), strict=True)]
    if bool(ex["has_span_candidates"]):
        row["span_candidates"] = _texts(ex["span_candidates"])
    if bool(ex["has_triplet_candidates"]):
        row["triplet_candidates"] = _texts(ex["triplet_candidates"])
    extra = json.loads(_text(ex["extra_json"]) or "{}")
    for key in extra.pop("__absent__", []):
        row.pop(key, None)
    row.update(extra)
    return row


def _plain(x: Any) -> Any:
    """What the typed features give back for `x` (numpy arrays as lists) for comparisons."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def encode_window(row: dict[str, Any], index: int) -> dict[str, Any]:
    """Feature dict of a window row; `decode_window(encode_window(row))` == `row` (checked here: keys the typed
    fields cannot reproduce exactly go to `extra_json`; anything JSON cannot carry exactly raises a ValueError)."""
    ex = _typed(row, index)
    ex["extra_json"] = ""
    back = decode_window({k: _plain(v) for k, v in ex.items()})
    extra: dict[str, Any] = {k: row[k] for k in row if k not in back or back[k] != row[k]}
    absent = [k for k in back if k not in row]
    if absent:
        extra["__absent__"] = absent
    ex["extra_json"] = json.dumps(extra, ensure_ascii=False) if extra else ""
    if extra:
        back = decode_window({k: _plain(v) for k, v in ex.items()})
        if back != row:
            bad = sorted(k for k in set(back) | set(row) if back.get(k) != row.get(k))
            raise ValueError(f"window {index} (doc {row.get('doc_id')!r}): fields {bad} do not survive JSON "
                             "(non-string dict keys, tuples, floats as ints, ...)")
    return ex


