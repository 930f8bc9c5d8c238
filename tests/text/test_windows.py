"""Windowing (reference WindowSentenceSplitter semantics), JSONL rows, and merging predictions back."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from relik_jax.text.windows import Window, WindowSplitter, merge_windows, window_bounds, windows_to_output
from relik_jax.text.words import tokenize


def reference_bounds(n, size, stride):
    # the loop of the reference's WindowSentenceSplitter.split_sentences, written out independently
    out = []
    stride = stride if stride != 0 else size
    for i in range(0, n, stride):
        if i != 0 and i + size > n:
            overflow = i + size - n
            if overflow >= stride:
                break
            i -= overflow
        out.append((i, min(i + size, n)))
    return out


def test_bounds_match_reference_loop():
    assert list(window_bounds(40, 32, 16)) == [(0, 32), (8, 40)]
    assert list(window_bounds(10, 32, 16)) == [(0, 10)]
    assert list(window_bounds(64, 32, 16)) == [(0, 32), (16, 48), (32, 64)]
    for n in range(0, 130):
        for size, stride in [(32, 16), (64, 32), (5, 5), (7, 3), (4, 0), (1, 1)]:
            assert list(window_bounds(n, size, stride)) == reference_bounds(n, size, stride), (
                n,
                size,
                stride,
            )
    assert list(window_bounds(5, None)) == [(0, 5)]
    with pytest.raises(ValueError, match="window size"):
        list(window_bounds(5, 0))


def test_window_fields_and_reference_row():
    text = "Obama was born in Hawaii. He was president of the U.S. until 2017."
    windows = list(WindowSplitter(8, 4).split_document(text, doc_id=7))
    assert [w.window_id for w in windows] == list(range(len(windows)))
    for w in windows:
        assert w.text == text[w.offset : w.char_end]
        row = w.to_dict()
        assert row["doc_id"] == 7 and row["tokens"] == row["words"] == w.words
        assert row["doc_topic"] == "Obama"
        for i, word in enumerate(w.words):
            s, e = row["token2char_start"][str(i)], row["token2char_end"][str(i)]
            assert text[s:e] == word
            assert row["char2token_start"][str(s)] == w.first_word + i
            assert row["char2token_end"][str(e)] == w.first_word + i
        back = Window.from_dict(json.loads(json.dumps(row)))
        assert back.words == w.words and back.first_word == w.first_word
        assert np.array_equal(back.word_starts, w.word_starts)
    assert windows[1].words[0] == windows[0].words[4]  # stride 4


def test_doc_topic_quirk_is_optional():
    docs = ["SOCCER - Japan wins .", "CRICKET - India loses ."]
    own = {w.doc_id: w.doc_topic for w in WindowSplitter(3, 2).split_documents(docs)}
    quirk = {w.doc_id: w.doc_topic for w in WindowSplitter(3, 2).split_documents(docs, batch_doc_topic=True)}
    assert own == {0: "SOCCER", 1: "CRICKET"}
    assert quirk == {0: "SOCCER", 1: "SOCCER"}


def test_edge_documents_do_not_crash():
    splitter = WindowSplitter(4, 2)
    assert list(splitter.split_document("")) == []
    (one,) = splitter.split_document("Hello")
    assert one.words == ["Hello"] and one.text == "Hello"
    assert [w.words for w in splitter.split_document("?!")] == [["?", "!"]]
    for text in ["Здравствуй, мир! Как дела?", "東京都は日本の首都です。", "a\x00b\x01 c\x7f d"]:
        ws = list(splitter.split_document(text))
        assert ws and all(w.text == text[w.offset : w.char_end] for w in ws)


def test_long_document_windows_quickly():
    text = "word " * 100_000
    t0 = time.perf_counter()
    n = 0
    last = None
    for w in WindowSplitter(32, 16).split_document(text):
        n += 1
        last = w
    assert n == len(reference_bounds(100_000, 32, 16))
    assert last.first_word + len(last.words) == 100_000
    assert time.perf_counter() - t0 < 15


def _predict(windows, spans_by_window, triplets_by_window=None):
    for w in windows:
        w.predicted_spans = spans_by_window.get(w.window_id, [])
        w.predicted_triplets = (triplets_by_window or {}).get(w.window_id, [])
    return windows


def test_merge_union_conflicts_and_triplets():
    text = "Paris is the capital of France and Paris hosts the Louvre museum today ."
    windows = list(WindowSplitter(10, 5).split_document(text, doc_id="d"))
    assert len(windows) == 2
    paris, france, paris2 = (0, 5, "Paris"), (24, 30, "France"), (35, 40, "Paris")
    louvre = (51, 57, "Louvre")
    _predict(
        windows,
        {
            0: [paris, france, paris2],
            # the overlap predicts France again, plus a conflicting label for the same span
            1: [france, (24, 30, "France national football team"), paris2, louvre],
        },
        {0: [(0, "capital", 1, 0.914)], 1: [(2, "located in", 3, 0.5), (0, "capital", 2, 0.3)]},
    )
    (merged,) = merge_windows(reversed(windows))  # order of arrival does not matter
    assert merged.spans == sorted({paris, france, paris2, louvre, (24, 30, "France national football team")})
    out = windows_to_output(merged, document=text)
    assert [s.text for s in out.spans] == ["Paris", "France", "France", "Paris", "Louvre"]
    assert {(t.subject.text, t.label, t.object.text, t.confidence) for t in out.triplets} == {
        ("Paris", "capital", "France", 0.91),
        ("Paris", "located in", "Louvre", 0.5),
        ("France", "capital", "Paris", 0.3),
    }
    assert out.tokens == [w.text for w in tokenize(text)]
    ents = out.entities()
    assert [s.start for s in ents["Paris"]] == [0, 35]
    assert set(ents) == {"Paris", "France", "Louvre", "France national football team"}


def test_merge_keeps_duplicate_triplets_with_different_confidence_but_view_dedups():
    text = "Rome is in Italy and Italy is in Europe ."
    windows = list(WindowSplitter(6, 3).split_document(text))
    rome, italy = (0, 4, "Rome"), (11, 16, "Italy")
    _predict(
        windows,
        {0: [rome, italy], 1: [rome, italy]},
        {0: [(0, "country", 1, 0.8)], 1: [(0, "country", 1, 0.6)]},
    )
    (merged,) = merge_windows(windows)
    out = windows_to_output(merged, document=text)
    assert len(out.triplets) == 2  # reference: set union of (.., confidence) tuples keeps both
    (best,) = out.unique_triplets()
    assert best.confidence == 0.8 and best.subject.text == "Rome" and best.object.text == "Italy"


def test_merged_text_matches_document():
    text = "One two three four five six seven eight nine ten eleven twelve"
    windows = list(WindowSplitter(5, 2).split_document(text))
    (merged,) = merge_windows(windows)
    assert merged.text == text


REFERENCE = (Path(__file__).resolve().parents[1] / "fixtures") / "reference_windows.json"


def test_windows_and_merge_match_reference_package():
    """Fixture written by the reference relik 1.0.7 WindowManager (tests/fixtures/make_reference_windows.py)."""
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))
    docs = ref["documents"]
    for case in ref["cases"]:
        splitter = WindowSplitter(case["window_size"], case["window_stride"])
        # the reference gives every document of a call the first document's first word as doc_topic
        ours = list(splitter.split_documents(docs, batch_doc_topic=True))
        assert len(ours) == len(case["windows"]), case["window_size"]
        for w, row in zip(ours, case["windows"], strict=True):
            mine = w.to_dict()
            assert list(mine) == list(row)  # same keys in the same order (byte-identical JSONL)
            assert mine == row, (
                case["window_size"],
                case["window_stride"],
                row["doc_id"],
                row["window_id"],
            )
        for w, pred in zip(ours, case["predictions"], strict=True):
            w.predicted_spans = [tuple(s) for s in pred["predicted_spans"]]
            w.predicted_triplets = [tuple(t) for t in pred["predicted_triplets"]]
            w.span_candidates = pred["span_candidates"]
        merged = merge_windows(ours)
        assert len(merged) == len(case["merged"])
        for m, exp in zip(merged, case["merged"], strict=True):
            assert m.doc_id == exp["doc_id"]
            assert m.text == exp["text"]
            assert [list(s) for s in m.spans] == exp["predicted_spans"]
            assert sorted([list(s), r, list(o), c] for s, r, o, c in m.triplets) == sorted(
                exp["predicted_triplets"]
            )
            assert m.span_candidates == exp["span_candidates"]


def test_pre_split_words_and_span_probabilities():
    splitter = WindowSplitter(3, 2)
    a = list(splitter.split_documents([["New", "York", "is", "big", "."]]))
    b = list(splitter.split_document("New York is big .", is_split_into_words=True))
    assert [w.to_dict() for w in a] == [w.to_dict() for w in b]
    assert a[0].text == "New York is"
    windows = list(WindowSplitter(4, 2).split_document("a b c d e f"))
    for w, p in zip(windows, [0.9, 0.1], strict=True):
        w.predicted_spans = [(4, 5, "C")]
        w.predicted_span_probs = {(4, 5): [("C", p)]}
    (merged,) = merge_windows(windows)
    assert merged.spans == [(4, 5, "C")] and merged.span_probs == {(4, 5): [("C", 0.9)]}  # first window wins


def test_given_mentions_go_to_the_windows_that_contain_them():
    text = "Alan Turing was born in London and worked in Manchester ."
    mentions = [(0, 11), (24, 30), (45, 55)]
    windows = list(WindowSplitter(6, 3).split_document(text, spans=mentions))
    for w in windows:
        assert w.spans == [m for m in mentions if w.char_start <= m[0] and m[1] <= w.char_end]
        assert w.to_dict()["spans"] == [list(m) for m in w.spans]
    assert windows[0].spans == [(0, 11), (24, 30)] and windows[-1].spans[-1] == (45, 55)
