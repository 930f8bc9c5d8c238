"""Reader training batches: examples of an epoch (augmented), planned into static-shape batches and padded into the
`reader.losses` batch format.

Static shapes: L from `Buckets.seq_lens`, rows per batch from the token budget (`token_batch_size // L`, power of
two), Lt from `Buckets.text_lens`, S / M / C / T / R from `Buckets.counts` (powers of two beyond). Start / end
labels are -100 on `prediction_mask` positions; padding is -100 everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import ml_collections
import numpy as np
from tokenizers import Tokenizer

from relik_jax.data.windowing import LabelledWindow
from relik_jax.engine.buckets import Buckets, plan_batches
from relik_jax.reader.inputs import TokenizerInfo
from relik_jax.reader.losses import IGNORE
from relik_jax.reader.model import ReaderConfig
from relik_jax.training.reader_examples import (
    Example,
    augment_span,
    augment_triplet,
    span_examples,
    triplet_example,
)
from relik_jax.training.reader_model import input_config


def _pos(mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.flatnonzero(mask)[:width]
    pos = np.zeros(width, np.int32)
    pos[: len(idx)] = idx
    valid = np.zeros(width, bool)
    valid[: len(idx)] = True
    return pos, valid


def collate(examples: Sequence[Example], length: int, n_rows: int, buckets: Buckets, pad_id: int, *,
            span: bool, typed: bool = False, min_sizes: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Pad `examples` into one batch of the `reader_losses` format ([n_rows, length] and bucketed S/M/C/T/R).

    `min_sizes` (keys S, M, C, R, T; Lt = L when given) floors the buckets so that training batches of one L share
    one shape (one compilation) whatever their mention / candidate counts."""
    if max(len(x) for x in examples) > length:
        raise ValueError(f"row of {max(len(x) for x in examples)} tokens does not fit the {length} bucket")
    fl = min_sizes or {}

    def count(n: int, key: str) -> int:
        return max(buckets.count(n), fl.get(key, 0))

    lt = length if min_sizes else buckets.text_len(max(x.n_text for x in examples) + 1, length)
    s = count(max(len(x.starts) for x in examples), "S")
    m = count(max(len(x.mentions) for x in examples), "M")
    b: dict[str, np.ndarray] = {
        "input_ids": np.full((n_rows, length), pad_id, np.int32),
        "attention_mask": np.zeros((n_rows, length), np.int32),
        "token_type_ids": np.zeros((n_rows, length), np.int32),
        "prediction_mask": np.ones((n_rows, length), bool),
        "start_labels": np.full((n_rows, length), IGNORE, np.int32),
        "starts": np.zeros((n_rows, s), np.int32),
        "start_valid": np.zeros((n_rows, s), bool),
        "end_labels": np.full((n_rows, s, lt), IGNORE, np.int32),
    }
    if span:
        c = count(max(int(x.symbol_mask.sum()) for x in examples), "C")
        b.update(mention_start=np.zeros((n_rows, m), np.int32), mention_end=np.zeros((n_rows, m), np.int32),
                 mention_valid=np.zeros((n_rows, m), bool), ed_labels=np.full((n_rows, m), IGNORE, np.int32),
                 symbol_pos=np.zeros((n_rows, c), np.int32), symbol_valid=np.zeros((n_rows, c), bool))
    else:
        r = count(max(int(x.symbol_mask.sum()) for x in examples), "R")
        t = count(max(int(x.type_mask.sum()) for x in examples), "T") if typed else 1
        b.update(type_pos=np.zeros((n_rows, t), np.int32), type_valid=np.zeros((n_rows, t), bool),
                 rel_pos=np.zeros((n_rows, r), np.int32), rel_valid=np.zeros((n_rows, r), bool),
                 relation_labels=np.full((n_rows, m, m, r), IGNORE, np.int32),
                 type_labels=np.zeros((n_rows, m, t), np.float32))
    for i, x in enumerate(examples):
        n = len(x)
        b["input_ids"][i, :n] = x.input_ids
        b["attention_mask"][i, :n] = 1
        b["token_type_ids"][i, :n] = x.token_type_ids
        pm = x.prediction_mask
        b["prediction_mask"][i, :n] = pm
        b["start_labels"][i, :n] = np.where(pm, IGNORE, 0)
        starts = x.starts
        for k, st in enumerate(starts):
            b["start_labels"][i, st] = 1
            b["starts"][i, k] = st
            b["start_valid"][i, k] = True
            row = np.where(b["prediction_mask"][i, :lt], IGNORE, 0)
            if x.mask_preceding:
                row[:st] = IGNORE
            for ms, me in x.mentions:
                if ms == st:
                    row[me] = 1
            b["end_labels"][i, k] = row
        nm = len(x.mentions)
        if span:
            for k, (ms, me) in enumerate(x.mentions):
                b["mention_start"][i, k], b["mention_end"][i, k] = ms, me
                b["mention_valid"][i, k] = True
                b["ed_labels"][i, k] = x.ed_labels[k]
            b["symbol_pos"][i], b["symbol_valid"][i] = _pos(x.symbol_mask, b["symbol_pos"].shape[1])
        else:
            b["rel_pos"][i], b["rel_valid"][i] = _pos(x.symbol_mask, b["rel_pos"].shape[1])
            if typed:
                b["type_pos"][i], b["type_valid"][i] = _pos(x.type_mask, b["type_pos"].shape[1])
            nr = x.relation_labels.shape[2]
            b["relation_labels"][i, :nm, :nm, :nr] = x.relation_labels
            if x.type_labels is not None and typed:
                b["type_labels"][i, :nm, : x.type_labels.shape[1]] = x.type_labels
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


