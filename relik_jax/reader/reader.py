"""`Reader`: windows + candidates -> per-window spans / triplets, over static-shape jitted stages.

    reader = Reader.from_folder("path/to/relik-reader")          # reference folder or our orbax format
    preds = reader.read([Window.from_words(words, starts, ends, span_candidates=[...]), ...])

Per batch the host reads back two small count vectors (starts per row, mentions per row) to pick the S and M
buckets; everything else (start / end selection, mention gathering, linking, relations) stays on device. Batches
run as `engine.executor.interleave` tasks, so each read-back has the next batch's work queued behind it. The
triplet reader scores only the real (subject, object) pairs of each row (`reader/pairs.py`).
`reader.shapes.counts()` reports the distinct programs used; `Buckets.program_bound` the worst case.

`Reader(..., devices=4)` (or a list of devices, or a `jax.sharding.Mesh` with a "data" axis) runs every stage
data-parallel: parameters replicated, each padded batch split row-wise over the devices (its row count a multiple
of theirs, `Buckets.row_multiple`), one program per stage for all of them (engine/sharding.py).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh
from tokenizers import Tokenizer

from relik_jax.engine import sharding
from relik_jax.engine.buckets import Buckets, ShapeLog, plan_batches
from relik_jax.engine.compiled import CompiledForward
from relik_jax.engine.executor import TaskError, interleave
from relik_jax.engine.timing import StageTimes
from relik_jax.models.deberta import CPU_HEADS_PER_STEP, set_attention_blocking
from relik_jax.reader import decoding as dec
from relik_jax.reader.convert import load_reader
from relik_jax.reader.inputs import (
    SpanInputConfig,
    SpanRow,
    TokenizerInfo,
    TripletInputConfig,
    TripletRow,
    relation_symbols,
    span_rows,
    span_symbols,
    text_tokens_many,
    triplet_row,
)
from relik_jax.reader.model import ReaderConfig, SpanReader, TripletReader
from relik_jax.reader.pairs import flat_pairs
from relik_jax.reader.tokens import SubwordCache
from relik_jax.text.windows import Window


@dataclasses.dataclass
class SpanWindowPrediction:
    window_index: int
    spans: list[dec.Span]  # char spans (start, end, title), sorted; NME removed
    span_probabilities: dict[tuple[int, int], list[tuple[str, float]]]
    patches: list[dec.SpanPatch]


@dataclasses.dataclass
class TripletWindowPrediction:
    window_index: int
    spans: list[dec.Span]  # char spans, sorted by start (NME kept)
    triplets: list[tuple[int, str, int, float]]  # (subject span index, relation, object span index, probability)
    word_entities: list[dec.Span]
    word_triplets: list[dict[str, Any]]


def position_limit(backbone_config: Any) -> int | None:
    """The longest row a backbone with absolute position embeddings can read (BERT, DeBERTa with
    `position_biased_input`); None for relative positions only (DeBERTa-v2/v3), which read any length."""
    if getattr(backbone_config, "position_biased_input", True):
        return int(backbone_config.max_position_embeddings)
    return None


class Reader:
    """Windows -> predictions with a converted reader.

    `tokenizer_config` carries the tokenizer's `model_max_length` (kept in `info`; rows do not use it: the
    reference's `read()` overwrites its dataset's min(1000, it) with `max_length`);
    `model_max_length` is `read(max_length=1000)` of the reference: the row budget that splits candidates into
    patches, capped at the backbone's absolute position embeddings where it has them (BERT; the reference crashes
    past them); `use_nme` defaults to the config's value, else
    True for the span reader and False for the triplet reader (hub cIE configs set True);
    `relation_threshold` defaults to `config.threshold` (strict `>`); `top_k` is the length of the EL per-span
    probability lists; `max_triplets` / `max_spans` cap the RE / cIE candidates (reference 50 / 100);
    `pair_chunk` is the number of (subject, object) pairs whose relation activations are live at once;
    `depth` is the number of batches in flight (`engine.executor.interleave`: the next batch is queued on the
    device before the host reads back the current one's counts and outputs);
    `max_mentions` bounds the mentions per row that the triplet reader scores pairwise (B·M²·R relation cells): an
    untrained or diverged model predicts nearly every (start, end) pair, where the reference runs out of memory;
    beyond it the first `max_mentions` in (start, end) order are kept, with a warning (trained models predict a
    few dozen at most);
    `return_logits` adds the full relation logits to `forward` outputs (parity tests; costs B·M²·R·2 floats);
    `devices`: None (one device, JAX's default) or the data-parallel devices (module docstring).
    """

    def __init__(self, cfg: ReaderConfig, model: SpanReader | TripletReader, tokenizer: Tokenizer,
                 tokenizer_config: dict[str, Any] | None = None, *, buckets: Buckets | None = None,
                 model_max_length: int = 1000, use_nme: bool | None = None, relation_threshold: float | None = None,
                 top_k: int = 5, max_triplets: int = 50, max_spans: int = 100, pair_chunk: int = 512, depth: int = 2,
                 max_mentions: int = 256, return_logits: bool = False,
                 devices: Mesh | int | Sequence[Any] | None = None):
        self.mesh = None if devices is None else sharding.data_mesh(devices)
        if self.mesh is not None:  # one replicated copy of the weights, shared by every stage
            model = self._placed(model)
        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        # tokenizer.json files may carry fixed padding / truncation (e.g. sentence-transformers' MiniLM pads to
        # 4096): the reader tokenizes words and candidates on their own and pads batches itself.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        tc = tokenizer_config or {}
        self.info = dataclasses.replace(TokenizerInfo.from_tokenizer(tokenizer),
                                        model_max_length=int(tc.get("model_max_length", 10**30)))
        platform = (self.mesh.devices.flat[0] if self.mesh is not None else jax.devices()[0]).platform
        self.buckets = dataclasses.replace(buckets or Buckets.for_platform(platform),
                                           row_multiple=sharding.data_size(self.mesh))
        # (set either way: the model may come from a Reader on other devices)
        set_attention_blocking(model, CPU_HEADS_PER_STEP if platform == "cpu" and self.buckets.row_multiple == 1
                               else None)
        self.top_k = top_k
        self.threshold = cfg.threshold if relation_threshold is None else relation_threshold
        use_nme = cfg.use_nme if use_nme is None else use_nme
        limit = position_limit(model.transformer_model.config)
        model_max_length = model_max_length if limit is None else min(model_max_length, limit)
        if cfg.is_span:
            self.inputs: SpanInputConfig | TripletInputConfig = SpanInputConfig(
                tuple(span_symbols(cfg.additional_special_symbols)), use_nme=True if use_nme is None else use_nme,
                model_max_length=model_max_length)
        else:
            types = cfg.additional_special_symbols_types
            self.inputs = TripletInputConfig(
                tuple(relation_symbols(cfg.additional_special_symbols)),
                tuple(span_symbols(types - 1)) if types > 0 else (), use_nme=bool(use_nme),
                max_triplets=max_triplets, max_spans=max_spans, model_max_length=model_max_length)
        symbol = self.inputs.special_symbols[1] if cfg.is_span else self.inputs.relation_symbols[0]  # [E-0] / [R-0]
        self.times = StageTimes()  # host seconds per stage (engine/timing.py)
        self.subwords = SubwordCache(tokenizer, symbol, times=self.times)  # every word / candidate tokenized once
        self._encode = CompiledForward(model, lambda m, *a: m.encode(*a), mesh=self.mesh)
        self._ends = CompiledForward(model, lambda m, f, sp, pm, s, lt, mp: m.ends(f, sp, pm, s, lt, mp),
                                     static_argnums=(3, 4, 5), mesh=self.mesh)
        # Without return_logits the per-cell relation logits are not outputs (XLA then never materialises them).
        self.return_logits = return_logits
        if cfg.is_span:
            self._heads = CompiledForward(model, lambda m, f, st, ep, sp, sv, n: m.link(f, st, ep, sp, sv, n),
                                          static_argnums=(5,), mesh=self.mesh)
            # softmax ends: exactly one end per start, so M = S and ends + linking run as one program
            self._ends_link = CompiledForward(
                model, lambda m, f, sp, pm, syp, syv, s, lt: {**(b := m.ends(f, sp, pm, s, lt, False)),
                                                              **m.link(f, b["starts"], b["end_pred"], syp, syv, s)},
                static_argnums=(5, 6), mesh=self.mesh)
        else:
            self._heads = CompiledForward(
                model, lambda m, f, st, ep, n, fr, fs, tp, tv, rp, rv, ps, po, pv, c: m.relate_pairs(
                    f, st, ep, n, fr, fs, tp, tv, rp, rv, ps, po, pv, c, with_logits=return_logits),
                static_argnums=(3, 13), mesh=self.mesh)
        self.pair_chunk = pair_chunk
        self.depth = depth
        if max_mentions < 1:
            raise ValueError(f"max_mentions must be >= 1, got {max_mentions}")
        self.max_mentions = max_mentions
        self.shapes = ShapeLog()

    @classmethod
    def from_folder(cls, folder: str | Path, *, dtype: str = "fp32", **kwargs: Any) -> Reader:

        cfg, model, tok, tok_cfg = load_reader(folder, dtype=dtype)
        return cls(cfg, model, tok, tok_cfg, **kwargs)

    def _placed(self, model: SpanReader | TripletReader) -> SpanReader | TripletReader:
        nnx.update(model, sharding.replicate(nnx.state(model), self.mesh))
        return model

    def _rows(self, *arrays: np.ndarray) -> tuple[Any, ...]:
        """Per-row host arrays [B, ...] of a batch: split over the data-parallel devices (as they are without)."""
        return arrays if self.mesh is None else tuple(sharding.shard_rows(a, self.mesh) for a in arrays)

    def update_model(self, model: SpanReader | TripletReader) -> None:
        """Use new weights (same structure, e.g. during training) in every compiled stage, without recompiling."""
        self.model = model if self.mesh is None else self._placed(model)
        for stage in vars(self).values():
            if isinstance(stage, CompiledForward):
                stage.update(model)

    @property
    def num_compiles(self) -> int:
        fused = self._ends_link.num_compiles if self.cfg.is_span else 0
        return self._encode.num_compiles + self._ends.num_compiles + self._heads.num_compiles + fused

    # ------------------------------------------------------------------------------------------------------
    def rows(self, windows: Sequence[Window | dict[str, Any]]) -> list[SpanRow] | list[TripletRow]:
        """Input rows of `windows` (`Window`s, or windowized rows such as the reference's window dicts)."""
        t = time.perf_counter()
        out: list[Any] = []
        windows = [Window.from_dict(w) if isinstance(w, dict) else w for w in windows]
        texts = text_tokens_many(windows, self.subwords)
        for i, (w, text) in enumerate(zip(windows, texts, strict=True)):
            if self.cfg.is_span:
                out.extend(span_rows(w, i, self.subwords, self.info, self.inputs, text))
            else:
                row = triplet_row(w, i, self.subwords, self.info, self.inputs, text)
                if row is not None:
                    out.append(row)
        self.times.add("rows", t)  # includes "tokenize"
        return out

    def forward(self, rows: Sequence[SpanRow | TripletRow]) -> list[dict[str, np.ndarray]]:
        """Model outputs per row (numpy, un-padded): start logits, starts, end logits, mentions, linking / types /
        relation logits and probabilities."""
        results: list[dict[str, np.ndarray]] = [None] * len(rows)  # type: ignore[list-item]
        batches = plan_batches([len(r) for r in rows], self.buckets)
        tasks = (self._batch_task([rows[i] for i in b.indices], b.seq_len, b.rows) for b in batches)
        for batch, outs in zip(batches, interleave(tasks, depth=self.depth, times=self.times), strict=True):
            if isinstance(outs, TaskError):
                raise outs.error
            for k, out in zip(batch.indices, outs, strict=True):
                results[k] = out
        return results

    @staticmethod
    def _layout(rows: Sequence[Any], length: int, n_rows: int) -> np.ndarray:
        """[n_rows, length] bool: True where a row has a token (rows left-aligned, padding rows all False)."""
        lens = np.fromiter((len(r) for r in rows), np.int64, len(rows))
        full = np.zeros((n_rows, length), bool)
        full[: len(rows)] = np.arange(length) < lens[:, None]
        return full

    @staticmethod
    def _pad(rows: Sequence[Any], layout: np.ndarray, name: str, fill: Any, dtype: Any) -> np.ndarray:
        """Field `name` of every row, padded into one [n_rows, length] array (a single scatter, no per-row loop)."""
        out = np.full(layout.shape, fill, dtype=dtype)
        out[layout] = np.concatenate([getattr(r, name) for r in rows])
        return out

    @staticmethod
    def _positions(masks: Sequence[np.ndarray], layout: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions of each row's True entries, left-aligned in [n_rows, width] (+ validity)."""
        m = np.zeros(layout.shape, bool)
        m[layout] = np.concatenate(masks)
        row, col = np.nonzero(m)  # row-major: each row's positions in order
        counts = m.sum(1)
        rank = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
        pos = np.zeros((layout.shape[0], width), np.int32)
        valid = np.zeros((layout.shape[0], width), bool)
        pos[row, rank] = col
        valid[row, rank] = True
        return pos, valid

    def _batch_task(self, rows: Sequence[Any], length: int, n_rows: int
                    ) -> Generator[Any, Any, list[dict[str, np.ndarray]]]:
        """One padded batch through the stages, as an `interleave` task: each `yield` hands a device value to read
        back (the counts that pick the next stage's static shape, then the outputs) and gets it on the host."""
        bk = self.buckets
        if max(len(r) for r in rows) > length:
            raise AssertionError("row longer than its bucket")
        layout = self._layout(rows, length, n_rows)
        ids = self._pad(rows, layout, "input_ids", self.info.pad_id, np.int32)
        attn = layout.astype(np.int32)
        tt = self._pad(rows, layout, "token_type_ids", 0, np.int32)
        pm = self._pad(rows, layout, "prediction_mask", True, bool)
        self.shapes.add("encode", (n_rows, length))
        ids, attn, tt, pm = self._rows(ids, attn, tt, pm)
        a = self._encode(ids, attn, tt, pm)
        text_len = bk.text_len(max(len(r.text) for r in rows) + 1, length)
        num_starts = yield a["num_starts"]
        n_starts = min(bk.count(int(np.max(num_starts))), text_len)
        triplet = not self.cfg.is_span
        if self.cfg.is_span:
            symbols = [int(np.count_nonzero(r.special_symbols_mask)) for r in rows]
        else:
            symbols = [int(np.count_nonzero(r.relation_symbols_mask)) for r in rows]
            types = [int(np.count_nonzero(r.entity_symbols_mask)) for r in rows]
        if self.cfg.is_span and not self.cfg.binary_end_logits:
            c_sym = bk.count(max(symbols))
            sym_pos, sym_valid = self._rows(*self._positions([r.special_symbols_mask for r in rows], layout, c_sym))
            self.shapes.add("ends+heads", (n_rows, length, n_starts, text_len, c_sym))
            out = self._ends_link(a["features"], a["start_pred"], pm, sym_pos, sym_valid, n_starts, text_len)
            host = yield {**{k: v for k, v in a.items() if k != "features"}, **out}
            return self._row_outputs(host, rows, symbols)
        self.shapes.add("ends", (n_rows, length, n_starts, text_len))
        b_out = self._ends(a["features"], a["start_pred"], pm, n_starts, text_len, triplet)
        counts = np.asarray((yield b_out["num_mentions"]))
        most = int(counts.max())
        n_ment = min(bk.count(most), n_starts * text_len)
        if triplet and most > self.max_mentions:
            warnings.warn(f"a reader row predicted {most} mentions (an untrained or diverged model?): relations are "
                          f"scored among its first {self.max_mentions} only (Reader(max_mentions=...))", stacklevel=2)
            n_ment = self.max_mentions
        if self.cfg.is_span:
            c_sym = bk.count(max(symbols))
            sym_pos, sym_valid = self._rows(*self._positions([r.special_symbols_mask for r in rows], layout, c_sym))
            self.shapes.add("heads", (n_rows, length, n_starts, text_len, n_ment, c_sym))
            c_out = self._heads(a["features"], b_out["starts"], b_out["end_pred"], sym_pos, sym_valid, n_ment)
        else:
            n_t = bk.count(max(types))
            n_r = bk.count(max(symbols))
            tp, tv = self._rows(*self._positions([r.entity_symbols_mask for r in rows], layout, n_t))
            rp, rv = self._rows(*self._positions([r.relation_symbols_mask for r in rows], layout, n_r))
            flat = flat_pairs(np.minimum(counts, n_ment), self.pair_chunk)
            self.shapes.add("heads", (n_rows, length, n_starts, text_len, n_ment, len(flat.row), len(flat.subj),
                                      n_t, n_r))
            c_out = self._heads(a["features"], b_out["starts"], b_out["end_pred"], n_ment, flat.row, flat.slot, tp,
                                tv, rp, rv, flat.subj, flat.obj, flat.valid, min(self.pair_chunk, len(flat.subj)))
            host = yield {**{k: v for k, v in a.items() if k != "features"}, **b_out, **c_out}
            blocks = {"re_probs": flat.per_row(host["re_probs"], mentions=False)}
            if self.return_logits:
                blocks["re_logits"] = flat.per_row(host["re_logits"], mentions=False)
            if "type_logits" in host:
                blocks["type_logits"] = flat.per_row(host["type_logits"], mentions=True)
                blocks["type_pred"] = flat.per_row(host["type_pred"], mentions=True)
            return self._row_outputs(host, rows, symbols, types, blocks)
        host = yield {**{k: v for k, v in a.items() if k != "features"}, **b_out, **c_out}
        return self._row_outputs(host, rows, symbols)

    def _row_outputs(self, h: dict[str, np.ndarray], rows: Sequence[Any], symbols: list[int],
                     types: list[int] | None = None, blocks: dict[str, list[np.ndarray]] | None = None
                     ) -> list[dict[str, np.ndarray]]:
        """Per-row views of a batch's host outputs, un-padded. `symbols`: each row's linking (span) or relation
        (triplet) symbols; `types`: its entity-type symbols; `blocks`: per-row blocks of the flat relation stage
        (reader/pairs.py)."""
        mentions = np.stack([h["mention_start"], h["mention_end"]], -1)  # [B, M, 2]
        # valid starts and mentions come first in their rows (top-k compaction on the device): counts, not masks
        n_mentions = np.count_nonzero(h["mention_valid"], axis=1).tolist()
        n_starts = np.count_nonzero(h["start_valid"], axis=1).tolist()
        outs = []
        for b, (row, m, k, c) in enumerate(zip(rows, n_mentions, n_starts, symbols, strict=False)):
            n = len(row)
            out = {"start_logits": h["start_logits"][b, :n], "start_pred": h["start_pred"][b, :n],
                   "starts": h["starts"][b, :k], "end_logits": h["end_logits"][b, :k], "end_pred": h["end_pred"][b, :k],
                   "mentions": mentions[b, :m]}
            if blocks is None:
                out.update(ed_logits=h["ed_logits"][b, :m, :c], ed_probs=h["ed_probs"][b, :m, :c],
                           ed_pred=h["ed_pred"][b, :m])
            else:
                out["re_probs"] = blocks["re_probs"][b][:, :, :c]
                if "re_logits" in blocks:
                    out["re_logits"] = blocks["re_logits"][b][:, :, :c]
                if "type_logits" in blocks:
                    out.update(type_logits=blocks["type_logits"][b][:, :types[b]], type_pred=blocks["type_pred"][b])
            outs.append(out)
        return outs

    # ------------------------------------------------------------------------------------------------------
    def read(self, windows: Sequence[Window | dict[str, Any]]
             ) -> list[SpanWindowPrediction] | list[TripletWindowPrediction]:
        """Per-window predictions, in input order (windows: see `rows`)."""
        rows = self.rows(windows)
        return self.decode(len(windows), rows, self.forward(rows))

    def decode(self, n_windows: int, rows: Sequence[SpanRow | TripletRow], outs: Sequence[dict[str, np.ndarray]]
               ) -> list[SpanWindowPrediction] | list[TripletWindowPrediction]:
        """Per-row model outputs (from `forward`) -> per-window predictions."""
        t = time.perf_counter()
        preds = self._decode(n_windows, rows, outs)
        self.times.add("decode", t)
        return preds

    def _decode(self, n_windows: int, rows: Sequence[SpanRow | TripletRow], outs: Sequence[dict[str, np.ndarray]]
                ) -> list[SpanWindowPrediction] | list[TripletWindowPrediction]:
        if self.cfg.is_span:
            patches: dict[int, list[dec.SpanPatch]] = {}
            texts = {}
            for row, out in zip(rows, outs, strict=True):
                patch = dec.decode_span_row(row, out["mentions"], out["ed_pred"], out["ed_probs"], self.top_k)
                patches.setdefault(row.window_index, []).append(patch)
                texts[row.window_index] = row.text
            preds = []
            for i in range(n_windows):
                ps = patches.get(i, [])
                labels, probs = dec.merge_patches(ps)
                spans, char_probs = (dec.span_char_annotations(texts[i], labels, probs) if ps else (set(), {}))
                preds.append(SpanWindowPrediction(i, sorted(spans), char_probs, ps))
            return preds
        by_window = {row.window_index: (row, out) for row, out in zip(rows, outs, strict=True)}
        preds_t = []
        for i in range(n_windows):
            if i not in by_window:
                preds_t.append(TripletWindowPrediction(i, [], [], [], []))
                continue
            row, out = by_window[i]
            p = dec.decode_triplet_row(row, out["mentions"], out.get("type_pred"), out["re_probs"], self.threshold)
            preds_t.append(TripletWindowPrediction(i, p.spans, p.triplets, p.word_entities, p.word_triplets))
        return preds_t
