"""Reader training: labelled windows -> static-shape batches (the `reader_losses` batch format) -> `train_reader`.

Inputs are built by `reader_inputs.span_rows` / `triplet_row` (so training rows are the rows inference sees, token
for token); labels follow the reference's training datasets (relik-reference.md §2.5;
`relik_reader_data.RelikDataset._build_labels`, `relik_reader_re_data.RelikREDataset._build_labels`):

- EL (char labels, sorted by (start, end)): start label at the sub-token whose char start is the mention's (the
  last such sub-token when several share it; otherwise the nearest one to the left), end label at the sub-token
  whose char end is the mention's (else the nearest to the right); +1 for CLS. The ed label is the gold title's
  index in the row's predictable candidates + 1 (column 0 = CLS, so with `use_nme` NME = 1); a gold title missing
  from the row's candidates becomes NME (or the mention is dropped without `use_nme`). A second label on the same
  (start, end) is ignored. Gold titles have '_' replaced by ' ' as the reference's `preprocess_sample`.
- RE / cIE (word labels, window-relative `[ws, we)`): start = first sub-token of word ws, end = last sub-token of
  word we - 1 (+1 for CLS; words without sub-tokens are skipped inwards); end labels are -100 before their start;
  relation labels [M, M, R] over the distinct mentions sorted by (start, end) = the order of
  `reader.select_mentions`; cIE type labels [M, T] = 1 at the gold type's column in the row's entity candidates.
- start / end labels are -100 on `prediction_mask` positions; padding is -100 everywhere.

Training-time candidate augmentation as the reference datasets (seeded numpy RNG, per epoch):
EL `random_drop_gold_candidates` (relabel some gold titles NME and drop them from the candidates) and
`shuffle_candidates`; RE gold relations forced into the candidates (replacing the last non-gold ones),
`shuffle_candidates` or else `flip_candidates` (random adjacent swaps), NME kept first.

Static shapes: L from `Buckets.seq_lens`, rows per batch from the token budget (`token_batch_size // L`, power of
two), Lt from `Buckets.text_lens`, S / M / C / T / R from `Buckets.counts` (powers of two beyond); `ShapeLog`
records the distinct batch shapes (= train-step compilations).
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from tokenizers import AddedToken, Tokenizer

from relik_jax.data import corpora as datasets
from relik_jax.data import jsonl
from relik_jax.data import toy as toy_data
from relik_jax.data.jsonl import write_jsonl
from relik_jax.data.retrieval import aida_kb
from relik_jax.data.windowing import labelled_windows
from relik_jax.engine.buckets import Buckets, ShapeLog, plan_batches
from relik_jax.evaluation.metrics import el_strong_matching, re_matching
from relik_jax.io import hf_io
from relik_jax.models import backbones
from relik_jax.reader import decoding as dec
from relik_jax.reader.convert import load_reader, save_reader
from relik_jax.reader.inputs import (
    NME,
    ReaderWindow,
    SpanInputConfig,
    TokenizerInfo,
    TripletInputConfig,
    relation_symbols,
    span_rows,
    span_symbols,
    triplet_row,
)
from relik_jax.reader.losses import IGNORE, loss_fn
from relik_jax.reader.model import ReaderConfig, SpanReader, TripletReader, build_reader
from relik_jax.reader.reader import Reader
from relik_jax.retriever.encoder import Retriever, add_candidates, resolve_encoder
from relik_jax.text.tokenization import load_tokenizer
from relik_jax.training.trainer import MetricsLog, Trainer, make_optimizer, to_numpy_metrics

# ---------------------------------------------------------------------------------------------------------------
# Labelled windows
# ---------------------------------------------------------------------------------------------------------------

CharSpan = tuple[int, int, str]  # (char start, char end exclusive, label)
WordSpan = tuple[int, int, str]  # (window-relative word start, word end exclusive, label)


@dataclasses.dataclass
class LabelledWindow:
    """A reader window with its gold labels (char level for EL and evaluation, word level for RE)."""

    window: ReaderWindow
    labels: list[CharSpan]
    word_labels: list[WordSpan]
    triplets: list[tuple[CharSpan, str, CharSpan]]  # char-level (evaluation)
    word_triplets: list[tuple[WordSpan, str, WordSpan]]

    @classmethod
    def from_dict(cls, d: dict[str, Any], span_candidates: Sequence[str] | None = None,
                  triplet_candidates: Sequence[str] | None = None) -> LabelledWindow:
        """From a windowized row (`windowing.labelled_windows` / the reference's §4.3 JSONL); candidates given here
        override the row's `span_candidates` / `triplet_candidates`."""
        window = ReaderWindow.from_reference(d)
        if span_candidates is not None:
            window.span_candidates = list(span_candidates)
        if triplet_candidates is not None:
            window.triplet_candidates = list(triplet_candidates)
        labels = [(int(s), int(e), str(lab)) for s, e, lab in d.get("window_labels", [])]
        word_labels = [(int(s), int(e), str(lab)) for s, e, lab in d.get("window_labels_tokens", [])]

        def trip(rows: list) -> list:
            return [((*map(int, t["subject"][:2]), str(t["subject"][2])), str(t["relation"]),
                     (*map(int, t["object"][:2]), str(t["object"][2]))) for t in rows]

        return cls(window, labels, word_labels, trip(d.get("window_triplet_labels", [])),
                   trip(d.get("window_triplet_labels_tokens", [])))


# ---------------------------------------------------------------------------------------------------------------
# Examples (one row + its labels)
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Example:
    """One training row with labels, un-padded. Positions are row positions (CLS = 0)."""

    input_ids: np.ndarray  # [n] int32
    token_type_ids: np.ndarray  # [n] int32
    prediction_mask: np.ndarray  # [n] bool
    symbol_mask: np.ndarray  # [n] bool: EL candidate columns (CLS first), RE relation symbols
    type_mask: np.ndarray  # [n] bool: cIE entity-type symbols (else all False)
    n_text: int
    mentions: list[tuple[int, int]]  # gold (start, end) sorted
    ed_labels: list[int]  # EL: candidate index + 1 per mention
    relation_labels: np.ndarray | None = None  # RE [M, M, R] int8
    type_labels: np.ndarray | None = None  # cIE [M, T] float32
    mask_preceding: bool = False  # RE: end labels before their start are -100

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def starts(self) -> list[int]:
        return sorted({s for s, _ in self.mentions})


def _char_maps(char_starts: Sequence[int], char_ends: Sequence[int]) -> tuple[dict[int, int], dict[int, int]]:
    # dict inversion: the last sub-token with a given char start / end wins, as the reference's
    return {c: i for i, c in enumerate(char_starts)}, {c: i for i, c in enumerate(char_ends)}


def _snap(char: int, table: dict[int, int], step: int, lo: int, hi: int) -> int | None:
    while char not in table:
        char += step
        if char < lo or char > hi:
            return None
    return table[char]


def span_examples(lw: LabelledWindow, tokenizer: Tokenizer, info: TokenizerInfo, cfg: SpanInputConfig,
                  labels: Sequence[CharSpan] | None = None) -> list[Example]:
    """EL examples of a window (one per candidate patch, as `span_rows`)."""
    labels = sorted(((s, e, t.replace("_", " ")) for s, e, t in (lw.labels if labels is None else labels)),
                    key=lambda x: (x[0], x[1]))
    out = []
    for row in span_rows(lw.window, 0, tokenizer, info, cfg):
        text = row.text
        if not len(text):
            continue
        starts_map, ends_map = _char_maps(text.char_starts, text.char_ends)
        lo, hi = min(text.char_starts), max(text.char_ends)
        pred = row.predictable_candidates
        mentions: dict[tuple[int, int], int] = {}
        for cs, ce, gold in labels:
            if gold not in pred:
                if not cfg.use_nme:
                    continue
                gold = NME
            s = _snap(cs, starts_map, -1, lo, hi)
            e = _snap(ce, ends_map, +1, lo, hi)
            if s is None or e is None:
                continue
            key = (s + 1, e + 1)
            if key not in mentions:  # a second label on the same span is ignored (reference)
                mentions[key] = pred.index(gold) + 1
        ms = sorted(mentions)
        out.append(Example(row.input_ids, row.token_type_ids, row.prediction_mask, row.special_symbols_mask,
                           np.zeros(len(row), bool), len(text), ms, [mentions[m] for m in ms]))
    return out


def _word_tokens(window: ReaderWindow, char_starts: Sequence[int]) -> dict[int, list[int]]:
    """Window-relative word index -> its sub-token indices (text positions, no CLS)."""
    out: dict[int, list[int]] = {i: [] for i in range(len(window.words))}
    for t, c in enumerate(char_starts):
        w = bisect.bisect_right(window.word_starts, c) - 1
        if w >= 0:
            out[w].append(t)
    return out


def triplet_example(lw: LabelledWindow, tokenizer: Tokenizer, info: TokenizerInfo,
                    cfg: TripletInputConfig) -> Example | None:
    """RE / cIE example of a window (None when the row is skipped, as the reference)."""
    row = triplet_row(lw.window, 0, tokenizer, info, cfg)
    if row is None or not lw.word_labels:
        return None
    w2t = _word_tokens(lw.window, row.text.char_starts)
    n_words = len(lw.window.words)
    spans: dict[tuple[int, int], str] = {}
    word_span: dict[tuple[int, int], tuple[int, int]] = {}
    for ws, we, label in sorted(lw.word_labels, key=lambda x: (x[0], x[1])):
        while ws < n_words and not w2t.get(ws):  # the reference's `_adjust_entity_boundaries`
            ws += 1
        while we > 0 and not w2t.get(we - 1):
            we -= 1
        if ws >= n_words or we <= ws:
            continue
        key = (w2t[ws][0] + 1, w2t[we - 1][-1] + 1)
        if key not in spans:
            spans[key] = label
            word_span[(ws, we)] = key
    ms = sorted(spans)
    index = {m: i for i, m in enumerate(ms)}
    n_rel = len(row.triplet_candidates)
    rel = np.zeros((len(ms), len(ms), n_rel), np.int8)
    for (ss, se, _), r, (os_, oe, _) in lw.word_triplets:
        sk, ok = word_span.get((ss, se)), word_span.get((os_, oe))
        if sk is not None and ok is not None and r in row.triplet_candidates:
            rel[index[sk], index[ok], row.triplet_candidates.index(r)] = 1
    types = None
    if cfg.type_symbols:
        cands = row.span_candidates or []
        types = np.zeros((len(ms), int(row.entity_symbols_mask.sum())), np.float32)
        for m, label in spans.items():
            if label in cands and cands.index(label) < types.shape[1]:
                types[index[m], cands.index(label)] = 1.0
    return Example(row.input_ids, row.token_type_ids, row.prediction_mask, row.relation_symbols_mask,
                   row.entity_symbols_mask, len(row.text), ms, [], rel, types, mask_preceding=True)


# ---------------------------------------------------------------------------------------------------------------
# Candidate augmentation (training only)
# ---------------------------------------------------------------------------------------------------------------


def augment_span(lw: LabelledWindow, rng: np.random.Generator, shuffle: float, drop_gold: float
                 ) -> tuple[list[str], list[CharSpan]]:
    """The reference's EL training mods: (candidates, labels) after random gold dropping and shuffling."""
    cands = list(lw.window.span_candidates or [])
    labels = [(s, e, t.replace("_", " ")) for s, e, t in lw.labels]
    if drop_gold > 0 and rng.uniform() < drop_gold and len({t for _, _, t in labels}) > 1:
        order = rng.permutation(len(labels))
        labels = [labels[i] for i in order]
        dropped = {labels[i][2] for i in range(int(rng.integers(0, len(labels) - 1)))} - {NME}
        labels = [(s, e, NME if t in dropped else t) for s, e, t in labels]
        cands = [c for c in cands if c not in dropped]
    if shuffle > 0 and rng.uniform() < shuffle:
        cands = [cands[i] for i in rng.permutation(len(cands))]
    return cands, labels


def augment_triplet(lw: LabelledWindow, rng: np.random.Generator, max_relations: int, shuffle: float,
                    flip: float, add_gold: bool = True, span_nme: bool = False) -> tuple[list[str], list[str] | None]:
    """The reference's RE training mods: (triplet candidates, span candidates). `span_nme`: the rows will put NME
    first among the span (type) candidates; the reference inserts it BEFORE these mods, so NME takes part in the
    flip's adjacent swaps (which shifts the others: the first type stays first with p = 3/4, not 1/2) and is then
    moved back to the front. Returned span candidates exclude NME (the row adds it)."""
    trip = list(lw.window.triplet_candidates or [])[:max_relations]
    spans = list(lw.window.span_candidates) if lw.window.span_candidates is not None else None
    gold = {r for _, r, _ in lw.word_triplets}
    if add_gold and gold:
        missing = sorted(gold - set(trip))
        k = 0
        for i in reversed(range(len(trip))):
            if k == len(missing):
                break
            if trip[i] not in gold and trip[i] != NME:
                trip[i] = missing[k]
                k += 1
        while k < len(missing) and len(trip) < max_relations:
            trip.append(missing[k])
            k += 1

    def nme_first(c: list[str]) -> list[str]:
        return ([NME] + [x for x in c if x != NME]) if NME in c else c

    def shuffled(c: list[str]) -> list[str]:
        return nme_first([c[i] for i in rng.permutation(len(c))]) if rng.uniform() < shuffle else c

    def flipped(c: list[str]) -> list[str]:
        if rng.uniform() >= flip:
            return c
        c = list(c)
        for i in range(len(c) - 1):
            if rng.uniform() < 0.5:
                c[i], c[i + 1] = c[i + 1], c[i]
        return nme_first(c)

    span_nme = span_nme and spans is not None and NME not in spans
    if span_nme:
        spans = [NME, *spans]
    if shuffle > 0:
        trip = shuffled(trip)
        spans = shuffled(spans) if spans is not None else None
    elif flip > 0:
        trip = flipped(trip)
        spans = flipped(spans) if spans is not None else None
    if span_nme:
        spans = spans[1:]  # NME is first again (nme_first); the row inserts it
    return trip, spans


# ---------------------------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------------
# Task setup: tokenizer, model, data
# ---------------------------------------------------------------------------------------------------------------


def reader_symbols(cfg: ReaderConfig) -> list[str]:
    """Special tokens a training tokenizer gets, in the reference's order (EL: NME + [E-i]; RE: [R-i]; cIE: [R-i]
    then NME + [E-i])."""
    if cfg.is_span:
        return span_symbols(cfg.additional_special_symbols - 1)
    types = span_symbols(cfg.additional_special_symbols_types - 1) if cfg.additional_special_symbols_types else []
    return relation_symbols(cfg.additional_special_symbols) + types


def add_symbols(tokenizer: Tokenizer, symbols: Sequence[str]) -> Tokenizer:
    """Add the special symbols (ids after the base vocabulary, as HF `add_special_tokens` + resize)."""
    missing = [s for s in symbols if tokenizer.token_to_id(s) is None]
    tokenizer.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in missing])
    return tokenizer


