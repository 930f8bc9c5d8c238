"""Reader inputs: special symbols, per-word tokenization, row layout, candidate trimming and patches.

This is the host-side (numpy / Python) half of the ReLiK reader, kept step-for-step equal to the reference
(`relik/reader/data/relik_reader_data.py` for the span reader, `relik_reader_re_data.py` for the triplet reader;
spec: shared/reference/relik-reference.md §1):

- every word of the window is tokenized as its own string (`add_special_tokens=False`); sub-token char offsets are
  shifted by the word's absolute char start;
- rows are `[CLS] text [SEP] candidates [SEP]`, a candidate being `"<symbol> <text>"` (or the bare `--NME--`);
- span reader: candidates that do not fit `model_max_length` (with the reference's `+20` slack and strict `<`) go to
  further rows ("patches") whose symbols continue the numbering; a patch that cannot take a single real candidate is
  a clear error (the reference loops forever there);
- triplet reader: no patches; the trimming follows the *fixed* reference (GitHub HEAD, after issue #7): keep `i`
  entity-type candidates and the candidates list's next `i` elements after them (the middle `[SEP]` plus `i - 1`
  relations). The PyPI 1.0.7 wheel keeps `cands[len(span):i]` there, i.e. no relation symbol at all.
  For a triplet reader without entity types we keep the first `i` relations (HEAD would repeat them).

Rows are built from a `relik_jax.text.windows.Window` (its words, absolute word offsets and candidates, read as
texts by `candidate_texts`). Every row carries what decoding needs (candidate lists, sub-token -> char / word maps).
Shapes: one row = 1-D int32/bool arrays of its own length; batching and padding live in `buckets.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from relik_jax.labels import NME
from relik_jax.reader.tokens import SubwordCache
from relik_jax.text.tokenization import special_token_id
from relik_jax.text.windows import Window, candidate_texts

SLACK = 20  # the reference reserves 20 positions for "special tokens" when trimming candidates


def span_symbols(n: int) -> list[str]:
    """`--NME--, [E-0] ... [E-(n-1)]` (n + 1 strings), the reference's `get_special_symbols(n)`."""
    return [NME] + [f"[E-{i}]" for i in range(n)]


def relation_symbols(n: int, use_nme: bool = False) -> list[str]:
    """`[R-0] ... [R-(n-1)]`, optionally prefixed by `--NME--` (`get_special_symbols_re`)."""
    return ([NME] if use_nme else []) + [f"[R-{i}]" for i in range(n)]


def _listed(field: str) -> functools.cached_property:
    return functools.cached_property(lambda self: getattr(self, field).tolist())


@dataclasses.dataclass
class TextTokens:
    """Sub-tokens of a window's text (no CLS): ids, absolute char offsets, sub-token -> document word maps.

    `word_start[i]` is a document word index only when sub-token i starts at a word's first char, else -1
    (likewise `word_end` for last chars): the reference's `token2word_start/end` dicts, as arrays. The dict views
    (`token2word_start`, `word2token_start`, ...) are built on first use.
    """

    ids: np.ndarray  # [n] int32
    starts: np.ndarray  # [n] int64 absolute char starts
    ends: np.ndarray  # [n] int64 absolute char ends
    word_start: np.ndarray  # [n] int64 document word index or -1
    word_end: np.ndarray  # [n] int64 document word index or -1

    def __len__(self) -> int:
        return len(self.ids)

    # list views, built on first use (scalar reads from a list beat numpy's)
    char_starts = _listed("starts")
    char_ends = _listed("ends")
    word_start_list = _listed("word_start")
    word_end_list = _listed("word_end")

    @functools.cached_property
    def token2word_start(self) -> dict[int, int]:
        return _as_dict(self.word_start)

    @functools.cached_property
    def token2word_end(self) -> dict[int, int]:
        return _as_dict(self.word_end)

    def word2token_start(self) -> dict[int, int]:
        return {w: t for t, w in self.token2word_start.items()}  # last sub-token wins, as the reference's inversion

    def word2token_end(self) -> dict[int, int]:
        return {w: t for t, w in self.token2word_end.items()}


def _as_dict(word: np.ndarray) -> dict[int, int]:
    hit = np.flatnonzero(word >= 0)
    return dict(zip(hit.tolist(), word[hit].tolist(), strict=True))


