"""BERT-family encoder (BERT, E5, MiniLM) in Flax NNX, computing what `transformers.BertModel` computes.

Module and attribute names mirror the Hugging Face state-dict keys (`embeddings.word_embeddings`,
`encoder.layer.{i}.attention.self.query`, ...) so that loading is a mechanical rename (see `hf_io`).

Shapes: input_ids, attention_mask, token_type_ids [B, L] int -> last hidden state [B, L, H].
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from relik_jax.models import layers


@dataclasses.dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BertConfig:
        """From an HF `config.json` dict; refuses what this encoder would compute differently."""
        if d.get("model_type", "bert") not in ("bert", "e5", "golden_retriever"):
            raise ValueError(f"BertConfig: model_type {d.get('model_type')!r} is not a BERT-family encoder")
        pet = d.get("position_embedding_type", "absolute")
        if pet != "absolute":
            raise ValueError(f"BertConfig: position_embedding_type={pet!r} is unsupported (only 'absolute')")
        if d.get("is_decoder") or d.get("add_cross_attention"):
            raise ValueError("BertConfig: decoder / cross-attention BERT configs are unsupported")
        layers.activation(d.get("hidden_act", "gelu"))
        fields = {f.name for f in dataclasses.fields(cls)}
        cfg = cls(**{k: v for k, v in d.items() if k in fields})
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError(f"BertConfig: hidden_size {cfg.hidden_size} not divisible by "
                             f"num_attention_heads {cfg.num_attention_heads}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": "bert", "architectures": ["BertModel"], **dataclasses.asdict(self)}


class BertEmbeddings(nnx.Module):
    def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs, dtype: jnp.dtype = jnp.float32):
        self.word_embeddings = layers.embed(cfg.vocab_size, cfg.hidden_size, rngs=rngs, dtype=dtype)
        self.position_embeddings = layers.embed(cfg.max_position_embeddings, cfg.hidden_size, rngs=rngs, dtype=dtype)
        self.token_type_embeddings = layers.embed(max(cfg.type_vocab_size, 1), cfg.hidden_size, rngs=rngs,
                                                  dtype=dtype)
        self.LayerNorm = layers.layer_norm(cfg.hidden_size, cfg.layer_norm_eps, rngs=rngs, dtype=dtype)
        self.dropout = layers.dropout(cfg.hidden_dropout_prob, rngs=rngs)
        self.max_positions = cfg.max_position_embeddings

    def __call__(self, input_ids: jax.Array, token_type_ids: jax.Array) -> jax.Array:
        length = input_ids.shape[1]
        if length > self.max_positions:
            raise ValueError(f"BERT input length {length} exceeds max_position_embeddings {self.max_positions}")
        x = (self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
             + self.position_embeddings(jnp.arange(length))[None])
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nnx.Module):
    def __init__(self, cfg: BertConfig, dtype: jnp.dtype, *, rngs: nnx.Rngs):
        h = cfg.hidden_size
        self.num_heads = cfg.num_attention_heads
        self.query = layers.linear(h, h, dtype=dtype, rngs=rngs)
        self.key = layers.linear(h, h, dtype=dtype, rngs=rngs)
        self.value = layers.linear(h, h, dtype=dtype, rngs=rngs)
        self.dropout = layers.dropout(cfg.attention_probs_dropout_prob, rngs=rngs)

    def __call__(self, x: jax.Array, pair_mask: jax.Array) -> jax.Array:
        b, length, h = x.shape
        d = h // self.num_heads

        def heads(t: jax.Array) -> jax.Array:
            return t.reshape(b, length, self.num_heads, d)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        prec = layers.precision(q.dtype)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, precision=prec) / jnp.sqrt(jnp.float32(d)).astype(q.dtype)
        probs = self.dropout(layers.masked_softmax(scores, pair_mask))
        ctx = jnp.einsum("bhqk,bkhd->bqhd", probs.astype(v.dtype), v, precision=prec)
        return ctx.reshape(b, length, h)



def _residual_norm(cfg: BertConfig, din: int, dtype: jnp.dtype, rngs: nnx.Rngs) -> layers.DenseResidualNorm:
    return layers.DenseResidualNorm(din, cfg.hidden_size, cfg.layer_norm_eps, cfg.hidden_dropout_prob, dtype=dtype,
                                    rngs=rngs)


class BertAttention(nnx.Module):
    def __init__(self, cfg: BertConfig, dtype: jnp.dtype, *, rngs: nnx.Rngs):
        self.self = BertSelfAttention(cfg, dtype, rngs=rngs)
        self.output = _residual_norm(cfg, cfg.hidden_size, dtype, rngs)

    def __call__(self, x: jax.Array, pair_mask: jax.Array) -> jax.Array:
        return self.output(self.self(x, pair_mask), x)




class BertLayer(nnx.Module):
    def __init__(self, cfg: BertConfig, dtype: jnp.dtype, *, rngs: nnx.Rngs):
        self.attention = BertAttention(cfg, dtype, rngs=rngs)
        self.intermediate = layers.DenseAct(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_act, dtype=dtype,
                                            rngs=rngs)
        self.output = _residual_norm(cfg, cfg.intermediate_size, dtype, rngs)

    def __call__(self, x: jax.Array, pair_mask: jax.Array) -> jax.Array:
        x = self.attention(x, pair_mask)
        return self.output(self.intermediate(x), x)


class BertEncoder(nnx.Module):
    def __init__(self, cfg: BertConfig, dtype: jnp.dtype, *, rngs: nnx.Rngs):
        self.layer = nnx.List([BertLayer(cfg, dtype, rngs=rngs) for _ in range(cfg.num_hidden_layers)])

    def __call__(self, x: jax.Array, pair_mask: jax.Array) -> jax.Array:
        for layer in self.layer:
            x = layer(x, pair_mask)
        return x


class BertModel(nnx.Module):
    """`transformers.BertModel` without the pooler (ReLiK's retriever mean-pools instead)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs, dtype: str | jnp.dtype = "fp32"):
        self.config = config
        dtype = layers.compute_dtype(dtype)
        self.embeddings = BertEmbeddings(config, rngs=rngs, dtype=dtype)
        self.encoder = BertEncoder(config, dtype, rngs=rngs)

    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None,
                 token_type_ids: jax.Array | None = None) -> jax.Array:
        """[B, L] ids and mask -> last hidden state [B, L, H] (float32 from the final LayerNorm)."""
        if attention_mask is None:
            attention_mask = jnp.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        # HF BERT masks keys only; query rows of padding are garbage there and never compared.
        pair_mask = (attention_mask[:, None, None, :] > 0)
        x = self.embeddings(input_ids, token_type_ids)
        return self.encoder(x, pair_mask)


def mean_pool(hidden: jax.Array, attention_mask: jax.Array) -> jax.Array:
    """Masked mean over tokens: [B, L, H], [B, L] -> [B, H] (sum / max(count, 1e-9), as the reference)."""
    acc = layers.wide(hidden.dtype)
    mask = attention_mask.astype(acc)[..., None]
    summed = jnp.sum(hidden.astype(acc) * mask, axis=1)
    return summed / jnp.maximum(jnp.sum(mask, axis=1), 1e-9)