def input_config(cfg: ReaderConfig, config: ml_collections.ConfigDict) -> SpanInputConfig | TripletInputConfig:
    """Training-time row options: the span reader uses the training symbol list (n strings, the tokenizer's)."""
    if cfg.is_span:
        return SpanInputConfig(tuple(span_symbols(cfg.additional_special_symbols - 1)), use_nme=config.use_nme,
                               model_max_length=config.max_length)
    types = cfg.additional_special_symbols_types
    return TripletInputConfig(tuple(relation_symbols(cfg.additional_special_symbols)),
                              tuple(span_symbols(types - 1)) if types else (), use_nme=config.use_nme,
                              max_triplets=config.max_relations, model_max_length=config.max_length)


TINY_BACKBONES = {
    "tiny-bert": dict(model_type="bert", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=128, max_position_embeddings=512, type_vocab_size=2),
    "tiny-deberta": dict(model_type="deberta-v2", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, relative_attention=True, position_buckets=64,
                         max_relative_positions=-1, pos_att_type=["p2c", "c2p"], share_att_key=True,
                         norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0,
                         layer_norm_eps=1e-7),
}


def build_training_reader(config: ml_collections.ConfigDict) -> tuple[ReaderConfig, SpanReader | TripletReader,
                                                                       Tokenizer, dict[str, Any]]:
    """The model to train: `config.init` = 'random' (named tiny backbone or a backbone config folder), 'pretrained'
    (HF encoder folder as backbone, fresh heads) or 'reader' (a reference or our reader folder)."""

    if config.init == "reader":
        cfg, model, tokenizer, tok_cfg = load_reader(config.backbone)
        seed_dropout(model, config.seed)  # loading draws its dropout keys from a fixed seed
        set_dropout(model, config.get("dropout", -1.0))
        return cfg, model, tokenizer, tok_cfg
    task = config.task
    types = int(config.get("entity_types", 0) or 0)
    if task == "el":
        cfg = ReaderConfig(architecture="RelikReaderSpanModel", transformer_model=config.backbone,
                           additional_special_symbols=config.candidates_per_forward + 1,
                           linears_hidden_size=config.linears_hidden_size)
    else:
        cfg = ReaderConfig(architecture="RelikReaderREModel", transformer_model=config.backbone,
                           additional_special_symbols=config.max_relations,
                           additional_special_symbols_types=types + 1 if types else 0,
                           linears_hidden_size=config.linears_hidden_size, entity_type_loss=types > 0,
                           add_entity_embedding=types > 0, threshold=config.get("threshold", 0.5))
    if config.init == "random":
        if config.backbone in TINY_BACKBONES:

            tokenizer = toy_data.toy_tokenizer()
            bb = dict(TINY_BACKBONES[config.backbone])
        else:
            folder = resolve_encoder(config.backbone)
            tokenizer, bb = load_tokenizer(folder), hf_io.read_config(folder)
    elif config.init == "pretrained":
        folder = resolve_encoder(config.backbone)
        tokenizer, bb = load_tokenizer(folder), hf_io.read_config(folder)
    else:
        raise ValueError(f"config.init={config.init!r}: expected 'random', 'pretrained' or 'reader'")
    tokenizer.no_truncation()
    tokenizer.no_padding()
    add_symbols(tokenizer, reader_symbols(cfg))
    bb["vocab_size"] = tokenizer.get_vocab_size(with_added_tokens=True)
    model = build_reader(cfg, backbones.backbone_config_from_dict(bb), rngs=nnx.Rngs(config.seed))
    if config.init == "pretrained":
        backbones.init_from_pretrained(model.transformer_model, folder, seed=config.seed)
    head_init = config.get("head_init", "reference")
    if head_init == "reference":
        torch_default_head_init(model, seed=config.seed)
    elif head_init != "normal":
        raise ValueError(f"config.head_init={head_init!r}: expected 'reference' or 'normal'")
    set_dropout(model, config.get("dropout", -1.0))
    return cfg, model, tokenizer, {"model_max_length": int(config.max_length)}


