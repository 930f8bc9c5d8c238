"""Reader input rows: layout, masks, symbols, trimming, patches and the long-window error (hand-checked)."""

import dataclasses

import numpy as np
import pytest
from reader_helpers import tiny_tokenizer

from relik_jax.reader.inputs import (
    NME,
    SpanInputConfig,
    TokenizerInfo,
    TripletInputConfig,
    relation_symbols,
    span_rows,
    span_symbols,
    text_tokens,
    text_tokens_many,
    triplet_row,
)
from relik_jax.reader.tokens import SubwordCache
from relik_jax.text.windows import Window, candidate_texts


def window(text: str, span_candidates=None, triplet_candidates=None, first_word=0) -> Window:
    words = text.split(" ")
    starts, pos = [], 100  # absolute offsets: the window starts at char 100 of its document
    for w in words:
        starts.append(pos)
        pos += len(w) + 1
    return Window.from_words(words, starts, [s + len(w) for s, w in zip(starts, words, strict=True)], first_word,
                             span_candidates=span_candidates, triplet_candidates=triplet_candidates)


@pytest.fixture(scope="module")
def el_tok():
    tok = tiny_tokenizer(span_symbols(100))
    return tok, TokenizerInfo.from_tokenizer(tok)


def test_symbols():
    assert span_symbols(2) == [NME, "[E-0]", "[E-1]"]
    assert relation_symbols(2) == ["[R-0]", "[R-1]"]
    assert relation_symbols(1, use_nme=True) == [NME, "[R-0]"]


def test_span_row_layout(el_tok):
    tok, info = el_tok
    cfg = SpanInputConfig(tuple(span_symbols(101)))
    w = window("Barack Obama was born in Honolulu", ["Barack Obama", "Honolulu"])
    (row,) = span_rows(w, 0, tok, info, cfg)
    text_ids = [i for word in w.words for i in tok.encode(word, add_special_tokens=False).ids]
    cands = [tok.encode(s, add_special_tokens=False).ids for s in [NME, "[E-0] Barack Obama", "[E-1] Honolulu"]]
    expected = [1, *text_ids, 2, *[i for c in cands for i in c], 2]
    assert row.input_ids.tolist() == expected
    n = len(text_ids)
    assert row.token_type_ids.tolist() == [0] * (n + 2) + [1] * (len(expected) - n - 2)
    assert row.prediction_mask.tolist() == [True] + [False] * n + [True] * (len(expected) - n - 1)
    nme, e0, e1 = (tok.token_to_id(s) for s in (NME, "[E-0]", "[E-1]"))
    assert np.flatnonzero(row.special_symbols_mask).tolist() == [0] + [expected.index(x) for x in (nme, e0, e1)]
    assert row.predictable_candidates == [NME, "Barack Obama", "Honolulu"]
    # absolute char offsets of sub-tokens and document-level word indices
    assert row.text.char_starts[0] == 100 and row.text.token2word_start[0] == 0
    assert max(row.text.token2word_end.values()) == len(w.words) - 1


def test_span_patches_continue_symbol_numbering(el_tok):
    tok, info = el_tok
    cands = [f"Candidate number {i} of the United States" for i in range(30)]
    cfg = SpanInputConfig(tuple(span_symbols(101)), model_max_length=120)
    rows = span_rows(window("Barack Obama was born in Honolulu", cands), 3, tok, info, cfg)
    assert len(rows) > 1
    assert [r.patch_offset for r in rows] == list(range(len(rows)))
    seen = [c for r in rows for c in r.predictable_candidates[1:]]
    assert seen == cands  # every candidate in exactly one patch, in order
    for r in rows:
        assert r.predictable_candidates[0] == NME
        assert len(r) <= 120 - 20 + 2 + len(r.text)  # the +20 slack with a strict '<'
    # the second patch's first real candidate is paired with the next symbol
    k = len(rows[0].predictable_candidates) - 1
    first = tok.encode(f"[E-{k}] {cands[k]}", add_special_tokens=False).ids[:22]
    n_text = len(rows[1].text)
    nme_len = len(tok.encode(NME, add_special_tokens=False).ids)
    start = n_text + 2 + nme_len
    assert rows[1].input_ids[start: start + len(first)].tolist() == first


def test_span_candidate_truncated_to_22_subwords(el_tok):
    tok, info = el_tok
    long_cand = " ".join(["Honolulu"] * 40)
    (row,) = span_rows(window("Obama", [long_cand]), 0, tok, info, SpanInputConfig(tuple(span_symbols(101))))
    n_text = len(row.text)
    nme_len = len(tok.encode(NME, add_special_tokens=False).ids)
    assert len(row) == 1 + n_text + 1 + nme_len + 22 + 1


def test_long_window_is_a_clear_error(el_tok):
    tok, info = el_tok
    text = " ".join(["Honolulu Hawaii"] * 600)
    with pytest.raises(ValueError, match="no room"):
        span_rows(window(text, ["Barack Obama"]), 0, tok, info, SpanInputConfig(tuple(span_symbols(101))))


def test_no_candidates_no_rows(el_tok):
    tok, info = el_tok
    assert span_rows(window("Obama", []), 0, tok, info, SpanInputConfig(tuple(span_symbols(101)))) == []