@dataclasses.dataclass(frozen=True)
class TokenizerInfo:
    """The ids and thresholds the reference reads off its HF tokenizer."""

    cls_id: int
    sep_id: int
    pad_id: int
    vocab_size: int  # HF `tokenizer.vocab_size`: without added tokens
    full_size: int  # HF `len(tokenizer)`: with added tokens
    # tokenizer_config.json's value (huge when unset). Rows do NOT use it: 1.0.7's datasets take
    # min(model_max_length, tokenizer.model_max_length) when built, but the readers' `read(max_length=1000)` then
    # sets the dataset's `model_max_length = max_length` (span.py / triplet.py `_read`), so the reference's rows
    # reach ~1000 tokens even when the tokenizer says 512. The budget is `SpanInputConfig` / `TripletInputConfig`.
    model_max_length: int

    @functools.cached_property
    def cls_ids(self) -> np.ndarray:
        return np.asarray([self.cls_id], np.int32)

    @functools.cached_property
    def sep_ids(self) -> np.ndarray:
        return np.asarray([self.sep_id], np.int32)

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer, folder: str | Path | None = None) -> TokenizerInfo:
        max_len = 10**30
        if folder is not None and (Path(folder) / "tokenizer_config.json").is_file():
            max_len = int(json.loads((Path(folder) / "tokenizer_config.json").read_text()).get("model_max_length",
                                                                                                max_len))
        return cls(cls_id=special_token_id(tokenizer, "[CLS]"), sep_id=special_token_id(tokenizer, "[SEP]"),
                   pad_id=special_token_id(tokenizer, "[PAD]"),
                   vocab_size=tokenizer.get_vocab_size(with_added_tokens=False),
                   full_size=tokenizer.get_vocab_size(with_added_tokens=True), model_max_length=max_len)


def as_cache(tokenizer: Tokenizer | SubwordCache, symbol: str) -> SubwordCache:
    """The reader's `SubwordCache`, or a fresh one around a bare tokenizer (correct, just not shared)."""
    return tokenizer if isinstance(tokenizer, SubwordCache) else SubwordCache(tokenizer, symbol)


def candidate_ids(cache: SubwordCache, symbols: Sequence[str], candidates: Sequence[str]) -> list[np.ndarray]:
    """Ids of each candidate string `"<symbol> <candidate>"` (zip truncates, as the reference's): the symbol's id
    then the candidate's cached ids; the NME candidate is written bare (no symbol) and is its own token."""
    ids, ends = cache.block(symbols, candidates)
    return np.split(ids, ends[:-1]) if len(ends) else []


def text_tokens(window: Window, cache: SubwordCache) -> TextTokens:
    """Per-word sub-tokens (cached) flattened into the window's sub-tokens with absolute char offsets and the
    sub-token -> document word maps (a sub-token maps to a word when it starts / ends at that word's first / last
    char, as the reference's dict lookups)."""
    return text_tokens_many([window], cache)[0]


def text_tokens_many(windows: Sequence[Window], cache: SubwordCache) -> list[TextTokens]:
    """`text_tokens` of many windows at once: one table lookup and one word-map search for all of them (each
    window's `TextTokens` holds views of the shared arrays)."""
    words = list(itertools.chain.from_iterable(w.words for w in windows))
    ids, offsets, lengths = cache.tokens(words)
    n_words = np.fromiter(map(len, (w.words for w in windows)), np.int64, len(windows))
    word_bounds = np.concatenate([[0], np.cumsum(n_words)])
    tok_bounds = np.concatenate([[0], np.cumsum(lengths)])[word_bounds].tolist()
    if not words:
        empty = np.zeros(0, np.int64)
        return [TextTokens(ids, empty, empty, empty, empty) for _ in windows]
    word_starts = np.concatenate([w.word_starts for w in windows])
    word_ends = np.concatenate([w.word_ends for w in windows])
    base = np.repeat(word_starts, lengths)
    starts, ends = offsets[:, 0] + base, offsets[:, 1] + base
    # a sub-token maps to word w of ITS window when its char equals w's: one search over (window, char) keys
    window_of_word = np.repeat(np.arange(len(windows), dtype=np.int64), n_words)
    window_of_token = np.repeat(window_of_word, lengths)
    first = np.fromiter((w.first_word for w in windows), np.int64, len(windows))[window_of_token]
    local0 = word_bounds[:-1][window_of_token]  # index of the token's window's first word in the flat arrays
    word_start = _word_index(window_of_word, word_starts, window_of_token, starts, local0, first)
    word_end = _word_index(window_of_word, word_ends, window_of_token, ends, local0, first)
    return [TextTokens(ids[a:b], starts[a:b], ends[a:b], word_start[a:b], word_end[a:b])
            for a, b in itertools.pairwise(tok_bounds)]


_KEY = 1 << 40  # (window, char) search keys: chars stay far below it