def set_dropout(model: nnx.Module, rate: float) -> None:
    """Every dropout of `model` (backbone and heads) at `rate`; rate < 0 keeps the model's own rates. Rate 0 makes
    training deterministic (the lockstep comparison with the reference, benchmarks/reference_train_conll04.py)."""
    if rate < 0:
        return
    if rate >= 1:
        raise ValueError(f"config.dropout={rate}: expected a rate in [0, 1) or < 0 for the model's own rates")
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Dropout):
            node.rate = float(rate)


def seed_dropout(model: nnx.Module, seed: int) -> None:
    """Give every dropout of `model` its own key derived from `seed` (counters reset): the masks of a training run
    then follow `config.seed` whatever built the model. In place."""
    base = jax.random.key(seed)
    i = 0
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Dropout) and node.rngs is not None:
            node.rngs.key.set_value(jax.random.fold_in(base, i))
            node.rngs.count.set_value(jnp.zeros_like(node.rngs.count.get_value()))
            i += 1


def torch_default_head_init(model: nnx.Module, *, seed: int = 0) -> None:
    """Re-draw every head Linear (everything outside `transformer_model`) as `torch.nn.Linear` does by default,
    weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)): the reference's fresh heads keep that init (its reader
    models never run HF's `post_init`). LayerNorms keep ones / zeros, as in torch. In place."""
    rng = np.random.default_rng(seed + 7919)  # a stream of its own, not the backbone's
    for path, node in nnx.iter_graph(model):
        if not isinstance(node, nnx.Linear) or (path and path[0] == "transformer_model"):
            continue
        kernel = node.kernel.get_value()
        bound = 1.0 / np.sqrt(kernel.shape[0])
        node.kernel.set_value(jnp.asarray(rng.uniform(-bound, bound, kernel.shape), kernel.dtype))
        if node.bias is not None:
            bias = node.bias.get_value()
            node.bias.set_value(jnp.asarray(rng.uniform(-bound, bound, bias.shape), bias.dtype))