def epoch_examples(windows: Sequence[LabelledWindow], cfg: ReaderConfig, config: ml_collections.ConfigDict,
                   tokenizer: Tokenizer, info: TokenizerInfo, rng: np.random.Generator | None) -> list[Example]:
    """Examples of one epoch (augmented when `rng` is given)."""
    inputs = input_config(cfg, config)
    out: list[Example] = []
    for lw in windows:
        if cfg.is_span:
            labels = None
            if rng is not None:
                cands, labels = augment_span(lw, rng, config.shuffle_candidates, config.random_drop_gold_candidates)
                lw = dataclasses.replace(lw, window=dataclasses.replace(lw.window, span_candidates=cands))
            exs = span_examples(lw, tokenizer, info, inputs, labels)
            if config.get("skip_empty", False):
                exs = [x for x in exs if any(v > 1 for v in x.ed_labels)]
            out.extend(exs)
        else:
            if config.get("skip_empty", False) and not lw.word_triplets:
                continue
            if rng is not None:
                trip, spans = augment_triplet(lw, rng, config.max_relations, config.shuffle_candidates,
                                              config.flip_candidates, span_nme=bool(config.use_nme))
                lw = dataclasses.replace(lw, window=dataclasses.replace(lw.window, triplet_candidates=trip,
                                                                        span_candidates=spans))
            ex = triplet_example(lw, tokenizer, info, inputs)
            if ex is not None:
                out.append(ex)
    return out


def train_batch_plan(windows: Sequence[LabelledWindow], cfg: ReaderConfig, config: ml_collections.ConfigDict,
                     tokenizer: Tokenizer, info: TokenizerInfo, buckets: Buckets
                     ) -> Iterator[tuple[int, int, list[Example]]]:
    """Endless stream of (L, padded rows, examples) per training step; epoch e uses RNG seed (config.seed, e)."""
    epoch = 0
    while True:
        rng = np.random.default_rng([config.seed, epoch])
        exs = epoch_examples(windows, cfg, config, tokenizer, info, rng)
        if not exs:
            raise ValueError("the training windows produced no examples (no labels / candidates?)")
        for length, rows, idx in plan_epoch(exs, buckets, rng):
            yield length, rows, [exs[i] for i in idx]
        epoch += 1


def train_batches(windows: Sequence[LabelledWindow], cfg: ReaderConfig, config: ml_collections.ConfigDict,
                  tokenizer: Tokenizer, info: TokenizerInfo, buckets: Buckets) -> Iterator[dict[str, np.ndarray]]:
    """Endless stream of padded training batches (`train_batch_plan` collated)."""
    typed = bool(cfg.additional_special_symbols_types)
    k = int(config.train_min_mentions)
    floors = {"S": k, "M": k, "C": buckets.count(cfg.additional_special_symbols + 1),
              "R": buckets.count(cfg.additional_special_symbols),
              "T": buckets.count(max(cfg.additional_special_symbols_types, 1))}
    for length, rows, exs in train_batch_plan(windows, cfg, config, tokenizer, info, buckets):
        yield collate(exs, length, rows, buckets, info.pad_id, span=cfg.is_span, typed=typed, min_sizes=floors)
