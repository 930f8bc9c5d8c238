"""Model shapes of the paper (ReLiK Table 6 sizes) and fast random initialisation for benchmarking.

Readers are DeBERTa-v3 small/base/large with the hub readers' resized vocabularies; retrievers are E5 small/base
(BERT). Random weights are drawn with numpy per parameter (seeded by the parameter's path), which takes a second
where NNX's own initialisers take many on CPU, and gives the same weights for every compute dtype.
"""

from __future__ import annotations

import dataclasses
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from relik_jax.models.bert import BertConfig, BertModel
from relik_jax.models.deberta import DebertaV2Config, DebertaV2Model

# Paper / reference spec §2.1: small H=768/6 layers/12 heads/FFN 3072; base 768/12/12/3072; large 1024/24/16/4096.
READERS = {"small": (768, 6, 12, 3072), "base": (768, 12, 12, 3072), "large": (1024, 24, 16, 4096)}
# e5-small-v2: 384/12/12/1536; e5-base-v2: 768/12/12/3072; vocabulary 30522 (uncased BERT).
RETRIEVERS = {"e5-small": (384, 12, 12, 1536), "e5-base": (768, 12, 12, 3072)}
# Embedding rows of the hub readers: 128100 + added symbols (EL 101, NYT 24, cIE 25 + 76).
READER_VOCAB = {"el": 128100 + 101, "re": 128100 + 24, "cie": 128100 + 25 + 76}


def reader_config(size: str, task: str, layers: int | None = None) -> DebertaV2Config:
    h, n, heads, ffn = READERS[size]
    return DebertaV2Config(vocab_size=READER_VOCAB[task], hidden_size=h, num_hidden_layers=layers or n,
                           num_attention_heads=heads, intermediate_size=ffn)


def retriever_config(size: str, layers: int | None = None) -> BertConfig:
    h, n, heads, ffn = RETRIEVERS[size]
    return BertConfig(vocab_size=30522, hidden_size=h, num_hidden_layers=layers or n, num_attention_heads=heads,
                      intermediate_size=ffn, layer_norm_eps=1e-12)


_PARAMS: dict = {}  # (config, seed) -> filled parameter State, shared by every compute dtype


def random_module(factory, key, seed: int = 0) -> nnx.Module:
    """`factory()` (an NNX module) with N(0, 0.02) matrices, unit LayerNorm scales, zero biases, without running
    NNX's initialisers. Parameters are float32 whatever the compute dtype, so modules with the same `key` share
    them (one set cached at a time)."""
    abstract = nnx.eval_shape(factory)
    graphdef, params, rest = nnx.split(abstract, nnx.Param, ...)

    def fill_param(path, leaf):
        name = str(path[-1].key if hasattr(path[-1], "key") else path[-1])
        shape = leaf.shape
        if "scale" in name:
            return np.ones(shape, np.float32)
        if "bias" in name:
            return np.zeros(shape, np.float32)
        rng = np.random.default_rng([seed, zlib.crc32(jax.tree_util.keystr(path).encode())])
        n = int(np.prod(shape))
        # Big tables (the 128K-row embeddings) repeat a 1M-value block: same cost, a fraction of the init time.
        values = rng.standard_normal(min(n, 1 << 20), dtype=np.float32) * np.float32(0.02)
        return np.resize(values, shape) if values.size < n else values.reshape(shape)

    def fill_rest(leaf):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.key(seed)
        return jnp.zeros(leaf.shape, leaf.dtype)

    key = (key, seed)
    if key not in _PARAMS:
        _PARAMS.clear()  # keep one model's weights alive at a time (large readers are GBs)
        _PARAMS[key] = jax.device_put(jax.tree_util.tree_map_with_path(fill_param, params))  # one transfer
    rest = jax.tree_util.tree_map(fill_rest, rest)
    return nnx.merge(graphdef, _PARAMS[key], rest)


def random_model(config, dtype: str = "fp32", seed: int = 0) -> nnx.Module:
    """A DebertaV2Model / BertModel for `config` with random weights (see `random_module`)."""
    cls = DebertaV2Model if isinstance(config, DebertaV2Config) else BertModel
    return random_module(lambda: cls(config, rngs=nnx.Rngs(0), dtype=dtype), config, seed)


def reader_available() -> bool:
    """Whether this checkout has the ReLiK reader (`relik_jax.reader.reader`)."""
    try:
        import relik_jax.reader.reader  # noqa: F401
    except ImportError:
        return False
    return True


def random_reader(size: str, task: str, layers: int | None = None, dtype: str = "fp32", seed: int = 0):
    """(ReaderConfig, SpanReader | TripletReader) shaped like the hub readers (EL: 101 symbols; NYT: 24 relation
    symbols; cIE: 25 relation + 76 entity symbols with entity typing), with random weights."""
    from relik_jax.reader.model import SPAN_ARCH, TRIPLET_ARCH, ReaderConfig, build_reader

    cie = task == "cie"
    rcfg = ReaderConfig(architecture=SPAN_ARCH if task == "el" else TRIPLET_ARCH,
                        additional_special_symbols={"el": 101, "re": 24, "cie": 25}[task],
                        additional_special_symbols_types=76 if cie else 0, entity_type_loss=cie,
                        add_entity_embedding=cie)
    bcfg = reader_config(size, task, layers)
    model = random_module(lambda: build_reader(rcfg, bcfg, rngs=nnx.Rngs(0), dtype=dtype), (rcfg, bcfg), seed)
    return rcfg, model