def _windows(docs: Sequence[Any], config: ml_collections.ConfigDict) -> list[dict]:

    size = config.window_size if config.window_size else None
    return list(labelled_windows(docs, size, config.window_stride, use_dataset_words=config.use_dataset_words))


def _split_windows(config: ml_collections.ConfigDict) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """Labelled window rows per split and each split's sorted document `mention_labels` / `relations`: parsed from
    the original files (`data_format` "jsonl", the default) or read from prepared TFDS array_record files
    (`data_format` "tfds", `tfds_data_dir`; relik_jax.data.tfds)."""
    fmt = config.get("data_format", "jsonl")
    if fmt == "tfds":
        from relik_jax.data.tfds import training_windows

        return training_windows(config)
    if fmt != "jsonl":
        raise ValueError(f"config.data_format={fmt!r}: expected 'jsonl' (parse the original files) or 'tfds'")

    if config.dataset == "rebel":
        raw = datasets.rebel_splits(list(datasets.read_rebel_sample()))
    else:
        reader = datasets.read_conll04 if config.dataset == "conll04" else datasets.read_nyt
        raw = {s: list(reader(config.get(f"{s}_split", s))) for s in ("train", "dev", "test")}
    labels = {s: {"mention_labels": sorted({m.label for d in docs for m in d.mentions}),
                  "relations": sorted({t.relation for d in docs for t in d.triplets})} for s, docs in raw.items()}
    return {s: _windows(docs, config) for s, docs in raw.items()}, labels


