"""Windowing (reference WindowSentenceSplitter semantics) and JSONL rows."""

import json
import time

import numpy as np
import pytest

from relik_jax.text.windows import Window, WindowSplitter, window_bounds


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


def test_pre_split_words():
    splitter = WindowSplitter(3, 2)
    a = list(splitter.split_documents([["New", "York", "is", "big", "."]]))
    b = list(splitter.split_document("New York is big .", is_split_into_words=True))
    assert [w.to_dict() for w in a] == [w.to_dict() for w in b]
    assert a[0].text == "New York is"


def test_given_mentions_go_to_the_windows_that_contain_them():
    text = "Alan Turing was born in London and worked in Manchester ."
    mentions = [(0, 11), (24, 30), (45, 55)]
    windows = list(WindowSplitter(6, 3).split_document(text, spans=mentions))
    for w in windows:
        assert w.spans == [m for m in mentions if w.char_start <= m[0] and m[1] <= w.char_end]
        assert w.to_dict()["spans"] == [list(m) for m in w.spans]
    assert windows[0].spans == [(0, 11), (24, 30)] and windows[-1].spans[-1] == (45, 55)


def test_split_columns_equals_split_document():
    from relik_jax.text.words import tokenize_columns

    text = "Barack Obama was born in Honolulu, Hawaii. He was the 44th president of the United States."
    splitter = WindowSplitter(8, 4)
    expected = list(splitter.split_document(text, 7, spans=[(0, 12, "Q76")]))
    got = list(splitter.split_columns(text, 7, *tokenize_columns(text), spans=[(0, 12, "Q76")]))
    assert got == expected and len(got) > 2
