"""ReLiK readers in Flax NNX: `SpanReader` (EL, `RelikReaderSpanModel`) and `TripletReader` (RE / cIE,
`RelikReaderREModel`), computing what the reference computes (spec: relik-reference.md §2), in three jitted stages
with static shapes:

- stage A  `encode`: backbone + mention-start head. [B, L] ids -> features [B, L, H], start logits [B, L, 2]
  (masked with -1e30 like the reference), start predictions [B, L] and their count per row.
- stage B  `ends`: the S start positions of each row are gathered on device (`lax.top_k` of a masked score, S a
  static bucket >= the largest count, validity mask for the padding); end logits are computed only over the first
  Lt positions (all text sub-tokens; every later position is masked by the reference anyway).
  EL: softmax over positions -> exactly one end per start; RE / cIE / binary EL: per-position 2-class argmax
  (RE additionally masks positions before the start).
- stage C  `link` / `relate`: the M (start, end) mentions are compacted on device (top-k over the [S, Lt] end
  predictions, ordered by start then end like the reference), then
  EL: linking logits `[FFN_s(h_s); FFN_e(h_e)] . [FFN_s(h_sym); FFN_e(h_sym)]` over the row's C symbol positions
  (column 0 = CLS); RE: subject/object/relation projections, Hadamard product and the 2-layer classifier for every
  (i, j, r), computed in subject chunks (`lax.map`) so at most `chunk * M * R * D` activations are live;
  cIE: type logits and the sigmoid-weighted entity embedding first. `relate_pairs` (inference) scores only the real
  (subject, object) pairs of each row, flattened across the batch: Σ_b M_b² cells instead of B·max(M)², with the
  same per-cell operations (bit-identical to `relate`).

Parameter names mirror the reference's state-dict keys (torch `Sequential` indices are `nnx.List` indices, so
`ned_start_classifier.1.weight` maps onto ('ned_start_classifier', 1, 'kernel') mechanically).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from relik_jax.models import layers
from relik_jax.models.backbones import build_backbone
from relik_jax.models.deberta import DebertaV2Config

NEG = -1e30  # the reference's logit mask value (fp32 parameters)
SPAN_ARCH = "RelikReaderSpanModel"
TRIPLET_ARCH = "RelikReaderREModel"


@dataclasses.dataclass(frozen=True)
class ReaderConfig:
    """`RelikReaderConfig` fields that change the computation (plus the architecture that picks the model)."""

    architecture: str = SPAN_ARCH
    transformer_model: str = "microsoft/deberta-v3-base"
    additional_special_symbols: int = 101
    additional_special_symbols_types: int = 0
    num_layers: int | None = None
    activation: str = "gelu"
    linears_hidden_size: int = 512
    use_last_k_layers: int = 1
    entity_type_loss: bool = False
    add_entity_embedding: bool = False
    binary_end_logits: bool = False
    threshold: float = 0.5
    relation_disambiguation_loss: bool = False
    use_nme: bool | None = None  # saved by the reference when passed as a reader kwarg (hub cIE: True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReaderConfig:
        archs = d.get("architectures") or []
        if len(archs) != 1 or archs[0] not in (SPAN_ARCH, TRIPLET_ARCH):
            raise ValueError(f"reader config: architectures={archs!r}, expected [{SPAN_ARCH!r}] or [{TRIPLET_ARCH!r}]")
        if d.get("use_last_k_layers", 1) != 1:
            raise NotImplementedError("reader config: use_last_k_layers > 1 is not supported (no hub model uses it)")
        if d.get("relation_disambiguation_loss", False):
            raise NotImplementedError("reader config: relation_disambiguation_loss=True is not supported")
        layers.activation(d.get("activation", "gelu"))
        type_loss = bool(d.get("entity_type_loss", False))
        add_emb = d.get("add_entity_embedding")
        add_emb = True if add_emb is None and type_loss else bool(add_emb)
        return cls(architecture=archs[0], transformer_model=d.get("transformer_model", cls.transformer_model),
                   additional_special_symbols=int(d.get("additional_special_symbols", 101)),
                   additional_special_symbols_types=int(d.get("additional_special_symbols_types") or 0),
                   num_layers=d.get("num_layers"), activation=d.get("activation", "gelu"),
                   linears_hidden_size=int(d.get("linears_hidden_size") or 512), entity_type_loss=type_loss,
                   add_entity_embedding=add_emb, binary_end_logits=bool(d.get("binary_end_logits", False)),
                   threshold=float(d.get("threshold") if d.get("threshold") is not None else 0.5),
                   use_nme=d.get("use_nme"))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["architectures"] = [d.pop("architecture")]
        d["model_type"] = "relik-reader"
        return d

    @property
    def is_span(self) -> bool:
        return self.architecture == SPAN_ARCH


# ---------------------------------------------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------------------------------------------


def projection(din: int, hidden: int, dout: int, *, eps: float, layer_norm: bool, dtype: jnp.dtype,
               rngs: nnx.Rngs) -> nnx.List:
    """The reference's `_get_projection_layer`: [Dropout, Linear, act, Dropout, Linear, (LayerNorm)] by index."""
    return nnx.List([layers.dropout(0.1, rngs=rngs), layers.linear(din, hidden, dtype=dtype, rngs=rngs), None,
                     layers.dropout(0.1, rngs=rngs), layers.linear(hidden, dout, dtype=dtype, rngs=rngs),
                     layers.layer_norm(dout, eps, rngs=rngs, dtype=dtype) if layer_norm else None])