def load_splits(config: ml_collections.ConfigDict) -> dict[str, list[LabelledWindow]]:
    """Labelled windows with candidates for train / dev / test, per `config.dataset`."""

    name = config.dataset
    if config.get("data_format", "jsonl") == "tfds" and name not in ("conll04", "nyt", "rebel", "windows"):
        raise ValueError(f"config.data_format='tfds' reads prepared conll04, nyt, rebel or windows data, not {name!r}")
    if name == "toy":

        raw = {s: toy_data.documents(n, config.seed + k, s)
               for k, (s, n) in enumerate([("train", config.toy_train), ("dev", config.toy_eval),
                                           ("test", config.toy_eval)])}
        titles = toy_data.all_titles()
        type_names = sorted({toy_data.entity_type(t) for t in titles})
        if config.task != "el":  # RE / cIE: labels are entity types
            for docs in raw.values():
                for d in docs:
                    d.mentions = [dataclasses.replace(m, label=toy_data.entity_type(m.label)) for m in d.mentions]
                    d.triplets = [dataclasses.replace(
                        t, subject=dataclasses.replace(t.subject, label=toy_data.entity_type(t.subject.label)),
                        object=dataclasses.replace(t.object, label=toy_data.entity_type(t.object.label)))
                        for t in d.triplets]
        rng = np.random.default_rng(config.seed)
        out = {}
        for split, docs in raw.items():
            rows = []
            for w in _windows(docs, config):
                if config.task == "el":
                    gold = sorted({lab for _, _, lab in w["window_labels"]})
                    others = [t for t in titles if t not in gold]
                    k = max(0, config.num_candidates - len(gold))
                    cands = gold + [others[i] for i in rng.permutation(len(others))[:k]]
                    cands = [cands[i] for i in rng.permutation(len(cands))]
                    rows.append(LabelledWindow.from_dict(w, span_candidates=cands))
                else:
                    rows.append(LabelledWindow.from_dict(
                        w, triplet_candidates=list(toy_data.RELATIONS),
                        span_candidates=type_names if config.get("entity_types") else None))
            out[split] = rows
        return out
    if name in ("conll04", "nyt"):
        windows, labels = _split_windows(config)
        relations = list(config.relations) if config.get("relations") else sorted(
            {r for m in labels.values() for r in m["relations"]})
        types = list(labels["train"]["mention_labels"]) if config.get("entity_types") else None
        return {s: [LabelledWindow.from_dict(w, triplet_candidates=relations, span_candidates=types)
                    for w in rows] for s, rows in windows.items()}
    if name == "rebel":
        windows, labels = _split_windows(config)
        titles = sorted({t for m in labels.values() for t in m["mention_labels"]})
        relations = sorted({r for m in labels.values() for r in m["relations"]})
        rng = np.random.default_rng(config.seed)
        out = {}
        for split, ws in windows.items():
            rows = []
            for w in ws:
                gold_e = sorted({lab for _, _, lab in w["window_labels"]})
                gold_r = sorted({t["relation"] for t in w.get("window_triplet_labels", [])})
                ents = _with_negatives(gold_e, titles, config.num_candidates, rng)
                rels = _with_negatives(gold_r, relations, config.max_relations, rng)
                rows.append(LabelledWindow.from_dict(w, span_candidates=ents, triplet_candidates=rels))
            out[split] = rows
        return out
    if name == "aida":
        return aida_splits(config)
    if name == "windows" and config.get("data_format", "jsonl") == "tfds":
        windows, _ = _split_windows(config)
        return {s: [LabelledWindow.from_dict(d) for d in rows] for s, rows in windows.items()}
    if name == "windows":  # windowized JSONL files with candidates (e.g. AIDA after a retriever run)
        return {s: [LabelledWindow.from_dict(d) for d in jsonl.read_jsonl(config[f"{s}_windows"])]
                for s in ("train", "dev", "test")}
    raise ValueError(f"config.dataset={name!r}: expected toy, conll04, nyt, rebel, aida or windows")


AIDA_SPLITS = {"train": "train", "dev": "testa", "test": "testb"}


def aida_splits(config: ml_collections.ConfigDict) -> dict[str, list[LabelledWindow]]:
    """AIDA train / testa / testb windows (`window_size` / `window_stride`, the dataset's words) with the top
    `num_candidates` titles of a retriever as span candidates: `config.retriever` (encoder folder, e.g. a
    `train_retriever` workdir's `encoder/`) over `config.retriever_index` (index folder; "" = an index of the
    closed AIDA KB built here), queries paired with the document topic when `config.use_doc_topics`. With
    `config.candidates_cache` (a folder) the windows with candidates are written there once and read back
    afterwards (`aida_<split>_top<k>.jsonl`, the reference's windowized format)."""

    k = int(config.num_candidates)
    cache = Path(config.get("candidates_cache", "") or "")
    files = {s: cache / f"aida_{a}_top{k}.jsonl" for s, a in AIDA_SPLITS.items()}
    if not (str(cache) != "." and all(f.is_file() for f in files.values())):
        if not config.get("retriever"):
            raise ValueError("config.dataset='aida' needs config.retriever=ENCODER_FOLDER (a retriever encoder, e.g. "
                             "all-MiniLM-L6-v2 or a train_retriever workdir's encoder/) or a config.candidates_cache "
                             "folder holding aida_{train,testa,testb}_top<k>.jsonl")

        index = config.get("retriever_index", "") or None
        retriever = Retriever.from_pretrained(resolve_encoder(config.retriever), index)
        if retriever.index is None:
            retriever.build_index(aida_kb(), progress="Indexing the AIDA KB" if config.verbose else None)
        if str(cache) != ".":
            cache.mkdir(parents=True, exist_ok=True)
        out = {}
        for split, aida_split in AIDA_SPLITS.items():
            counts: dict[str, int] = {}
            rows = list(add_candidates(retriever, _windows(list(datasets.read_aida(aida_split)), config), k,
                                       use_doc_topics=bool(config.get("use_doc_topics", True)), recall=counts))
            if config.verbose:
                print(f"AIDA {aida_split}: {len(rows)} windows, gold titles among the top {k}: "
                      f"{counts.get('found', 0)}/{counts.get('gold', 0)}")
            if str(cache) != ".":
                jsonl.write_jsonl(rows, files[split])
            out[split] = [LabelledWindow.from_dict(w) for w in rows]
        return out
    return {s: [LabelledWindow.from_dict(w) for w in jsonl.read_jsonl(f)] for s, f in files.items()}


