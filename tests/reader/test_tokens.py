"""Sub-word cache: cached word and candidate ids equal direct tokenization (SentencePiece and WordPiece)."""

import numpy as np
from tokenizers import AddedToken

from relik_jax.data import corpora
from relik_jax.reader.tokens import SubwordCache
from relik_jax.retriever.encoder import resolve_encoder
from relik_jax.text.tokenization import load_tokenizer

ODD = ["", " ", "a  b", "x\ty", "Café", "東京", "--NME--", "[E-3] nested", "dash-word", "U.S.", "l'été", "  lead",
       "trail ", "\u00a0nbsp", "emoji 😀"]


def _titles() -> list[str]:
    return sorted({m.label for d in corpora.read_aida("testb") for m in d.mentions})[:1500] + ODD


def _check(tok, symbols):
    cache = SubwordCache(tok, symbols[0])
    titles = _titles()
    cache.check_candidates(titles, symbols)
    words = [w for t in titles for w in t.split()] + ODD
    for _ in range(2):  # misses, then hits
        ids, offsets, lengths = cache.tokens(words)
        ends = np.cumsum(lengths)
        for w, a, b in zip(words, ends - lengths, ends, strict=True):
            enc = tok.encode(w, add_special_tokens=False)
            assert ids[a:b].tolist() == enc.ids and [tuple(o) for o in offsets[a:b].tolist()] == enc.offsets, w
    assert len(cache.word_index) == len(set(words))  # every distinct word once in the table


def test_spm_reader_tokenizers(reference_dir):
    for name in ("el-h64-d32", "cie-h64-d32", "re-h64-d32"):
        tok = load_tokenizer(reference_dir / "readers" / name)
        symbols = sorted(t.content for t in tok.get_added_tokens_decoder().values()
                         if t.content.startswith(("[E-", "[R-")))
        _check(tok, symbols[:2] + symbols[-2:])


def test_wordpiece_tokenizer_with_added_symbols():
    tok = load_tokenizer(resolve_encoder("all-MiniLM-L6-v2"))
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True)
                            for s in ["--NME--", *(f"[E-{i}]" for i in range(100))]])
    _check(tok, ["[E-0]", "[E-1]", "[E-99]"])


def test_bounded_cache_still_answers():
    tok = load_tokenizer(resolve_encoder("all-MiniLM-L6-v2"))
    cache = SubwordCache(tok, "[SEP]", max_entries=3)
    direct = {w: tok.encode(w, add_special_tokens=False).ids for w in ["alpha", "beta", "gamma", "delta", "x"]}
    for words in (["alpha", "beta"], ["gamma", "delta", "alpha"], ["x"], ["alpha", "beta", "gamma", "delta"]):
        ids, _, lengths = cache.tokens(words)
        assert ids.tolist() == [i for w in words for i in direct[w]]
        assert len(cache.word_index) <= max(3, len(set(words)))  # full: the table starts afresh