def _word_index(window_of_word: np.ndarray, word_chars: np.ndarray, window_of_token: np.ndarray,
                chars: np.ndarray, local0: np.ndarray, first: np.ndarray) -> np.ndarray:
    """[n] document word index of each sub-token whose char equals a word's char in its window, else -1 (word
    chars strictly increasing within a window)."""
    keys = window_of_word * _KEY + word_chars
    query = window_of_token * _KEY + chars
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[pos] == query, pos - local0 + first, -1)


# ---------------------------------------------------------------------------------------------------------------
# Span (EL) reader rows
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SpanRow:
    """One span-reader row (= one patch of one window). Arrays have the row's own length n."""

    window_index: int
    patch_offset: int
    input_ids: np.ndarray  # [n] int32
    token_type_ids: np.ndarray  # [n] int32
    prediction_mask: np.ndarray  # [n] bool, True = not predictable (CLS, [SEP], candidates)
    special_symbols_mask: np.ndarray  # [n] bool, CLS forced True (the "none" column of the linking logits)
    predictable_candidates: list[str]  # NME first when use_nme
    text: TextTokens

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclasses.dataclass(frozen=True)
class SpanInputConfig:
    special_symbols: tuple[str, ...]  # the reference rebuilds them from config: span_symbols(additional)
    use_nme: bool = True
    max_subwords_per_candidate: int = 22
    model_max_length: int = 1000


def span_rows(window: Window, window_index: int, tokenizer: Tokenizer | SubwordCache, info: TokenizerInfo,
              cfg: SpanInputConfig, text: TextTokens | None = None) -> list[SpanRow]:
    """All patches of one window (empty when the window has no words or no candidates, as the reference).
    `text`: the window's `text_tokens`, when already built."""
    if not window.words:
        return []
    cache = as_cache(tokenizer, cfg.special_symbols[1])  # [E-0]
    text = text if text is not None else text_tokens(window, cache)
    n_text = len(text)
    max_len = cfg.model_max_length  # read()'s max_length, not the tokenizer's (see TokenizerInfo)
    threshold = info.full_size - len(cfg.special_symbols)
    head = np.concatenate([[info.cls_id], text.ids, [info.sep_id]]).astype(np.int32)
    rows: list[SpanRow] = []
    remaining = candidate_texts(window.span_candidates) or []
    offset = 0
    while remaining:
        original = list(remaining)
        predictable = list(remaining)
        if cfg.use_nme:
            predictable.insert(0, NME)
        symbols = list(cfg.special_symbols[offset:][: len(predictable)])
        block, ends = cache.block(symbols, predictable, cfg.max_subwords_per_candidate)
        n_cand = int(ends[-1]) if len(ends) else 0
        if n_cand + n_text + SLACK > max_len:
            # the reference keeps candidates while the running total stays below the budget
            i = int(np.searchsorted(ends, max_len - SLACK - n_text, side="left"))
            predictable = predictable[:i]
            n_cand = int(ends[i - 1]) if i else 0
        kept = set(predictable)
        remaining = [c for c in original if c not in kept]
        if len(remaining) == len(original) or (cfg.use_nme and not predictable):
            raise ValueError(
                f"window {window.doc_id}/{window.window_id}: its text has {n_text} sub-tokens, which leaves no room "
                f"for a single candidate within model_max_length={max_len} (the reference would loop forever or "
                "crash here); use smaller windows")
        input_ids = np.concatenate([head, block[:n_cand], [info.sep_id]]).astype(np.int32)
        n = len(input_ids)
        token_type_ids = np.zeros(n, np.int32)
        token_type_ids[n_text + 2:] = 1
        prediction_mask = np.ones(n, dtype=bool)
        prediction_mask[1: 1 + n_text] = False
        special = input_ids >= threshold
        special[0] = True
        rows.append(SpanRow(window_index, len(rows), input_ids, token_type_ids, prediction_mask, special,
                            predictable, text))
        offset = offset + len(predictable) - (1 if cfg.use_nme else 0)
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Triplet (RE / cIE) reader rows
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TripletRow:
    window_index: int
    input_ids: np.ndarray  # [n] int32
    token_type_ids: np.ndarray  # [n] int32
    prediction_mask: np.ndarray  # [n] bool
    relation_symbols_mask: np.ndarray  # [n] bool: the reference's `special_symbols_mask`
    entity_symbols_mask: np.ndarray  # [n] bool: `special_symbols_mask_entities` (cIE), else all False
    span_candidates: list[str] | None  # cIE: NME first when use_nme; index = entity type class
    triplet_candidates: list[str]  # index = relation symbol r
    text: TextTokens
    n_all_tokens: int  # sub-tokens of words + [SEP] + candidates + [SEP] (bound of the end-snapping loop)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclasses.dataclass(frozen=True)