def _with_negatives(gold: list[str], pool: list[str], k: int, rng: np.random.Generator) -> list[str]:
    """Gold labels plus random others up to k, shuffled (stand-in for retriever candidates)."""
    gold = gold[:k]
    gs = set(gold)
    others = [p for p in pool if p not in gs]
    picks = [others[i] for i in rng.choice(len(others), size=min(k - len(gold), len(others)), replace=False)]
    out = gold + picks
    return [out[i] for i in rng.permutation(len(out))]


# ---------------------------------------------------------------------------------------------------------------
# Examples per epoch
# ---------------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------------


def evaluate_windows(reader: Any, windows: Sequence[LabelledWindow], task: str) -> tuple[dict[str, float],
                                                                                           list[dict]]:
    """Predict `windows` with a `reader_api.Reader`; EL: strong-match InKB micro P/R/F1 per document (windows of a
    document merged), RE/cIE: `metrics.re_matching` per window. Returns (metrics, prediction rows)."""

    preds = reader.read([lw.window for lw in windows])
    rows: list[dict] = []
    if task == "el":
        by_doc_pred: dict[Any, set] = {}
        by_doc_gold: dict[Any, set] = {}
        for lw, p in zip(windows, preds, strict=True):
            doc = lw.window.doc_id
            spans = {(int(s), int(e), str(t)) for s, e, t in p.spans}
            by_doc_pred.setdefault(doc, set()).update(spans)
            by_doc_gold.setdefault(doc, set()).update((s, e, t.replace("_", " ")) for s, e, t in lw.labels)
            rows.append({"doc_id": doc, "window_id": lw.window.window_id, "predicted_spans": sorted(spans),
                         "gold_spans": sorted({(s, e, t.replace("_", " ")) for s, e, t in lw.labels})})
        docs = list(by_doc_gold)
        return el_strong_matching([sorted(by_doc_pred[d]) for d in docs], [sorted(by_doc_gold[d]) for d in docs]), rows
    pred_t, gold_t = [], []
    for lw, p in zip(windows, preds, strict=True):
        spans = [(int(s), int(e), str(t)) for s, e, t in p.spans]
        trip = [(spans[s], r, spans[o]) for s, r, o, _ in p.triplets]
        gold = [(tuple(s), r, tuple(o)) for s, r, o in lw.triplets]
        pred_t.append(trip)
        gold_t.append(gold)
        rows.append({"doc_id": lw.window.doc_id, "window_id": lw.window.window_id, "predicted_spans": spans,
                     "predicted_triplets": [[list(s), r, list(o), float(pp)] for (s, r, o), (_, _, _, pp)
                                            in zip(trip, p.triplets, strict=True)],
                     "gold_triplets": [[list(s), r, list(o)] for s, r, o in gold]})
    return re_matching(pred_t, gold_t), rows


def evaluate_thresholds(reader: Any, windows: Sequence[LabelledWindow], thresholds: Sequence[float]
                        ) -> dict[float, dict[str, float]]:
    """RE / cIE metrics for several relation thresholds from one forward pass (the reference's
    `predict_re.py --compute-threshold` picks the dev-optimal one)."""

    rows = reader.rows([lw.window for lw in windows])
    outs = dict(zip((r.window_index for r in rows), zip(rows, reader.forward(rows), strict=True), strict=True))
    gold = [[(tuple(s), r, tuple(o)) for s, r, o in lw.triplets] for lw in windows]
    results = {}
    for t in thresholds:
        pred = []
        for i in range(len(windows)):
            if i not in outs:
                pred.append([])
                continue
            row, out = outs[i]
            p = dec.decode_triplet_row(row, out["mentions"], out.get("type_pred"), out["re_probs"], t)
            spans = [(int(s), int(e), str(lab)) for s, e, lab in p.spans]
            pred.append([(spans[a], r, spans[o]) for a, r, o, _ in p.triplets])
        results[float(t)] = re_matching(pred, gold)
    return results


def eval_reader(cfg: ReaderConfig, model: Any, tokenizer: Tokenizer, config: ml_collections.ConfigDict) -> Any:

    return Reader(cfg, model, tokenizer, {"model_max_length": config.max_length}, buckets=eval_buckets(config),
                  model_max_length=config.max_length, use_nme=config.use_nme, max_triplets=config.max_relations)


def eval_buckets(config: ml_collections.ConfigDict) -> Buckets:
    return Buckets(seq_lens=tuple(config.seq_lens), token_budget=config.eval_token_batch_size,
                   max_rows=config.max_rows)


def task_metric(metrics: dict[str, float], config: ml_collections.ConfigDict) -> float:
    return float(metrics[config.select_metric])


