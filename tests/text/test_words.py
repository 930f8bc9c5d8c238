"""relik_jax.text.words against spaCy's English tokenizer (golden file made by tests/fixtures/make_spacy_golden.py)."""

import json
import time
from pathlib import Path

from relik_jax.text.words import Word, WordTokenizer, tokenize, tokenize_columns, tokenize_split_words

GOLDEN = (Path(__file__).resolve().parents[1] / "fixtures") / "spacy_golden.jsonl"


def test_matches_spacy_golden():
    rows = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 500
    for row in rows:
        ours = [[w.text, w.start, w.end] for w in tokenize(row["text"])]
        assert ours == row["words"], row["text"]
        texts, starts, ends = tokenize_columns(row["text"])  # the pipeline's path: the same words as columns
        assert [list(w) for w in zip(texts, starts, ends, strict=True)] == row["words"], row["text"]


def test_single_space_fast_path_equals_the_streaming_path():
    # texts whose words are separated by single spaces take a split-based path; iter_words scans with a regex
    tok = WordTokenizer()
    texts = ["Mr. Smith's U.S.-based firm (e.g. Apple Inc.) earned $1,000.50!", "a . b", "He 's here :) (: ._.",
             "x", "don't stop 10a.m. 3p.m. e.g. i.e. a.B c", "(-: (; 8- ) :'( <3 =)", "Calif. Ill. Jan. Ltd. Inc."]
    for text in texts:
        assert tokenize(text) == list(tok.iter_words(text)), text


def test_offsets_and_indices_are_consistent():
    text = "I don't know, Mr. Smith's U.S.-based firm (e.g. Apple Inc.) earned $1,000.50!"
    words = tokenize(text)
    assert [w.text for w in words][:4] == ["I", "do", "n't", "know"]
    for i, w in enumerate(words):
        assert w.index == i and text[w.start : w.end] == w.text


def test_edge_cases_do_not_crash():
    assert tokenize("") == []
    assert tokenize("word") == [Word("word", 0, 4, 0)]
    assert [w.text for w in tokenize("?!...")] == ["?", "!", "..."]
    assert [w.text for w in tokenize("東京は大きい。")] == ["東京は大きい", "。"]
    nul = tokenize("a\x00b \x01 c")
    assert "".join(w.text for w in nul) == "a\x00b\x01c"
    assert [w.text for w in tokenize("   ")] == ["   "]


def test_split_into_words_mode():
    words = tokenize("New York  is big", is_split_into_words=True)
    assert [(w.text, w.start, w.end, w.index) for w in words] == [
        ("New", 0, 3, 0),
        ("York", 4, 8, 1),
        ("is", 10, 12, 2),
        ("big", 13, 16, 3),
    ]
    assert [w.text for w in tokenize_split_words(["U.S.", "don't"])] == ["U.S.", "don't"]


def test_long_document_is_fast_and_streamed():
    text = "The quick brown fox, Mr. Fox, didn't jump over 3.5 lazy dogs. " * 8000  # ~120k words
    t0 = time.perf_counter()
    n = sum(1 for _ in WordTokenizer().iter_words(text))
    assert n == 16 * 8000
    assert time.perf_counter() - t0 < 10
