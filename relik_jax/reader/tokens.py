"""Sub-word tokenization done once per distinct string: words and candidates hit a cache, not the tokenizer.

The reader tokenizes every word of a window on its own, and every candidate as `"<symbol> <text>"`
(relik-reference.md §1). A document's windows overlap (stride = half the window), words repeat (Zipf), and the
same 100 candidates come back in window after window with different symbols, so the tokenizer would see the same
strings again and again. `SubwordCache` keeps, per distinct string:

- a word: its ids and char offsets (the tokenizer's, relative to the word) — exactly `encode(word)` — in a table
  whose sub-tokens sit in flat arrays (CSR rows), so a window's sub-tokens are one gather, not one array per word;
- a candidate text: the ids that follow the symbol in `encode(f"{symbol} {text}")`. Added tokens are split off
  before the normalizer and pre-tokenizer run on the pieces between them, so what follows the symbol does not
  depend on which symbol it is: `encode(f"[E-7] {text}").ids == [id("[E-7]"), *cache.candidate(text)]`
  (`check_candidates` verifies this on the tokenizer at hand; tests run it on WordPiece and SentencePiece).

- a candidate block: the ids of a whole candidate list `"<s_1> <c_1> <s_2> <c_2> ..."` concatenated, with the
  cumulative end of each candidate. A document's windows (and both patches of a window whose candidates overflow)
  read the same list, so a row is its text plus a slice of a cached block: one concatenation, not one per
  candidate.

The cache is bounded (a word table that would pass `max_entries` words starts afresh; candidate texts beyond it
are computed but not kept) and never changes results.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer

from relik_jax.engine.timing import StageTimes
from relik_jax.labels import NME

__all__ = ["SubwordCache"]


class SubwordCache:
    """Memoised `encode` of words and candidate texts (no special tokens added, as the reference)."""

    def __init__(self, tokenizer: Tokenizer, symbol: str, max_entries: int = 1_000_000,
                 times: StageTimes | None = None) -> None:
        if tokenizer.token_to_id(symbol) is None:
            raise KeyError(f"SubwordCache needs an added special symbol of the tokenizer, got {symbol!r}")
        self.tokenizer = tokenizer
        self.symbol = symbol  # any added special symbol of the reader ("[E-0]" / "[R-0]")
        self.max_entries = max_entries
        self.word_index: dict[str, int] = {}  # word -> its row in the word table
        self._word_ptr = np.zeros(1024, np.int64)  # [capacity >= words + 1]: word w is flat[ptr[w]:ptr[w + 1]]
        self._flat_ids = np.zeros(0, np.int32)  # [capacity] int32
        self._flat_offsets = np.zeros((0, 2), np.int32)  # [capacity, 2] int32, relative to the word
        self._used = 0
        self._lock = threading.Lock()
        self.candidate_cache: dict[str, np.ndarray] = {}
        self.symbol_cache: dict[str, int] = {}
        self.block_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self.max_blocks = 4096  # blocks are large (K candidates each): a few thousand distinct lists at most
        self.times = times if times is not None else StageTimes()  # "tokenize": lookups and tokenizer calls

    @functools.cached_property
    def nme_ids(self) -> np.ndarray:
        """The bare NME candidate (an added token, encoded on its own)."""
        return np.asarray(self.tokenizer.encode(NME, add_special_tokens=False).ids, np.int32)

    def symbol_ids(self, symbols: Iterable[str]) -> list[int]:
        ids = self.symbol_cache
        out = []
        for s in symbols:
            if s not in ids:
                idx = self.tokenizer.token_to_id(s)
                if idx is None:
                    raise KeyError(f"token {s!r} is not in the tokenizer vocabulary")
                ids[s] = idx
            out.append(ids[s])
        return out

    def tokens(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sub-tokens of `words`, each word encoded on its own: (ids [n] int32, char offsets [n, 2] int32 relative
        to their word, sub-tokens per word [len(words)] int64). Misses go to the tokenizer in one batch call."""
        t = time.perf_counter()
        with self._lock:  # the table grows and may start afresh; a pipeline's prefetch thread and a service's
            index = self.word_index  # other lane may read it at the same time
            rows = list(map(index.get, words))
            if None in rows:
                missing = list(dict.fromkeys(w for w, r in zip(words, rows, strict=True) if r is None))
                if len(index) + len(missing) > self.max_entries:  # full: start afresh with this call's words
                    self._clear_words()
                    missing = list(dict.fromkeys(words))
                self._add_words(missing)
                rows = list(map(index.get, words))
            rows_arr = np.array(rows, np.int64)
            lo = self._word_ptr[rows_arr]
            lengths = self._word_ptr[rows_arr + 1] - lo
            ends = np.cumsum(lengths)
            pos = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(lo - ends + lengths, lengths)
            out = self._flat_ids[pos], self._flat_offsets[pos], lengths
        self.times.add("tokenize", t)
        return out

    def _clear_words(self) -> None:
        self.word_index.clear()
        self._used = 0

    def _add_words(self, words: list[str]) -> None:
        encs = self.tokenizer.encode_batch(words, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encs), np.int64, len(encs))
        n = int(lengths.sum())
        ids = np.fromiter(itertools.chain.from_iterable(e.ids for e in encs), np.int32, n)
        offsets = np.fromiter(itertools.chain.from_iterable(x for e in encs for x in e.offsets), np.int32,
                              2 * n).reshape(n, 2)
        need = self._used + n
        if need > len(self._flat_ids):  # grow by doubling: amortised O(1) per sub-token
            cap = max(need, 2 * len(self._flat_ids), 1024)
            self._flat_ids = np.resize(self._flat_ids, cap)
            self._flat_offsets = np.resize(self._flat_offsets, (cap, 2))
        self._flat_ids[self._used: need] = ids
        self._flat_offsets[self._used: need] = offsets
        first = len(self.word_index)
        if first + len(words) + 1 > len(self._word_ptr):
            self._word_ptr = np.resize(self._word_ptr, max(first + len(words) + 1, 2 * len(self._word_ptr)))
        self._word_ptr[first + 1: first + len(words) + 1] = self._used + np.cumsum(lengths)
        self._used = need
        self.word_index.update(zip(words, range(first, first + len(words)), strict=True))

    def candidates(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Ids that follow the symbol in `encode(f"{symbol} {text}")`, per text."""
        start = time.perf_counter()
        cache = self.candidate_cache
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            encs = self.tokenizer.encode_batch([f"{self.symbol} {t}" for t in missing], add_special_tokens=False)
            fresh = {t: np.asarray(e.ids[1:], np.int32) for t, e in zip(missing, encs, strict=True)}
            if len(cache) + len(fresh) <= self.max_entries:
                cache.update(fresh)
            out = [cache.get(t) if t in cache else fresh[t] for t in texts]
        else:
            out = [cache[t] for t in texts]
        self.times.add("tokenize", start)
        return out

    def block(self, symbols: Sequence[str], candidates: Sequence[str], max_subwords: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
        """(ids [n] int32, ends [k] int64) of `"<symbol> <candidate>"` for each (symbol, candidate) pair (zip
        truncates, as the reference's), concatenated; the NME candidate is written bare (its own token);
        `max_subwords` > 0 truncates each candidate's ids (symbol included); `ends[j]` is where candidate j ends."""
        key = (tuple(symbols), tuple(candidates), max_subwords)
        hit = self.block_cache.get(key)
        if hit is not None:
            return hit
        pairs = list(zip(symbols, candidates, strict=False))
        tails = iter(self.candidates([c for _, c in pairs if c != NME]))
        sym_ids = self.symbol_ids(s for s, _ in pairs)
        parts = [self.nme_ids if c == NME else np.concatenate([[sym], next(tails)]).astype(np.int32)
                 for (_, c), sym in zip(pairs, sym_ids, strict=True)]
        if max_subwords > 0:
            parts = [p[:max_subwords] for p in parts]
        ids = np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)
        ends = np.cumsum([len(p) for p in parts], dtype=np.int64)
        ids.flags.writeable = ends.flags.writeable = False  # shared by every row that reads the list
        if len(self.block_cache) < self.max_blocks:
            self.block_cache[key] = (ids, ends)
        return ids, ends

    def check_candidates(self, texts: Sequence[str], symbols: Sequence[str]) -> None:
        """Raise if `[symbol] + candidates(text)` differs from encoding `"symbol text"` directly."""
        ids = self.candidates(texts)
        for text, tail in zip(texts, ids, strict=True):
            for symbol in symbols:
                direct = self.tokenizer.encode(f"{symbol} {text}", add_special_tokens=False).ids
                sym = self.tokenizer.token_to_id(symbol)
                if direct != [sym, *tail.tolist()]:
                    raise AssertionError(f"candidate {text!r} after {symbol!r}: {direct} != {[sym, *tail.tolist()]}")