def test_triplet_row_layout_and_masks():
    tok = tiny_tokenizer(relation_symbols(4))
    info = TokenizerInfo.from_tokenizer(tok)
    cfg = TripletInputConfig(tuple(relation_symbols(4)))
    w = window("Steve Jobs founded Apple", triplet_candidates=["founded by", "employer", "a", "b", "c", "d"])
    row = triplet_row(w, 0, tok, info, cfg)
    assert row.triplet_candidates == ["founded by", "employer", "a", "b"]  # capped by the 4 symbols
    rel = [tok.token_to_id(f"[R-{i}]") for i in range(4)]
    assert row.input_ids[row.relation_symbols_mask].tolist() == rel
    n = len(row.text)
    assert row.token_type_ids.tolist() == [0] * (n + 2) + [1] * (len(row) - n - 2)
    # roll(token_type_ids, -1) with both ends forced to 1: CLS and the text [SEP] are masked, text is not
    assert row.prediction_mask.tolist() == [True] + [False] * n + [True] * (len(row) - n - 1)
    assert not row.entity_symbols_mask.any()


def test_cie_trimming_follows_fixed_reference():
    types = span_symbols(9)
    tok = tiny_tokenizer(relation_symbols(10) + types)
    info = TokenizerInfo.from_tokenizer(tok)
    cfg = TripletInputConfig(tuple(relation_symbols(10)), tuple(types), use_nme=True, model_max_length=150)
    ents = [f"Entity {i} of the United States" for i in range(9)]
    rels = [f"relation {i} of the person" for i in range(10)]
    row = triplet_row(window("Steve Jobs founded Apple", ents, rels), 0, tok, info, cfg)
    i = len(row.span_candidates)
    assert 1 < i < 10 and row.span_candidates[0] == NME
    # HEAD (post issue #7): i type symbols, the middle [SEP], then i - 1 relation symbols (1.0.7 keeps none)
    assert int(row.entity_symbols_mask.sum()) == i
    assert int(row.relation_symbols_mask.sum()) == i - 1
    assert row.input_ids[row.relation_symbols_mask].tolist() == [tok.token_to_id(f"[R-{k}]") for k in range(i - 1)]
    assert row.triplet_candidates == rels[:i]


def test_triplet_long_window_is_a_clear_error():
    tok = tiny_tokenizer(relation_symbols(4))
    info = TokenizerInfo.from_tokenizer(tok)
    w = window(" ".join(["Honolulu Hawaii"] * 600), triplet_candidates=["founded by"])
    with pytest.raises(ValueError, match="no room"):
        triplet_row(w, 0, tok, info, TripletInputConfig(tuple(relation_symbols(4))))


def test_window_candidates_are_read_as_texts_and_reference_dicts_parse(el_tok):
    """The reader reads a `Window`'s candidates as texts (strings, JSON dicts or retrieved documents with a `text`);
    a reference window dict parses to the same window."""
    class Doc:
        def __init__(self, text):
            self.text = text

    w = Window.from_words(["Obama", "visited", "Paris"], [10, 16, 24], [15, 23, 29], 7,
                          span_candidates=[Doc("Barack Obama"), "Paris"])
    assert candidate_texts(w.span_candidates) == ["Barack Obama", "Paris"] and w.first_word == 7
    assert w.char2word_start() == {10: 7, 16: 8, 24: 9} and w.char2word_end()[29] == 9
    tok, info = el_tok
    (row,) = span_rows(w, 0, tok, info, SpanInputConfig(tuple(span_symbols(101))))
    assert row.predictable_candidates == [NME, "Barack Obama", "Paris"]
    ref = {"words": ["Obama", "visited", "Paris"], "token2char_start": {"0": 10, "1": 16, "2": 24},
           "token2char_end": {"0": 15, "1": 23, "2": 29}, "char2token_start": {"10": 7, "16": 8, "24": 9},
           "span_candidates": [{"text": "Barack Obama"}, "Paris"]}
    assert Window.from_dict(ref) == dataclasses.replace(w, text="", span_candidates=["Barack Obama", "Paris"])


def test_text_tokens_of_many_windows_equal_each_alone(el_tok):
    # one table lookup and one (window, char) search for a chunk: the same tokens and word maps per window,
    # including overlapping windows of one document (same chars, other windows) and a window without words
    tok, _ = el_tok
    text = "Barack Obama was born in Honolulu , Hawaii in 1961 ."
    words = text.split(" ")
    starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
    ends = starts + np.array([len(w) for w in words])
    wins = [Window.from_words(words[a:b], starts[a:b], ends[a:b], a) for a, b in [(0, 6), (3, 9), (6, 11)]]
    wins.insert(1, Window.from_words([], [], [], 0))
    many = text_tokens_many(wins, SubwordCache(tok, "[E-0]"))
    for w, got in zip(wins, many, strict=True):
        alone = text_tokens(w, SubwordCache(tok, "[E-0]"))
        assert got.ids.tolist() == alone.ids.tolist() and got.char_starts == alone.char_starts
        assert got.char_ends == alone.char_ends
        assert got.token2word_start == alone.token2word_start and got.token2word_end == alone.token2word_end
    # hand-checked: every word of the third window starts a sub-token mapped to its document word index
    assert set(many[3].token2word_start.values()) == set(range(6, 11))