# ---------------------------------------------------------------------------------------------------------------
# train_reader
# ---------------------------------------------------------------------------------------------------------------


THRESHOLDS = (0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05, 0.02)


def _head_multiplier(config: ml_collections.ConfigDict) -> Any:
    """Optional larger learning rate for the fresh heads (not in the reference: short CPU runs only)."""
    mult = float(config.get("head_lr_multiplier", 1.0))
    if mult == 1.0:
        return None
    return lambda key: 1.0 if key.startswith("transformer_model.") else mult


def reader_optimizer(config: ml_collections.ConfigDict, model: SpanReader | TripletReader) -> Any:
    """AdamW with layer-wise LR decay, warmup + linear decay over `config.num_steps`, clipping (Tables 3-4)."""

    return make_optimizer(nnx.state(model, nnx.Param), learning_rate=config.learning_rate,
                          total_steps=config.num_steps, warmup_steps=config.warmup_steps,
                          weight_decay=config.weight_decay, clip_norm=config.grad_clip or None,
                          layer_lr_decay=config.layer_lr_decay or None,
                          num_layers=model.transformer_model.config.num_hidden_layers,
                          backbone_prefix="transformer_model.", lr_multipliers=_head_multiplier(config))


def train_reader(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Train a reader per `config` (configs/{tiny,aida,nyt,conll04,rebel}.py). Writes into `workdir`:
    `metrics.jsonl` (+ `metrics.png`), `checkpoints/` (orbax, resumable), `best/` (our reader format, best dev
    `select_metric`), `results.json` (dev/test metrics, timings, compile count) and `test_predictions.jsonl`."""

    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    log = print if config.get("verbose", True) else (lambda *a, **k: None)
    t_start = time.perf_counter()
    cfg, model, tokenizer, tok_cfg = build_training_reader(config)
    info = dataclasses.replace(TokenizerInfo.from_tokenizer(tokenizer), model_max_length=config.max_length)
    splits = load_splits(config)
    for s in ("train", "dev", "test"):
        lim = config.get(f"max_{s}_windows", 0)
        if lim:
            splits[s] = splits[s][:lim]
    log("data: " + ", ".join(f"{k} {len(v)} windows" for k, v in splits.items()))
    buckets = Buckets(seq_lens=tuple(config.seq_lens), token_budget=config.token_batch_size, max_rows=config.max_rows)
    trainer = Trainer(model, reader_optimizer(config, model), loss_fn)
    resumed = trainer.restore_latest(workdir)
    metrics_log = MetricsLog(workdir / "metrics.jsonl")
    state_path = workdir / "best_state.json"
    best = json.loads(state_path.read_text()) if resumed and state_path.is_file() else {"step": -1, "value": -1.0}
    if resumed:
        log(f"resumed from step {trainer.step}")
    reader = eval_reader(cfg, trainer.model(), tokenizer, config)
    stream = train_batches(splits["train"], cfg, config, tokenizer, info, buckets)
    for _ in range(trainer.step):  # replay the data stream to the resumed position (host work only)
        next(stream)
    shapes = ShapeLog()
    timing = {"eval": 0.0, "first_step": 0.0, "host": 0.0}
    t_train = time.perf_counter()
    start_step = trainer.step
    pending: list[dict] = []

    def evaluate(split: str) -> tuple[dict[str, float], list[dict]]:
        t = time.perf_counter()
        m = trainer.model()
        reader.update_model(m)
        out = evaluate_windows(reader, splits[split], config.task)
        timing["eval"] += time.perf_counter() - t
        return out

    while trainer.step < config.num_steps:
        t0 = time.perf_counter()
        batch = next(stream)
        timing["host"] += time.perf_counter() - t0
        shapes.add("train_step", batch_shape(batch))
        out = trainer.train_step(batch)
        pending.append(out)
        if trainer.step == start_step + 1:
            jax.block_until_ready(out)
            timing["first_step"] = time.perf_counter() - t0
        if trainer.step % config.log_every == 0 or trainer.step == config.num_steps:
            vals = [to_numpy_metrics(o) for o in pending]  # blocks on the device here only
            mean = {k: float(np.mean([v[k] for v in vals])) for k in vals[-1]}
            metrics_log.write(trainer.step, **mean, lr_step=trainer.step)
            log(f"step {trainer.step}: loss {mean['loss']:.4f} " + " ".join(
                f"{k} {v:.4f}" for k, v in mean.items() if k.endswith("_loss")))
            pending = []
        if config.eval_every and (trainer.step % config.eval_every == 0 or trainer.step == config.num_steps):
            dev, _ = evaluate("dev")
            value = task_metric(dev, config)
            metrics_log.write(trainer.step, **{f"dev_{k}": v for k, v in dev.items()})
            log(f"step {trainer.step}: dev {config.select_metric} {value:.4f} (best {best['value']:.4f})")
            if value >= best["value"]:  # ties: the later model

                best = {"step": trainer.step, "value": value, "dev": dev}
                save_reader(workdir / "best", cfg, trainer.model(), tokenizer, tok_cfg)
                state_path.write_text(json.dumps(best, indent=2))
        if config.checkpoint_every and (trainer.step % config.checkpoint_every == 0
                                        or trainer.step == config.num_steps):
            trainer.save(workdir)
    train_s = time.perf_counter() - t_train
    metrics_log.plot(workdir / "metrics.png")
    if best["step"] < 0:  # no evaluation ran: the final model is the one we keep

        save_reader(workdir / "best", cfg, trainer.model(), tokenizer, tok_cfg)

    test: dict[str, float] = {}
    tuned: dict[str, Any] = {}
    if config.final_test:
        best_cfg, best_model, _, _ = load_reader(workdir / "best")
        reader.update_model(best_model)
        if config.task != "el" and config.get("tune_threshold", False):
            grid = evaluate_thresholds(reader, splits["dev"], THRESHOLDS)
            t = max(grid, key=lambda k: (task_metric(grid[k], config), k))
            tuned = {"threshold": t, "dev": grid[t], "grid": {str(k): v[config.select_metric] for k, v in grid.items()}}
            log(f"dev-optimal relation threshold {t} ({config.select_metric} {task_metric(grid[t], config):.4f})")
            reader.threshold = t
            save_reader(workdir / "best", dataclasses.replace(best_cfg, threshold=t), best_model, tokenizer, tok_cfg)
        test, rows = evaluate_windows(reader, splits["test"], config.task)
        write_jsonl(rows, workdir / "test_predictions.jsonl")
    steps_run = trainer.step - start_step
    loop_s = train_s - timing["eval"] - timing["first_step"]
    results = {"task": config.task, "dataset": config.dataset, "steps": trainer.step, "best_step": best["step"],
               "dev": best.get("dev"), "test": test, "train_seconds": train_s, "eval_seconds": timing["eval"],
               "first_step_seconds": timing["first_step"], "host_batch_seconds": timing["host"],
               "steps_per_second": (steps_run - 1) / loop_s if steps_run > 1 and loop_s > 0 else None,
               "total_seconds": time.perf_counter() - t_start, "steps_this_run": steps_run,
               "train_step_compiles": shapes.counts().get("train_step", 0), "resumed": resumed,
               "eval_compiles": reader.num_compiles, "threshold_tuning": tuned, "config": config.to_dict()}
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    if test:
        log(f"test: {config.select_metric} {test[config.select_metric]:.4f}; results in {workdir / 'results.json'}")
    return results


def default_config() -> ml_collections.ConfigDict:
    """Every reader-training option with its default (the configs/*.py files start from this)."""
    c = ml_collections.ConfigDict()
    c.task = "el"  # el | re | cie
    c.dataset = "toy"  # toy | conll04 | nyt | rebel | aida | windows
    # model: init random (named tiny backbone or encoder folder's config) | pretrained (HF encoder folder as the
    # backbone, fresh heads) | reader (continue from a reference / our reader folder given as `backbone`)
    c.init = "random"
    c.backbone = "tiny-bert"
    c.linears_hidden_size = 512
    # fresh heads: 'reference' = torch.nn.Linear's default U(+-1/sqrt(fan_in)) as the reference's heads keep;
    # 'normal' = N(0, 0.02) weights, zero biases (HF-style). At the CPU CoNLL04 budget: 25.6 +- 1.0 (reference
    # package) vs 30.6 +- 5.9 test F1 (normal), benchmarks/results/reference_train_conll04*.json
    c.head_init = "reference"
    c.dropout = -1.0  # < 0: the backbone's and heads' own dropout rates; >= 0: every dropout at this rate
    c.candidates_per_forward = 100  # EL symbols [E-0]..[E-(n-1)] (+ NME)
    c.max_relations = 24  # RE symbols [R-i] and relation candidates per row
    c.entity_types = 0  # cIE: number of entity-type candidates (symbols NME + [E-i]); 0 = plain RE
    c.num_candidates = 25  # toy / rebel: entity candidates per window (gold + random others); aida: retriever top-k
    c.use_nme = True
    c.threshold = 0.5
    c.max_length = 1024
    # data
    c.window_size = 32
    c.window_stride = 16
    c.use_dataset_words = False
    # aida: candidates from a retriever (encoder folder; index folder or "" = index the closed AIDA KB here)
    c.retriever = ""
    c.retriever_index = ""
    c.use_doc_topics = True
    c.candidates_cache = ""  # folder for the windows with candidates (written once, then read back)
    c.toy_train = 400
    c.toy_eval = 60
    c.max_train_windows = 0
    c.max_dev_windows = 0
    c.max_test_windows = 0
    c.skip_empty = False
    c.data_format = "jsonl"  # jsonl: parse the original files | tfds: prepared array_record (relik_jax.data.tfds)
    c.tfds_data_dir = ""  # tfds: prepared datasets' root ("" = ~/.cache/relik-jax/tfds; prepared there when missing)
    # augmentation (reference defaults: EL shuffle 0.5 + drop gold 0.05; RE flip 1.0)
    c.shuffle_candidates = 0.5
    c.random_drop_gold_candidates = 0.05
    c.flip_candidates = 0.0
    # optimisation (paper Table 4 style)
    c.learning_rate = 1e-5
    c.layer_lr_decay = 0.9
    c.head_lr_multiplier = 1.0  # > 1: heads learn faster than the backbone (not in the reference)
    c.weight_decay = 0.01
    c.grad_clip = 1.0
    c.num_steps = 50_000
    c.warmup_steps = 5_000
    c.token_batch_size = 2048
    c.eval_token_batch_size = 8192
    c.max_rows = 32
    c.train_min_mentions = 16  # training S = M floor (one train-step shape per L bucket)
    c.seq_lens = (64, 128, 256, 512, 768, 1024)
    # loop
    c.seed = 0
    c.log_every = 50
    c.eval_every = 1000
    c.checkpoint_every = 1000
    c.select_metric = "f1"
    c.tune_threshold = False  # RE / cIE: pick the dev-optimal relation threshold before testing (reference
    # predict_re.py --compute-threshold); stored in the best reader's config
    c.final_test = True  # evaluate the best model on test at the end (results.json, test_predictions.jsonl)
    c.verbose = True
    return c
