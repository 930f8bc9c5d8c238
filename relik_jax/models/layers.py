"""Building blocks shared by the encoders and the reader heads, with one dtype policy.

Precision policy: parameters are stored in float32; `dtype` is the *compute* dtype of matmuls (float32 for
parity, bfloat16 for speed). LayerNorm statistics and softmax always run in float32, and LayerNorm outputs
stay float32 so the residual stream does not lose precision in bf16 mode.

`fp64` (needs `jax.config.update("jax_enable_x64", True)` or `with jax.enable_x64(True):`) keeps parameters and
every accumulation in float64: an exactness check against a float64 reference, below fp32 rounding noise (the
reference's own fp32 logits differ from its float64 ones by up to ~4e-4 on |logit| ~ 100).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax.extend.random import threefry_2x32

DTYPES = {"fp32": jnp.float32, "float32": jnp.float32, "bf16": jnp.bfloat16, "bfloat16": jnp.bfloat16,
          "fp16": jnp.float16, "float16": jnp.float16, "fp64": jnp.float64, "float64": jnp.float64}


def compute_dtype(name: str | jnp.dtype) -> jnp.dtype:
    """'fp32' | 'bf16' | 'fp16' (or a dtype) -> a jnp dtype."""
    if not isinstance(name, str):
        dtype = jnp.dtype(name)
    else:
        try:
            dtype = jnp.dtype(DTYPES[name.lower()])
        except KeyError:
            raise ValueError(f"unknown precision {name!r}: expected one of {sorted(DTYPES)}") from None
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("precision fp64 needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) first "
                         "(or run inside `with jax.enable_x64(True):`)")
    return dtype


def wide(dtype: jnp.dtype) -> jnp.dtype:
    """Parameter / accumulation / LayerNorm / softmax dtype for a compute dtype: float64 in the fp64 check mode,
    float32 otherwise (bf16 and fp16 compute accumulate in float32)."""
    return jnp.dtype(jnp.float64) if jnp.dtype(dtype) == jnp.float64 else jnp.dtype(jnp.float32)


def precision(dtype: jnp.dtype) -> jax.lax.Precision:
    """Matmul precision for a compute dtype: float32 means exact float32 (GPUs would otherwise use TF32 and TPUs
    bf16 passes for "DEFAULT"), the parity mode; lower dtypes use the hardware's default."""
    return jax.lax.Precision.HIGHEST if jnp.dtype(dtype) in (jnp.float32, jnp.float64) else jax.lax.Precision.DEFAULT


def gelu(x: jax.Array) -> jax.Array:
    """Exact (erf) GELU in torch's form, `x / 2 * (1 + erf(x / sqrt(2)))` (HF `gelu`, torch.nn.GELU()): one erf
    where `jax.nn.gelu(approximate=False)` evaluates erfc and an exponential (2.6x the forward time on CPU)."""
    return 0.5 * x * (1.0 + jax.lax.erf(x * jnp.asarray(0.7071067811865476, x.dtype)))


ACTIVATIONS = {
    "gelu": gelu,
    "relu": jax.nn.relu,
    "gelu_10": lambda x: jnp.clip(gelu(x), -10.0, 10.0),
    "tanh": jnp.tanh,
}


def activation(name: str):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unsupported activation {name!r}: expected one of {sorted(ACTIVATIONS)}") from None


class Linear(nnx.Linear):
    """`nnx.Linear` applied to a 2-D [rows, din] view of its input (same parameters, same result).

    Why: XLA:CPU lowers the kernel gradient of a [B, L, din] x [din, dout] dot (a contraction over two dims) as a
    transposing elementwise fusion plus a slow dot: a MiniLM-sized dense + GELU ran forward + backward 6x slower
    (103 ms vs 17 ms at [8, 128, 384] x [384, 1536], measured) than on the 2-D view, where both gradients are plain
    GEMMs. Training steps are mostly these gradients."""

    def __call__(self, inputs: jax.Array, out_sharding=None) -> jax.Array:  # noqa: ANN001 (nnx's signature)
        lead = inputs.shape[:-1]
        y = super().__call__(inputs.reshape(-1, inputs.shape[-1]), out_sharding=out_sharding)
        return y.reshape(*lead, y.shape[-1])


def linear(din: int, dout: int, *, dtype: jnp.dtype, rngs: nnx.Rngs, use_bias: bool = True) -> Linear:
    # torch.nn.Linear-like init is irrelevant for converted weights; normal(0.02) matches HF's BERT/DeBERTa init.
    return Linear(din, dout, use_bias=use_bias, dtype=dtype, param_dtype=wide(dtype), precision=precision(dtype),
                  kernel_init=nnx.initializers.normal(0.02), rngs=rngs)