def _push_weights(reader) -> None:
    """Give every compiled stage of `reader` the model's current weights."""
    reader.update_model(reader.model)


def run_batch(reader, rows: list, length: int, n_rows: int) -> list[dict[str, np.ndarray]]:
    """`rows` as ONE padded [n_rows, length] batch through the reader's stages (`Reader.forward` would plan its own
    batches): its batch task run to completion, counts and outputs read back."""
    from relik_jax.engine.executor import TaskError, interleave

    (outs,) = interleave([reader._batch_task(rows, length, n_rows)], depth=1)
    if isinstance(outs, TaskError):
        raise outs.error
    return outs


def calibrate_reader(reader, task: str, batch, start_rate: float) -> dict[str, float]:
    """Shift the random start (and, for RE/cIE, binary end) classifier biases of `reader.model` so that it predicts
    about `start_rate` mention starts per text token and about one end per start, as trained readers do. Random
    heads would otherwise mark about half of all tokens as starts, making the heads far costlier than on real
    models. `reader` is a `relik_jax.reader.reader.Reader`; its compiled stages compute the shifts on `batch` (a
    `workloads.Batch`, so the programs are reused by the timed passes) and then receive the new weights."""
    model, bk = reader.model, reader.buckets
    ids, att, tt = batch.input_ids, batch.attention_mask, batch.token_type_ids
    pm = batch.prediction_mask > 0
    text = ~pm & (att > 0)
    logits = np.asarray(reader._encode(ids, att, tt, pm)["start_logits"], np.float64)
    shift = float(np.quantile((logits[..., 1] - logits[..., 0])[text], 1.0 - start_rate))
    bias = model.ned_start_classifier[4].bias
    bias.value = bias.value.at[1].add(-shift)
    info = {"start_shift": shift}
    _push_weights(reader)
    if task != "el":
        out = reader._encode(ids, att, tt, pm)
        text_len = bk.text_len(int(text.sum(1).max()) + 1, ids.shape[1])
        n_starts = min(bk.count(int(np.max(np.asarray(out["num_starts"])))), text_len)
        ends = reader._ends(out["features"], out["start_pred"], pm, n_starts, text_len, True)
        el = np.asarray(ends["end_logits"], np.float64)
        valid = (el[..., 1] > -1e20) & np.asarray(ends["start_valid"])[..., None]
        if valid.any():
            per_start = valid.sum() / max(int(np.asarray(ends["start_valid"]).sum()), 1)
            shift_end = float(np.quantile((el[..., 1] - el[..., 0])[valid], 1.0 - 1.0 / max(per_start, 1.0)))
            b = model.ned_end_classifier.dense_1.bias
            b.value = b.value.at[1].add(-shift_end)
            info["end_shift"] = shift_end
            _push_weights(reader)
    return info


def param_count(model: nnx.Module) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)))


@dataclasses.dataclass(frozen=True)
class Peak:
    """Dense peak FLOP/s of a device per compute dtype, and where the number comes from."""

    bf16: float
    fp32: float
    source: str


# Vendor datasheet dense peaks (no sparsity). fp32 on NVIDIA tensor-core GPUs: XLA runs fp32 matmuls with TF32 by
# default, so the TF32 tensor-core peak is the relevant one there; the RTX 4090 row uses its non-tensor fp32 peak
# (the paper's PyTorch runs fp32 matmuls without TF32 by default).
GPU_PEAKS = {
    "H100": Peak(989e12, 494e12, "NVIDIA H100 SXM datasheet (dense bf16 / tf32)"),
    "H200": Peak(989e12, 494e12, "NVIDIA H200 datasheet (dense bf16 / tf32)"),
    "A100": Peak(312e12, 156e12, "NVIDIA A100 datasheet (dense bf16 / tf32)"),
    "RTX 4090": Peak(165.2e12, 82.6e12, "Ada whitepaper: RTX 4090 bf16 tensor (fp32 accumulate) / fp32"),
}
RTX4090 = GPU_PEAKS["RTX 4090"]


def measured_peak(device: jax.Device, size: int = 1024, repeats: int = 5) -> Peak:
    """A device without a datasheet entry (CPU): the best square-matmul rate measured here."""
    import time

    rates = {}
    for name, dt in (("fp32", jnp.float32), ("bf16", jnp.bfloat16)):
        a = jax.device_put(jnp.ones((size, size), dt), device)
        f = jax.jit(lambda x: x @ x)
        f(a).block_until_ready()
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            f(a).block_until_ready()
            best = min(best, time.perf_counter() - t)
        rates[name] = 2 * size**3 / best
    return Peak(rates["bf16"], rates["fp32"], f"measured: best of {repeats} jitted {size}x{size} matmuls")


def device_peak(device: jax.Device) -> Peak:
    kind = device.device_kind
    for key, peak in GPU_PEAKS.items():
        if key.lower() in kind.lower():
            return peak
    return measured_peak(device)