def project(seq: nnx.List, act: Any, x: jax.Array) -> jax.Array:
    x = seq[4](seq[3](act(seq[1](seq[0](x)))))
    return seq[5](x) if seq[5] is not None else x.astype(layers.wide(x.dtype))


class PoolerEndLogits(nnx.Module):
    """transformers' `PoolerEndLogits` (dense_0 over [h_j; h_start], tanh, LayerNorm, dense_1), `out`=1 or 2.

    dense_0 is applied as `h_j W_a + h_start W_b` so the [positions, H] half is computed once per row, not per start.
    """

    def __init__(self, hidden: int, eps: float, out: int, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.dense_0 = layers.linear(2 * hidden, hidden, dtype=dtype, rngs=rngs)
        self.LayerNorm = layers.layer_norm(hidden, eps, rngs=rngs, dtype=dtype)
        self.dense_1 = layers.linear(hidden, out, dtype=dtype, rngs=rngs)
        self.hidden = hidden
        self.dtype = dtype

    def __call__(self, h: jax.Array, h_start: jax.Array) -> jax.Array:
        """h [B, Lt, H], h_start [B, S, H] -> logits [B, S, Lt, out] (unmasked)."""
        k = self.dense_0.kernel.get_value().astype(self.dtype)
        b = self.dense_0.bias.get_value()
        acc, prec = layers.wide(self.dtype), layers.precision(self.dtype)

        def dense(x: jax.Array, w: jax.Array) -> jax.Array:  # on a 2-D view: see layers.Linear
            y = jnp.dot(x.reshape(-1, x.shape[-1]).astype(self.dtype), w, preferred_element_type=acc, precision=prec)
            return y.reshape(*x.shape[:-1], w.shape[-1])

        pos, start = dense(h, k[: self.hidden]), dense(h_start, k[self.hidden:])
        x = jnp.tanh(pos[:, None] + start[:, :, None] + b)
        return self.dense_1(self.LayerNorm(x)).astype(layers.wide(self.dtype))


def mask_logits(logits: jax.Array, masked: jax.Array) -> jax.Array:
    """The reference's `logits * (1 - mask) - 1e30 * mask` (masked -> exactly -1e30)."""
    logits = logits.astype(layers.wide(logits.dtype))
    return jnp.where(masked, jnp.asarray(NEG, logits.dtype), logits)


def gather_positions(x: jax.Array, idx: jax.Array) -> jax.Array:
    """x [B, L, H], idx [B, K] -> [B, K, H]."""
    return jnp.take_along_axis(x, idx[..., None], axis=1)


def select_starts(start_pred: jax.Array, num: int) -> tuple[jax.Array, jax.Array]:
    """The first `num` predicted start positions of each row, ascending: (positions [B, num], valid [B, num])."""
    length = start_pred.shape[1]
    score = jnp.where(start_pred, length - jnp.arange(length, dtype=jnp.int32)[None], 0)
    values, _ = jax.lax.top_k(score, num)
    valid = values > 0
    return jnp.where(valid, length - values, 0), valid


def select_mentions(starts: jax.Array, end_pred: jax.Array, num: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Compact (start, end) pairs ordered by start slot then end: starts [B, S], end_pred [B, S, Lt] bool ->
    (start positions, end positions, valid), each [B, num]."""
    b, s, lt = end_pred.shape
    flat = end_pred.reshape(b, s * lt)
    score = jnp.where(flat, s * lt - jnp.arange(s * lt, dtype=jnp.int32)[None], 0)
    values, _ = jax.lax.top_k(score, num)
    valid = values > 0
    k = jnp.where(valid, s * lt - values, 0)
    m_start = jnp.where(valid, jnp.take_along_axis(starts, k // lt, axis=1), 0)
    m_end = jnp.where(valid, k % lt, 0)
    return m_start, m_end, valid


class _ReaderBase(nnx.Module):
    cfg: ReaderConfig

    def _init_common(self, cfg: ReaderConfig, backbone: DebertaV2Config, *, rngs: nnx.Rngs, dtype: Any,
                     binary_end: bool) -> tuple[int, int, float, jnp.dtype]:
        self.cfg = cfg
        self.dtype = layers.compute_dtype(dtype)
        if cfg.num_layers is not None:
            backbone = dataclasses.replace(backbone, num_hidden_layers=cfg.num_layers)
        self.transformer_model = build_backbone(backbone, rngs, dtype)  # DeBERTa or BERT
        self.act = layers.activation(cfg.activation)
        h, d, eps = backbone.hidden_size, cfg.linears_hidden_size, backbone.layer_norm_eps
        self.ned_start_classifier = projection(h, d, 2, eps=eps, layer_norm=False, dtype=self.dtype, rngs=rngs)
        self.ned_end_classifier = PoolerEndLogits(h, eps, 2 if binary_end else 1, dtype=self.dtype, rngs=rngs)
        self.binary_end = binary_end
        return h, d, eps, self.dtype

    # stage A -----------------------------------------------------------------------------------------------
    def encode(self, input_ids: jax.Array, attention_mask: jax.Array, token_type_ids: jax.Array,
               prediction_mask: jax.Array) -> dict[str, jax.Array]:
        """[B, L] inputs (prediction_mask True = not predictable) -> features, start logits/predictions/counts."""
        features = self.transformer_model(input_ids, attention_mask, token_type_ids)
        logits = mask_logits(project(self.ned_start_classifier, self.act, features), prediction_mask[..., None])
        probs = jax.nn.softmax(logits, axis=-1)
        start_pred = probs[..., 1] > probs[..., 0]  # argmax with ties -> class 0
        return {"features": features, "start_logits": logits, "start_pred": start_pred,
                "num_starts": start_pred.sum(-1)}

    # stage B -----------------------------------------------------------------------------------------------
    def ends(self, features: jax.Array, start_pred: jax.Array, prediction_mask: jax.Array, num_starts: int,
             text_len: int, mask_preceding: bool) -> dict[str, jax.Array]:
        """Ends of the first `num_starts` starts per row, over positions [0, text_len).

        Returns starts/start_valid [B, S]; end_logits [B, S, Lt] (softmax ends) or [B, S, Lt, 2] (binary);
        end_pred [B, S, Lt] bool; num_mentions [B].
        """
        starts, start_valid = select_starts(start_pred[:, :text_len], num_starts)
        h = features[:, :text_len]
        logits = self.ned_end_classifier(h, gather_positions(features, starts))
        masked = jnp.broadcast_to(prediction_mask[:, None, :text_len], logits.shape[:3])
        if mask_preceding:
            masked = masked | (jnp.arange(text_len)[None, None] < starts[..., None])
        if self.binary_end:
            logits = mask_logits(logits, masked[..., None])
            probs = jax.nn.softmax(logits, axis=-1)
            end_pred = probs[..., 1] > probs[..., 0]
        else:
            logits = mask_logits(logits[..., 0], masked)
            probs = jax.nn.softmax(logits, axis=-1)
            end_pred = jax.nn.one_hot(jnp.argmax(probs, axis=-1), text_len, dtype=jnp.bool_)
        end_pred = end_pred & start_valid[..., None]
        return {"starts": starts, "start_valid": start_valid, "end_logits": logits, "end_pred": end_pred,
                "num_mentions": end_pred.sum((1, 2))}


class SpanReader(_ReaderBase):
    """`RelikReaderSpanModel`: mention detection + entity linking against the row's candidate symbols."""

    def __init__(self, cfg: ReaderConfig, backbone: DebertaV2Config, *, rngs: nnx.Rngs, dtype: Any = "fp32"):
        h, d, eps, dt = self._init_common(cfg, backbone, rngs=rngs, dtype=dtype, binary_end=cfg.binary_end_logits)
        self.ed_start_projector = projection(h, d, d, eps=eps, layer_norm=True, dtype=dt, rngs=rngs)
        self.ed_end_projector = projection(h, d, d, eps=eps, layer_norm=True, dtype=dt, rngs=rngs)

    def embed_pair(self, x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.concatenate([project(self.ed_start_projector, self.act, x),
                                project(self.ed_end_projector, self.act, y)], axis=-1)

    def link(self, features: jax.Array, starts: jax.Array, end_pred: jax.Array, symbol_pos: jax.Array,
             symbol_valid: jax.Array, num_mentions: int) -> dict[str, jax.Array]:
        """Stage C. symbol_pos/valid [B, C] (column 0 = CLS) -> mentions [B, M] and ed logits [B, M, C]."""
        m_start, m_end, valid = select_mentions(starts, end_pred, num_mentions)
        ment = self.embed_pair(gather_positions(features, m_start), gather_positions(features, m_end))
        sym = gather_positions(features, symbol_pos)
        cand = self.embed_pair(sym, sym)
        logits = jnp.einsum("bmk,bck->bmc", ment, cand, preferred_element_type=layers.wide(self.dtype),
                            precision=layers.precision(self.dtype))
        logits = mask_logits(logits, ~valid[..., None] | ~symbol_valid[:, None, :])
        probs = jax.nn.softmax(logits, axis=-1)
        return {"mention_start": m_start, "mention_end": m_end, "mention_valid": valid, "ed_logits": logits,
                "ed_probs": probs, "ed_pred": jnp.argmax(probs, axis=-1)}


class TripletReader(_ReaderBase):
    """`RelikReaderREModel`: mention detection (binary ends, no preceding ends), optional entity typing (cIE),
    relation classification for every (subject, object, relation symbol)."""

    def __init__(self, cfg: ReaderConfig, backbone: DebertaV2Config, *, rngs: nnx.Rngs, dtype: Any = "fp32"):
        h, d, eps, dt = self._init_common(cfg, backbone, rngs=rngs, dtype=dtype, binary_end=True)
        k = 3 if cfg.entity_type_loss and cfg.add_entity_embedding else 2
        self.re_projector = projection(k * h, k * d, 2 * d, eps=eps, layer_norm=True, dtype=dt, rngs=rngs)
        self.re_relation_projector = projection(h, d, d, eps=eps, layer_norm=True, dtype=dt, rngs=rngs)
        if cfg.entity_type_loss:
            self.re_entities_projector = projection(2 * h, d, d, eps=eps, layer_norm=True, dtype=dt, rngs=rngs)
            self.re_definition_projector = projection(h, d, d, eps=eps, layer_norm=True, dtype=dt, rngs=rngs)
        self.re_classifier = projection(d, d, 2, eps=eps, layer_norm=False, dtype=dt, rngs=rngs)
        self.d = d

    def relate(self, features: jax.Array, starts: jax.Array, end_pred: jax.Array, type_pos: jax.Array,
               type_valid: jax.Array, rel_pos: jax.Array, rel_valid: jax.Array, num_mentions: int,
               chunk: int = 8) -> dict[str, jax.Array]:
        """Stage C. type_pos/valid [B, T] (cIE entity symbols, else T may be 1 and all invalid), rel_pos/valid [B, R]
        -> mentions [B, M], type logits [B, M, T], relation logits [B, M, M, R, 2] and P(relation) [B, M, M, R]."""
        m_start, m_end, valid = select_mentions(starts, end_pred, num_mentions)
        ent = jnp.concatenate([gather_positions(features, m_start), gather_positions(features, m_end)], axis=-1)
        out: dict[str, jax.Array] = {"mention_start": m_start, "mention_end": m_end, "mention_valid": valid}
        if self.cfg.entity_type_loss:
            type_sym = gather_positions(features, type_pos)
            ent_proj = project(self.re_entities_projector, self.act, ent)
            def_proj = project(self.re_definition_projector, self.act, type_sym)
            tl = jnp.einsum("bmk,btk->bmt", ent_proj, def_proj, preferred_element_type=layers.wide(self.dtype),
                            precision=layers.precision(self.dtype))
            tl = mask_logits(tl, ~valid[..., None] | ~type_valid[:, None, :])
            tp = jax.nn.sigmoid(tl)
            out.update(type_logits=tl, type_probs=tp, type_pred=jnp.argmax(tp, axis=-1))
            if self.cfg.add_entity_embedding:
                emb = jnp.einsum("bmt,bth->bmh", tp, type_sym, precision=jax.lax.Precision.HIGHEST)
                ent = jnp.concatenate([ent, emb], axis=-1)
        so = project(self.re_projector, self.act, ent)
        subj, obj = so[..., : self.d], so[..., self.d:]
        rel = project(self.re_relation_projector, self.act, gather_positions(features, rel_pos))  # [B, R, D]
        obj_rel = obj[:, :, None, :] * rel[:, None, :, :]  # [B, M, R, D]

        def per_subject(s: jax.Array) -> jax.Array:  # s [B, D] -> [B, M, R, 2]
            z = s[:, None, None, :] * obj_rel
            return project(self.re_classifier, self.act, z)

        if chunk >= subj.shape[1]:  # one chunk: no lax.map (training: dropout cannot draw RNG inside a map)
            logits = project(self.re_classifier, self.act, subj[:, :, None, None, :] * obj_rel[:, None])
        else:
            logits = jax.lax.map(per_subject, jnp.moveaxis(subj, 1, 0), batch_size=min(chunk, subj.shape[1]))
            logits = jnp.moveaxis(logits, 0, 1)  # [B, M(subject), M(object), R, 2]
        probs = jax.nn.softmax(logits, axis=-1)[..., 1]
        cell_valid = valid[:, :, None, None] & valid[:, None, :, None] & rel_valid[:, None, None, :]
        out.update(re_logits=logits, re_probs=jnp.where(cell_valid, probs, 0.0), re_cell_valid=cell_valid)
        return out

    def relate_pairs(self, features: jax.Array, starts: jax.Array, end_pred: jax.Array, num_mentions: int,
                     flat_row: jax.Array, flat_slot: jax.Array, type_pos: jax.Array, type_valid: jax.Array,
                     rel_pos: jax.Array, rel_valid: jax.Array, pair_subj: jax.Array, pair_obj: jax.Array,
                     pair_valid: jax.Array, chunk: int, with_logits: bool = False) -> dict[str, jax.Array]:
        """Stage C without padding cells: what `relate` computes, for the real (subject, object) pairs only.

        `relate` scores B·M²·R cells, M the batch's largest mention count; here mentions are flattened across rows
        (flat_row/flat_slot [N]: row and slot of each real mention in `select_mentions` order, N a bucket) and only
        pairs within a row are scored (pair_subj/pair_obj [P] index the flat mentions, P a multiple of `chunk`), so
        the cost is Σ_b M_b²·R. Every cell is computed with the same operations in the same order as `relate`.
        Returns mentions [B, M] (as `relate`), type_logits [N, T] / type_pred [N] (cIE), re_probs [P, R] (0 on
        invalid cells), re_logits [P, R, 2] when `with_logits`."""
        m_start, m_end, valid = select_mentions(starts, end_pred, num_mentions)  # [B, M] per row
        # Per-mention work is linear in M: done in `relate`'s [B, M] layout (same values), then flattened.
        ent = jnp.concatenate([gather_positions(features, m_start), gather_positions(features, m_end)], axis=-1)
        out: dict[str, jax.Array] = {"mention_start": m_start, "mention_end": m_end, "mention_valid": valid}
        if self.cfg.entity_type_loss:
            type_sym = gather_positions(features, type_pos)
            ent_proj = project(self.re_entities_projector, self.act, ent)
            def_proj = project(self.re_definition_projector, self.act, type_sym)
            tl = jnp.einsum("bmk,btk->bmt", ent_proj, def_proj, preferred_element_type=layers.wide(self.dtype),
                            precision=layers.precision(self.dtype))
            tl = mask_logits(tl, ~valid[..., None] | ~type_valid[:, None, :])
            tp = jax.nn.sigmoid(tl)
            out.update(type_logits=tl[flat_row, flat_slot], type_pred=jnp.argmax(tp, axis=-1)[flat_row, flat_slot])
            if self.cfg.add_entity_embedding:
                emb = jnp.einsum("bmt,bth->bmh", tp, type_sym, precision=jax.lax.Precision.HIGHEST)
                ent = jnp.concatenate([ent, emb], axis=-1)
        ent = ent[flat_row, flat_slot]  # [N, kH]
        so = project(self.re_projector, self.act, ent)
        subj, obj = so[..., : self.d], so[..., self.d:]  # [N, D]
        rel = project(self.re_relation_projector, self.act, gather_positions(features, rel_pos))  # [B, R, D]
        pair_row = flat_row[pair_subj]

        def score(idx: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:  # one chunk of pairs -> [c, R, 2]
            s, o, r = idx
            obj_rel = obj[o][:, None, :] * rel[r]  # [c, R, D], as `relate`'s obj * rel
            return project(self.re_classifier, self.act, subj[s][:, None, :] * obj_rel)

        chunks = tuple(x.reshape(-1, chunk) for x in (pair_subj, pair_obj, pair_row))
        logits = jax.lax.map(score, chunks).reshape(pair_subj.shape[0], rel.shape[1], 2)
        probs = jax.nn.softmax(logits, axis=-1)[..., 1]
        cell_valid = pair_valid[:, None] & rel_valid[pair_row]
        out["re_probs"] = jnp.where(cell_valid, probs, 0.0)
        if with_logits:
            out["re_logits"] = logits
        return out


def build_reader(cfg: ReaderConfig, backbone: DebertaV2Config, *, rngs: nnx.Rngs,
                 dtype: Any = "fp32") -> SpanReader | TripletReader:
    return (SpanReader if cfg.is_span else TripletReader)(cfg, backbone, rngs=rngs, dtype=dtype)