def layer_norm(dim: int, eps: float, *, rngs: nnx.Rngs, dtype: jnp.dtype = jnp.float32) -> nnx.LayerNorm:
    # Two-pass variance in float32 (float64 in the fp64 mode), as torch.nn.LayerNorm.
    return nnx.LayerNorm(dim, epsilon=eps, dtype=wide(dtype), param_dtype=wide(dtype),
                         use_fast_variance=False, rngs=rngs)


def embed(num: int, dim: int, *, rngs: nnx.Rngs, dtype: jnp.dtype = jnp.float32) -> nnx.Embed:
    return nnx.Embed(num, dim, param_dtype=wide(dtype), embedding_init=nnx.initializers.normal(0.02), rngs=rngs)


def keep_mask(key: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
    """Bernoulli(1 - rate) bool mask of `shape` from a threefry `key`.

    On CPU: JAX's classic threefry counter scheme (`threefry_2x32(key, iota)`, one hash per two 32-bit words; the
    `jax_threefry_partitionable` flag cannot pick it here, it is read when `random_bits` is lowered, not where it
    is traced) and each 32-bit word gives two 16-bit draws, kept where >= round(rate * 2**16): 4x fewer hashes than
    `jax.random.bits`, the rate quantized to 2**-16 (0.1 -> 0.100006). Elsewhere: 32 bits per draw from
    `jax.random.bits` (the partitionable form, which shards with the inputs), kept where >= round(rate * 2**32)."""
    data = jax.random.key_data(key)
    if jax.default_backend() != "cpu" or data.shape != (2,):
        return jax.random.bits(key, shape, jnp.uint32) >= jnp.uint32(min(round(rate * 2**32), 2**32 - 1))
    n = math.prod(shape)
    words = (n + 1) // 2
    bits = threefry_2x32(data, jnp.arange(words + words % 2, dtype=jnp.uint32))[:words]
    halves = jnp.stack([bits & 0xFFFF, bits >> 16], axis=-1).reshape(-1)[:n]
    return (halves >= jnp.uint32(min(round(rate * 2**16), 2**16 - 1))).reshape(shape)


class Dropout(nnx.Dropout):
    """`nnx.Dropout` with a cheaper mask (`keep_mask`): the same Bernoulli distribution as nnx's masks up to the
    rate's 2**-16 quantization on CPU, not the same draws; ~5x faster on CPU, where nnx's masks took ~20% of a
    MiniLM training step."""

    def __call__(self, inputs: jax.Array, *, deterministic: bool | None = None,
                 rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None) -> jax.Array:
        deterministic = self.deterministic if deterministic is None else deterministic
        if self.rate == 0.0 or deterministic:
            return inputs
        if self.rate == 1.0:
            return jnp.zeros_like(inputs)
        rngs = self.rngs if rngs is None else rngs
        if rngs is None:
            raise ValueError("Dropout is not deterministic but has no rngs")
        key = rngs[self.rng_collection]() if isinstance(rngs, nnx.Rngs) else rngs() if isinstance(
            rngs, nnx.RngStream) else rngs
        shape = tuple(1 if d in self.broadcast_dims else n for d, n in enumerate(inputs.shape))
        keep = jnp.broadcast_to(keep_mask(key, shape, self.rate), inputs.shape)
        return jax.lax.select(keep, inputs / (1.0 - self.rate), jnp.zeros_like(inputs))


def dropout(rate: float, *, rngs: nnx.Rngs) -> Dropout:
    # Inference by default; training code switches modules on with `model.train()`.
    return Dropout(rate, deterministic=True, rngs=rngs)


class DenseResidualNorm(nnx.Module):
    """`LayerNorm(dropout(dense(x)) + residual)`: the post-LN output block of BERT and DeBERTa (HF names kept)."""

    def __init__(self, din: int, dout: int, eps: float, dropout_rate: float, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.dense = linear(din, dout, dtype=dtype, rngs=rngs)
        self.LayerNorm = layer_norm(dout, eps, rngs=rngs, dtype=dtype)
        self.dropout = dropout(dropout_rate, rngs=rngs)

    def __call__(self, x: jax.Array, residual: jax.Array) -> jax.Array:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class DenseAct(nnx.Module):
    """`act(dense(x))`: the feed-forward expansion of BERT and DeBERTa (HF `intermediate`)."""

    def __init__(self, din: int, dout: int, act: str, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.dense = linear(din, dout, dtype=dtype, rngs=rngs)
        self.act = activation(act)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.act(self.dense(x))


def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax over the last axis in float32 (float64 for float64 scores); masked entries get probability 0.

    Rows that are fully masked come out all zero (DeBERTa's XSoftmax semantics), not uniform.
    """
    scores = scores.astype(wide(scores.dtype))
    scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
    probs = jax.nn.softmax(scores, axis=-1)
    return jnp.where(mask, probs, 0.0)
