"""Reader training batches: examples of an epoch (augmented), planned into static-shape batches and padded into the
`reader.losses` batch format.

Static shapes: L from `Buckets.seq_lens`, rows per batch from the token budget (`token_batch_size // L`, power of
two), Lt from `Buckets.text_lens`, S / M / C / T / R from `Buckets.counts` (powers of two beyond). Start / end
labels are -100 on `prediction_mask` positions; padding is -100 everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import ml_collections
import numpy as np
from tokenizers import Tokenizer

from relik_jax.engine.buckets import Buckets, plan_batches
from relik_jax.reader.inputs import TokenizerInfo
from relik_jax.reader.losses import IGNORE
from relik_jax.reader.model import ReaderConfig
from relik_jax.reader.tokens import SubwordCache
from relik_jax.text.windows import Window
from relik_jax.training.reader_examples import (
    Example,
    augment_span,
    augment_triplet,
    span_examples,
    triplet_example,
)
from relik_jax.training.reader_model import input_config


def _flat(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every element when rows of `lengths` are laid out left-aligned: the scatter index of a
    batch's concatenated per-example arrays."""
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return rows, cols


def _positions(mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """[R, L] bool -> the first `width` True positions of each row (ascending) and their validity, [R, width]."""
    rank = np.cumsum(mask, axis=1) - 1
    keep = mask & (rank < width)
    r, c = np.nonzero(keep)
    pos = np.zeros((mask.shape[0], width), np.int32)
    valid = np.zeros((mask.shape[0], width), bool)
    pos[r, rank[r, c]] = c
    valid[r, rank[r, c]] = True
    return pos, valid


def collate(examples: Sequence[Example], length: int, n_rows: int, buckets: Buckets, pad_id: int, *,
            span: bool, typed: bool = False, min_sizes: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Pad `examples` into one batch of the `reader_losses` format ([n_rows, length] and bucketed S/M/C/T/R).

    `min_sizes` (keys S, M, C, R, T; Lt = L when given) floors the buckets so that training batches of one L share
    one shape (one compilation) whatever their mention / candidate counts. Vectorized over the batch: every field
    is one scatter of the examples' concatenated arrays."""
    lens = np.fromiter((len(x) for x in examples), np.int64, len(examples))
    if lens.max() > length:
        raise ValueError(f"row of {lens.max()} tokens does not fit the {length} bucket")
    fl = min_sizes or {}

    def count(n: int, key: str) -> int:
        return max(buckets.count(n), fl.get(key, 0))

    def scatter(name: str, fill: Any, dtype: Any) -> np.ndarray:
        out = np.full((n_rows, length), fill, dtype)
        out[rows, cols] = np.concatenate([getattr(x, name) for x in examples])
        return out

    lt = length if min_sizes else buckets.text_len(max(x.n_text for x in examples) + 1, length)
    starts = [x.starts for x in examples]
    n_starts = np.fromiter((len(v) for v in starts), np.int64, len(examples))
    mentions = [np.asarray(x.mentions, np.int64).reshape(-1, 2) for x in examples]
    n_ment = np.fromiter((len(v) for v in mentions), np.int64, len(examples))
    s, m = count(int(n_starts.max()), "S"), count(int(n_ment.max()), "M")
    rows, cols = _flat(lens)
    pm = scatter("prediction_mask", True, bool)
    attention = np.zeros((n_rows, length), np.int32)
    attention[rows, cols] = 1
    b: dict[str, np.ndarray] = {"input_ids": scatter("input_ids", pad_id, np.int32), "attention_mask": attention,
                                "token_type_ids": scatter("token_type_ids", 0, np.int32), "prediction_mask": pm}
    # starts: label 1 at each distinct gold start; one end-label row per start
    s_row, s_k = _flat(n_starts)
    s_pos = np.concatenate([np.asarray(v, np.int64) for v in starts])
    start_labels = np.where(pm, IGNORE, 0).astype(np.int32)
    start_labels[s_row, s_pos] = 1
    b["start_labels"] = start_labels
    b["starts"] = np.zeros((n_rows, s), np.int32)
    b["starts"][s_row, s_k] = s_pos
    b["start_valid"] = np.zeros((n_rows, s), bool)
    b["start_valid"][s_row, s_k] = True
    ends = np.full((n_rows, s, lt), IGNORE, np.int32)
    row_ends = np.where(pm[s_row, :lt], IGNORE, 0)
    preceding = np.fromiter((x.mask_preceding for x in examples), bool, len(examples))[s_row]
    row_ends[preceding[:, None] & (np.arange(lt)[None] < s_pos[:, None])] = IGNORE
    ends[s_row, s_k] = row_ends
    # mentions (sorted by start, then end): end label 1 in their start's row
    m_row, m_k = _flat(n_ment)
    m_all = np.concatenate(mentions) if len(m_row) else np.zeros((0, 2), np.int64)
    k_of = np.concatenate([np.searchsorted(v, mm[:, 0]) for v, mm in zip(starts, mentions, strict=True)]).astype(
        np.int64) if len(m_row) else np.zeros(0, np.int64)
    ends[m_row, k_of, m_all[:, 1]] = 1
    b["end_labels"] = ends
    symbols = np.zeros((n_rows, length), bool)
    symbols[rows, cols] = np.concatenate([x.symbol_mask for x in examples])
    if span:
        c = count(int(symbols.sum(1).max()), "C")
        b["mention_start"] = np.zeros((n_rows, m), np.int32)
        b["mention_end"] = np.zeros((n_rows, m), np.int32)
        b["mention_valid"] = np.zeros((n_rows, m), bool)
        b["ed_labels"] = np.full((n_rows, m), IGNORE, np.int32)
        b["mention_start"][m_row, m_k], b["mention_end"][m_row, m_k] = m_all[:, 0], m_all[:, 1]
        b["mention_valid"][m_row, m_k] = True
        b["ed_labels"][m_row, m_k] = np.concatenate([np.asarray(x.ed_labels, np.int64) for x in examples])
        b["symbol_pos"], b["symbol_valid"] = _positions(symbols, c)
        return b
    types = np.zeros((n_rows, length), bool)
    if typed:
        types[rows, cols] = np.concatenate([x.type_mask for x in examples])
    r = count(int(symbols.sum(1).max()), "R")
    t = count(int(types.sum(1).max()), "T") if typed else 1
    b["type_pos"], b["type_valid"] = _positions(types, t)
    b["rel_pos"], b["rel_valid"] = _positions(symbols, r)
    # relation labels: 0 inside each example's [M_i, M_i, R_i] block, 1 at its gold cells, -100 elsewhere
    n_rel = np.zeros(n_rows, np.int64)
    n_rel[: len(examples)] = [x.relation_labels.shape[2] for x in examples]
    nm = np.zeros(n_rows, np.int64)
    nm[: len(examples)] = n_ment
    in_m = np.arange(m)[None] < nm[:, None]
    block = in_m[:, :, None, None] & in_m[:, None, :, None] & (np.arange(r)[None] < n_rel[:, None])[:, None, None]
    rel = np.where(block, 0, IGNORE).astype(np.int32)
    gold = [np.argwhere(x.relation_labels) for x in examples]
    g_row = np.repeat(np.arange(len(examples)), [len(g) for g in gold])
    g = np.concatenate(gold) if len(g_row) else np.zeros((0, 3), np.int64)
    rel[g_row, g[:, 0], g[:, 1], g[:, 2]] = 1
    b["relation_labels"] = rel
    type_labels = np.zeros((n_rows, m, t), np.float32)
    if typed:
        for i, x in enumerate(examples):  # one small [M_i, T_i] block per example
            if x.type_labels is not None:
                type_labels[i, : len(x.mentions), : x.type_labels.shape[1]] = x.type_labels
    b["type_labels"] = type_labels
    return b


def batch_shape(batch: dict[str, np.ndarray]) -> tuple:
    return tuple(sorted((k, v.shape) for k, v in batch.items()))


def plan_epoch(examples: Sequence[Example], buckets: Buckets, rng: np.random.Generator | None
               ) -> list[tuple[int, int, list[int]]]:
    """(L, padded rows, example indices) per batch: rows grouped by L bucket, shuffled when `rng` is given.

    Training (`rng` given) pads a group's last batch to the full row count (one batch size per L: fewer
    compilations); evaluation pads it to the next power of two."""
    order = rng.permutation(len(examples)) if rng is not None else np.arange(len(examples))
    batches = plan_batches([len(e) for e in examples], buckets, order=order, full_rows=rng is not None)
    out = [(b.seq_len, b.rows, b.indices) for b in batches]
    if rng is not None:
        out = [out[i] for i in rng.permutation(len(out))]
    return out


def epoch_examples(windows: Sequence[Window], cfg: ReaderConfig, config: ml_collections.ConfigDict,
                   tokenizer: Tokenizer | SubwordCache, info: TokenizerInfo, rng: np.random.Generator | None
                   ) -> list[Example]:
    """Examples of one epoch (augmented when `rng` is given)."""
    inputs = input_config(cfg, config)
    out: list[Example] = []
    for window in windows:
        if cfg.is_span:
            labels = None
            if rng is not None:
                cands, labels = augment_span(window, rng, config.shuffle_candidates,
                                             config.random_drop_gold_candidates)
                window = dataclasses.replace(window, span_candidates=cands)
            exs = span_examples(window, tokenizer, info, inputs, labels)
            if config.get("skip_empty", False):
                exs = [x for x in exs if any(v > 1 for v in x.ed_labels)]
            out.extend(exs)
        else:
            if config.get("skip_empty", False) and not window.word_triplet_labels:
                continue
            if rng is not None:
                trip, spans = augment_triplet(window, rng, config.max_relations, config.shuffle_candidates,
                                              config.flip_candidates, span_nme=bool(config.use_nme))
                window = dataclasses.replace(window, triplet_candidates=trip, span_candidates=spans)
            ex = triplet_example(window, tokenizer, info, inputs)
            if ex is not None:
                out.append(ex)
    return out


def train_batch_plan(windows: Sequence[Window], cfg: ReaderConfig, config: ml_collections.ConfigDict,
                     tokenizer: Tokenizer, info: TokenizerInfo, buckets: Buckets
                     ) -> Iterator[tuple[int, int, list[Example]]]:
    """Endless stream of (L, padded rows, examples) per training step; epoch e uses RNG seed (config.seed, e)."""
    inputs = input_config(cfg, config)
    # every word and candidate text is tokenized once for the whole run (epochs only reorder candidates)
    cache = tokenizer if isinstance(tokenizer, SubwordCache) else SubwordCache(
        tokenizer, inputs.special_symbols[1] if cfg.is_span else inputs.relation_symbols[0])
    epoch = 0
    while True:
        rng = np.random.default_rng([config.seed, epoch])
        exs = epoch_examples(windows, cfg, config, cache, info, rng)
        if not exs:
            raise ValueError("the training windows produced no examples (no labels / candidates?)")
        for length, rows, idx in plan_epoch(exs, buckets, rng):
            yield length, rows, [exs[i] for i in idx]
        epoch += 1


def train_batches(windows: Sequence[Window], cfg: ReaderConfig, config: ml_collections.ConfigDict,
                  tokenizer: Tokenizer, info: TokenizerInfo, buckets: Buckets) -> Iterator[dict[str, np.ndarray]]:
    """Endless stream of padded training batches (`train_batch_plan` collated).

    `config.train_pad_multiple` q > 0 pads a batch to its longest row rounded up to a multiple of q instead of to its
    L bucket (the batch plan, rows per batch included, is unchanged; padding is masked, so the losses are the same):
    fewer padded positions through the backbone, at the cost of more batch shapes (compilations)."""
    typed = bool(cfg.additional_special_symbols_types)
    k = int(config.train_min_mentions)
    q = int(config.get("train_pad_multiple", 0))
    floors = {"S": k, "M": k, "C": buckets.count(cfg.additional_special_symbols + 1),
              "R": buckets.count(cfg.additional_special_symbols),
              "T": buckets.count(max(cfg.additional_special_symbols_types, 1))}
    for length, rows, exs in train_batch_plan(windows, cfg, config, tokenizer, info, buckets):
        if q > 0:
            length = min(length, -(-max(len(x) for x in exs) // q) * q)
        yield collate(exs, length, rows, buckets, info.pad_id, span=cfg.is_span, typed=typed, min_sizes=floors)
