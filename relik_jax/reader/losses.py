"""Training losses of the readers, masked as the reference's training forward (relik-reference.md §2.5).

Teacher forcing as the reference: ends are computed for the *gold* starts, linking / typing / relations for the
*gold* mentions. Every cross entropy is torch's `CrossEntropyLoss` (mean over entries whose label is not -100).

- EL (`RelikReaderSpanModel`): start CE (logits masked with `prediction_mask`) + end CE + linking CE.
  Softmax ends: one row per distinct gold start, target = the first position labelled > 0 (torch `argmax`);
  binary ends: 2-class CE per position. Linking: one row per gold mention, target = candidate index + 1.
- RE: `0.05 * (start CE + end CE) + 0.9 * relation CE` (start logits *not* masked in training; end labels carry
  -100 on masked and preceding positions); cIE: `(start + end + relation + type BCE) / 4`, the BCE over the
  valid mentions x entity-type columns.

Batch arrays (static shapes; B rows, L tokens, S gold starts, Lt end positions, M gold mentions, C/T/R symbols):
  input_ids, attention_mask, token_type_ids [B, L] int; prediction_mask [B, L] bool;
  start_labels [B, L] int (1 start, 0 not, -100 ignored);
  starts [B, S] int, start_valid [B, S] bool; end_labels [B, S, Lt] int (1 / 0 / -100);
  EL: mention_start, mention_end [B, M] int, mention_valid [B, M] bool, ed_labels [B, M] int (-100 = padding),
      symbol_pos [B, C] int, symbol_valid [B, C] bool;
  RE: type_pos/type_valid [B, T], rel_pos/rel_valid [B, R], relation_labels [B, M, M, R] int (-100 ignored),
      type_labels [B, M, T] float (cIE).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from relik_jax.reader.model import SpanReader, TripletReader, gather_positions, mask_logits, project

IGNORE = -100


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """torch `CrossEntropyLoss()` : mean NLL over labels != -100 (0 when there are none)."""
    labels = labels.astype(jnp.int32)
    valid = labels != IGNORE
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, jnp.where(valid, labels, 0)[..., None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(valid, nll, 0.0)) / jnp.maximum(valid.sum(), 1)


def bce_with_logits(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """torch `BCEWithLogitsLoss()` over the masked entries (mean)."""
    x = logits.astype(jnp.float32)
    loss = jnp.maximum(x, 0) - x * targets + jnp.log1p(jnp.exp(-jnp.abs(x)))
    return jnp.sum(jnp.where(mask, loss, 0.0)) / jnp.maximum(mask.sum(), 1)


def _end_logits(model: SpanReader | TripletReader, features: jax.Array, batch: dict[str, jax.Array],
                mask_preceding: bool) -> jax.Array:
    starts = batch["starts"]
    lt = batch["end_labels"].shape[-1]
    logits = model.ned_end_classifier(features[:, :lt], gather_positions(features, starts))
    masked = jnp.broadcast_to(batch["prediction_mask"][:, None, :lt], logits.shape[:3])
    if mask_preceding:
        masked = masked | (jnp.arange(lt)[None, None] < starts[..., None])
    return mask_logits(logits, masked[..., None]) if model.binary_end else mask_logits(logits[..., 0], masked)


def _end_loss(model: SpanReader | TripletReader, end_logits: jax.Array, batch: dict[str, jax.Array]) -> jax.Array:
    labels = batch["end_labels"]
    rows = batch["start_valid"]
    if model.binary_end:
        return cross_entropy(end_logits, jnp.where(rows[..., None], jnp.where(labels > 0, 1, labels), IGNORE))
    target = jnp.argmax(labels > 0, axis=-1)
    return cross_entropy(end_logits, jnp.where(rows, target, IGNORE))


def el_loss(model: SpanReader, batch: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
    features = model.transformer_model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    start = mask_logits(project(model.ned_start_classifier, model.act, features), batch["prediction_mask"][..., None])
    start_loss = cross_entropy(start, batch["start_labels"])
    end_loss = _end_loss(model, _end_logits(model, features, batch, False), batch)
    ment = model.embed_pair(gather_positions(features, batch["mention_start"]),
                        gather_positions(features, batch["mention_end"]))
    sym = gather_positions(features, batch["symbol_pos"])
    ed = jnp.einsum("bmk,bck->bmc", ment, model.embed_pair(sym, sym), preferred_element_type=jnp.float32)
    ed = mask_logits(ed, ~batch["mention_valid"][..., None] | ~batch["symbol_valid"][:, None, :])
    ed_loss = cross_entropy(ed, jnp.where(batch["mention_valid"], batch["ed_labels"], IGNORE))
    total = start_loss + end_loss + ed_loss
    return total, {"ned_start_loss": start_loss, "ned_end_loss": end_loss, "ed_loss": ed_loss}


def re_loss(model: TripletReader, batch: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
    features = model.transformer_model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    start = project(model.ned_start_classifier, model.act, features)  # unmasked in the reference's training
    start_loss = cross_entropy(start, batch["start_labels"])
    end_loss = _end_loss(model, _end_logits(model, features, batch, True), batch)
    end_pred = (batch["end_labels"] > 0) & batch["start_valid"][..., None]
    m = batch["relation_labels"].shape[1]
    out = model.relate(features, batch["starts"], end_pred, batch["type_pos"], batch["type_valid"],
                       batch["rel_pos"], batch["rel_valid"], m, chunk=m)
    rel_loss = cross_entropy(out["re_logits"], batch["relation_labels"])
    parts = {"ned_start_loss": start_loss, "ned_end_loss": end_loss, "re_loss": rel_loss}
    if model.cfg.entity_type_loss:
        mask = out["mention_valid"][..., None] & batch["type_valid"][:, None, :]
        type_loss = bce_with_logits(out["type_logits"], batch["type_labels"], mask)
        parts["ned_type_loss"] = type_loss
        total = (start_loss + end_loss + rel_loss + type_loss) / 4
    else:
        total = 0.05 * (start_loss + end_loss) + 0.9 * rel_loss
    return total, parts


def loss_fn(model: SpanReader | TripletReader, batch: dict[str, Any]) -> tuple[jax.Array, dict[str, jax.Array]]:
    return el_loss(model, batch) if isinstance(model, SpanReader) else re_loss(model, batch)


@nnx.jit
def loss(model: SpanReader | TripletReader, batch: dict[str, Any]) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Jitted (loss, parts) without gradients (evaluation)."""
    return loss_fn(model, batch)


def value_and_grad(model: SpanReader | TripletReader, batch: dict[str, Any]):
    """Jitted (loss, parts), grads w.r.t. the model's parameters."""
    return _vg(model, batch)


@nnx.jit
def _vg(model: SpanReader | TripletReader, batch: dict[str, Any]):
    return nnx.value_and_grad(loss_fn, has_aux=True)(model, batch)