class TripletInputConfig:
    relation_symbols: tuple[str, ...]
    type_symbols: tuple[str, ...] = ()  # cIE: span_symbols(additional_special_symbols_types - 1)
    use_nme: bool = False  # insert --NME-- as first entity candidate (hub cIE configs: True)
    max_triplets: int = 50
    max_spans: int = 100
    model_max_length: int = 1000


def triplet_row(window: Window, window_index: int, tokenizer: Tokenizer | SubwordCache, info: TokenizerInfo,
                cfg: TripletInputConfig, text: TextTokens | None = None) -> TripletRow | None:
    """The single row of a window (None when trimming leaves no relation candidate, as the reference skips it).
    `text`: the window's `text_tokens`, when already built."""
    if not window.words:
        return None
    typed = len(cfg.type_symbols) > 0
    span_cands = candidate_texts(window.span_candidates)
    if typed:
        if span_cands is None:
            raise ValueError(f"window {window.doc_id}/{window.window_id}: the cIE reader needs span_candidates")
        if cfg.use_nme:
            span_cands.insert(0, NME)
        span_cands = span_cands[: min(len(cfg.type_symbols), cfg.max_spans)]
    trip = (candidate_texts(window.triplet_candidates) or [])[: min(len(cfg.relation_symbols), cfg.max_triplets)]
    rel_syms = list(cfg.relation_symbols[: len(trip)])
    cache = as_cache(tokenizer, cfg.relation_symbols[0])
    sep = info.sep_ids  # the "[SEP]" string is the [SEP] token
    # the candidates as cached blocks: [types, [SEP],] relations (split per candidate only when trimming)
    blocks = [cache.block(rel_syms, trip)]
    n_span = 0
    if typed:
        type_syms = list(cfg.type_symbols[: len(span_cands)])
        n_span = len(span_cands)
        blocks = [cache.block(type_syms, span_cands), (sep, np.ones(1, np.int64)), *blocks]
    cands = [ids for ids, _ in blocks]
    n_cand = sum(len(ids) for ids in cands)
    text = text if text is not None else text_tokens(window, cache)
    n_all = len(text) + 2 + n_cand  # words + [SEP] + candidates + [SEP]
    max_len = cfg.model_max_length  # read()'s max_length, not the tokenizer's (see TokenizerInfo)
    if n_cand + len(text) + SLACK > max_len:
        cands = [c for ids, ends in blocks for c in (np.split(ids, ends[:-1]) if len(ends) else [])]
        acceptable = max_len - SLACK - len(text)

        def pair_len(i: int) -> int:
            if i >= len(cands):
                return max_len  # ran out: stops the loop (the reference would raise IndexError)
            if not typed or i + n_span >= len(cands):
                return len(cands[i])
            return len(cands[i]) + len(cands[i + n_span])

        i, cum = 0, 0
        while cum + pair_len(i) < acceptable:
            cum += pair_len(i)
            i += 1
        if i == 0:
            raise ValueError(
                f"window {window.doc_id}/{window.window_id}: its text has {len(text)} sub-tokens, which leaves no "
                f"room for a single candidate within model_max_length={max_len}; use smaller windows")
        if typed:  # HEAD (fixed #7): i types, then [SEP] + (i - 1) relations
            cands = cands[:i] + cands[n_span: n_span + i]
            span_cands = span_cands[:i]
        else:
            cands = cands[:i]
        trip = trip[:i]
        if not trip:
            return None
    input_ids = np.concatenate([info.cls_ids, text.ids, sep, *cands, sep], dtype=np.int32)
    special = input_ids >= info.vocab_size
    if typed:
        ents = min(len(span_cands), len(cfg.type_symbols))
        entity_mask = special & (np.cumsum(special) <= ents)
        relation_mask = special ^ entity_mask
    else:
        entity_mask = np.zeros(len(special), bool)
        relation_mask = special
    # token types: 1 from the first special symbol on; predictable: the words before the position just ahead of it
    first = int(special.argmax())
    if not special[first]:
        first = len(input_ids)
    positions = np.arange(len(input_ids))
    token_type_ids = (positions >= first).astype(np.int32)
    prediction_mask = positions >= first - 1
    prediction_mask[0] = prediction_mask[-1] = True
    return TripletRow(window_index, input_ids, token_type_ids, prediction_mask, relation_mask, entity_mask,
                      span_cands, trip, text, n_all)
