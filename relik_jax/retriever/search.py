"""Top-k maximum-inner-product search over passage vectors: exact on the accelerator, or ScaNN on the CPU.

- `ExactSearcher`: the vectors live on the accelerator in the index dtype (the stored one by default: fp16 for
  the published indexes, 2 bytes a value; bf16 / fp32 selectable). They get there in one streamed pass: row
  chunks of the (memory-mapped) host array are copied into a preallocated device buffer under jit with donation,
  so the host never holds a full copy and the device never holds two. Queries are cast to the index dtype (as the
  reference does) and scored chunk by chunk with float32 accumulation, merged with `jax.lax.top_k`: memory stays
  at queries × chunk scores. With several local devices the rows are split over them (`jax.shard_map`): each
  keeps its own top-k and the k·n_devices candidates are merged once more. Scores = reference
  `InMemoryDocumentIndex.search` (raw dot product).
- `ScannSearcher`: ScaNN tree + asymmetric hashing + exact re-ranking (dot product); needs `relik-jax[scann]`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from relik_jax.engine.buckets import pow2_at_least
from relik_jax.extras import missing_extra
from relik_jax.io import arrays

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
NUMPY_DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16),
                "float16": np.dtype(np.float16)}
ALIASES = {"fp32": "float32", "f32": "float32", "fp16": "float16", "f16": "float16", "half": "float16",
           "bf16": "bfloat16", "float": "float32"}
QUERY_BLOCK = 512  # queries scored together: scores take QUERY_BLOCK × chunk floats (128 MB at chunk 65536)
TRANSFER_ROWS = 32768  # host → device copy granularity (48 MB of fp16 at d=768)


def resolve_dtype(dtype: str | None, stored: np.dtype | None = None) -> str:
    """Canonical index dtype name; None = the stored dtype (fp16 stays fp16, anything else not listed → fp32)."""
    if dtype is None:
        if stored is not None and np.dtype(stored) == np.float16:
            return "float16"
        if stored is not None and np.dtype(stored) == np.dtype(ml_dtypes.bfloat16):
            return "bfloat16"
        return "float32"
    name = ALIASES.get(str(dtype), str(dtype))
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)} (or fp32 / fp16 / bf16), got {dtype!r}")
    return name


def check_queries(queries: np.ndarray | jax.Array, dim: int) -> np.ndarray | jax.Array:
    if queries.ndim != 2:
        raise ValueError(f"queries must be [num_queries, dim], got shape {tuple(queries.shape)}")
    if queries.shape[-1] < dim:
        raise ValueError(f"queries have dim {queries.shape[-1]} but the index has dim {dim}")
    # Matryoshka indexes store a prefix of the query space: keep the first `dim` components (reference §3.2).
    return queries[:, :dim] if queries.shape[-1] > dim else queries


# -------------------- exact search


def local_top_k(
    emb: jax.Array, queries: jax.Array, n_valid: jax.Array, row_offset: jax.Array, k: int, chunk: int
) -> tuple[jax.Array, jax.Array]:
    """Top-k of `queries @ emb.T` over `emb` [n, d] → scores [Q, k] f32, rows [Q, k] i32 (+ `row_offset`).

    Full chunks are scanned with dynamic slices (no copy of `emb`), the `n % chunk` tail rows are scored once
    after them, so `emb` needs no padding. Rows ≥ `n_valid` (sharding padding) never win. Ties keep the lower
    row first (lax.top_k is stable and earlier chunks are merged before later ones), as a global top_k would.
    """
    n, d = emb.shape
    q = queries.astype(emb.dtype)  # the reference casts the query to the index dtype
    num_q = q.shape[0]

    def score(carry, block, start):
        best_s, best_i = carry
        s = jnp.einsum("qd,nd->qn", q, block, preferred_element_type=jnp.float32)
        rows = start + jnp.arange(block.shape[0], dtype=jnp.int32)
        s = jnp.where(rows[None, :] < n_valid, s, -jnp.inf)
        s, pos = jax.lax.top_k(s, min(k, block.shape[0]))
        cat_s = jnp.concatenate([best_s, s], axis=1)
        cat_i = jnp.concatenate([best_i, rows[pos]], axis=1)
        top_s, top_pos = jax.lax.top_k(cat_s, k)
        return top_s, jnp.take_along_axis(cat_i, top_pos, axis=1)

    def body(carry, i):
        block = jax.lax.dynamic_slice(emb, (i * chunk, 0), (chunk, d))
        return score(carry, block, row_offset + i * chunk), None

    carry = (jnp.full((num_q, k), -jnp.inf, jnp.float32), jnp.full((num_q, k), -1, jnp.int32))
    full = n // chunk
    if full:
        carry, _ = jax.lax.scan(body, carry, jnp.arange(full, dtype=jnp.int32))
    if n % chunk:
        carry = score(carry, emb[full * chunk :], row_offset + full * chunk)
    return carry


def _update(buffer: jax.Array, block: jax.Array, start: jax.Array) -> jax.Array:
    return jax.lax.dynamic_update_slice(buffer, block.astype(buffer.dtype), (start, 0))


# The buffer is donated: each copy writes into it in place, so a device never holds the index twice.
_update_in_place = jax.jit(_update, donate_argnums=0)


def stream_to_device(
    host: np.ndarray, dtype: str, device: jax.Device, first_row: int, num_rows: int, transfer_rows: int
) -> jax.Array:
    """Rows [first_row, first_row + num_rows) of `host` (rows past its end are zeros) as one `dtype` array on
    `device`, copied `transfer_rows` at a time into a preallocated buffer (one compile: the last block is shifted
    back to end at the buffer's end and rewrites a few rows with the same values)."""
    dim = host.shape[1]
    buffer = jnp.zeros((num_rows, dim), DTYPES[dtype], device=device)
    block_rows = min(transfer_rows, num_rows)
    for start in range(0, num_rows, block_rows):
        start = min(start, num_rows - block_rows)
        lo, hi = first_row + start, min(first_row + start + block_rows, host.shape[0])
        view = host[lo:hi]
        block = np.zeros((block_rows, dim), host.dtype)
        block[: max(hi - lo, 0)] = view
        arrays.release(view)  # mapped pages of this block are no longer needed in this process
        buffer = _update_in_place(buffer, jax.device_put(block, device), jnp.int32(start))
        buffer.block_until_ready()  # bound the blocks in flight to one
    return buffer


class ExactSearcher:
    """Exact maximum-inner-product search on the accelerator.

    embeddings: [N, d] host array (a memory map is streamed, never copied whole); `dtype`: on-device storage
    ("float32", "bfloat16", "float16" or fp32 / bf16 / fp16; None = the host dtype); scores are accumulated in
    float32. `chunk_size` rows are scored at a time. Device bytes: N × d × itemsize (on several devices the rows
    are padded to a multiple of the device count).
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        dtype: str | None = "float32",
        chunk_size: int = 65536,
        devices: Sequence[jax.Device] | None = None,
        transfer_rows: int = TRANSFER_ROWS,
    ):
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise ValueError(f"embeddings must be a non-empty [N, d] matrix, got shape {embeddings.shape}")
        self.dtype = resolve_dtype(dtype, embeddings.dtype)
        self.num_rows, self.dim = embeddings.shape
        self.devices = list(devices) if devices is not None else jax.local_devices()
        n_dev = len(self.devices)
        self._per_device = per_device = math.ceil(self.num_rows / n_dev)
        self.chunk = max(1, min(chunk_size, per_device))
        shards = [stream_to_device(embeddings, self.dtype, dev, i * per_device, per_device, transfer_rows)
                  for i, dev in enumerate(self.devices)]
        if n_dev == 1:
            self.embeddings = shards[0]
            self._mesh = None
        else:
            self._mesh = jax.sharding.Mesh(np.array(self.devices), ("rows",))
            sharding = jax.sharding.NamedSharding(self._mesh, jax.sharding.PartitionSpec("rows", None))
            self.embeddings = jax.make_array_from_single_device_arrays(
                (per_device * n_dev, self.dim), sharding, shards
            )
        self._fns: dict[int, Any] = {}

    @property
    def device_bytes(self) -> int:
        """Bytes of the index on the device(s)."""
        return int(self.embeddings.size) * self.embeddings.dtype.itemsize

    def _search_fn(self, k: int):
        if k in self._fns:
            return self._fns[k]
        chunk, n_valid = self.chunk, self.num_rows
        if self._mesh is None:

            def fn(emb, q):
                return local_top_k(emb, q, jnp.int32(n_valid), jnp.int32(0), k, chunk)

        else:
            per_device, mesh = self._per_device, self._mesh
            P = jax.sharding.PartitionSpec
            k_local = min(k, per_device)

            def local(emb, q):
                offset = jax.lax.axis_index("rows").astype(jnp.int32) * per_device
                return local_top_k(emb, q, jnp.int32(n_valid), offset, k_local, chunk)

            sharded = jax.shard_map(
                local,
                mesh=mesh,
                in_specs=(P("rows", None), P()),
                out_specs=(P(None, "rows"), P(None, "rows")),
                check_vma=False,  # the scan carry starts replicated and becomes per-device
            )

            def fn(emb, q):
                # [Q, k_local·n_dev] candidates in device (= row) order; a stable top_k keeps lower rows on ties.
                s, r = sharded(emb, q)
                s, pos = jax.lax.top_k(s, k)
                return s, jnp.take_along_axis(r, pos, axis=1)

        self._fns[k] = jax.jit(fn)
        return self._fns[k]

    def search_device(self, queries: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
        """Like `search` but stays on device (no host transfer); queries are not padded to a bucket."""
        queries = check_queries(queries, self.dim)
        return self._search_fn(min(k, self.num_rows))(self.embeddings, queries)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries [Q, d'≥d] → (scores [Q, min(k,N)] float32, rows [Q, min(k,N)] int64), best first.

        Queries go in blocks of QUERY_BLOCK (the last one padded to a power of two ≥ 8), so memory is bounded
        for any Q and few shapes compile."""
        queries = np.asarray(check_queries(np.asarray(queries), self.dim), dtype=np.float32)
        num_q, k = queries.shape[0], min(k, self.num_rows)
        fn = self._search_fn(k)
        scores = np.zeros((num_q, k), np.float32)
        rows = np.zeros((num_q, k), np.int64)
        previous = None
        for lo in range(0, num_q, QUERY_BLOCK):
            block = queries[lo : lo + QUERY_BLOCK]
            padded = np.zeros((pow2_at_least(len(block), 8), self.dim), np.float32)
            padded[: len(block)] = block
            current = (lo, len(block), fn(self.embeddings, jnp.asarray(padded)))
            if previous is not None:  # one block in flight while the previous one is copied out
                self._collect(previous, scores, rows)
            previous = current
        if previous is not None:
            self._collect(previous, scores, rows)
        return scores, rows

    @staticmethod
    def _collect(result: tuple[int, int, tuple[jax.Array, jax.Array]], scores: np.ndarray, rows: np.ndarray) -> None:
        lo, n, (s, r) = result
        scores[lo : lo + n] = np.asarray(s)[:n]
        rows[lo : lo + n] = np.asarray(r)[:n]


# -------------------- ScaNN


@dataclasses.dataclass(frozen=True)
class ScannParams:
    """ScaNN settings; `None` fields get defaults from the index size (see `resolve`)."""

    num_leaves: int | None = None  # ≈ 2·sqrt(N)
    leaves_to_search: int | None = None  # ≈ 15% of the leaves (at least 32): recall@100 ≥ 0.95 on real text
    reorder: int = 500  # candidates re-scored exactly after asymmetric hashing
    dims_per_block: int = 2
    anisotropic_threshold: float = 0.2
    training_sample_size: int = 100_000
    brute_force_below: int = 2000  # tiny indexes: no tree, exact brute force inside ScaNN

    def resolve(self, num_rows: int) -> ScannParams:
        leaves = self.num_leaves or max(2, min(num_rows // 40, int(2 * math.sqrt(num_rows))))
        search = self.leaves_to_search or min(leaves, max(32, round(leaves * 0.15)))
        return dataclasses.replace(self, num_leaves=leaves, leaves_to_search=search)


def import_scann() -> Any:
    """The `scann` module, or an ImportError naming the extra that installs it."""
    try:
        import scann
    except ImportError as e:
        raise missing_extra("scann", "scann", "the ScaNN search backend") from e
    return scann


class ScannSearcher:
    """Approximate maximum-inner-product search with ScaNN (CPU). Same `search` contract as `ExactSearcher`."""

    def __init__(
        self,
        embeddings: np.ndarray,
        params: ScannParams | None = None,
        num_neighbors: int = 100,
        searcher: Any = None,
    ):
        """searcher: an already built (e.g. deserialized) ScaNN searcher over `embeddings`; else one is built."""
        scann = import_scann()
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise ValueError(f"embeddings must be a non-empty [N, d] matrix, got shape {embeddings.shape}")
        self.num_rows, self.dim = embeddings.shape
        self.params = (params or ScannParams()).resolve(self.num_rows)
        self.num_neighbors = num_neighbors
        if searcher is not None:
            self._searcher = searcher
            return
        p = self.params
        # ScaNN copies the dataset into its own float32 store; this float32 copy is dropped after the build.
        dataset = np.ascontiguousarray(embeddings, dtype=np.float32)
        builder = scann.scann_ops_pybind.builder(dataset, num_neighbors, "dot_product")
        if self.num_rows < p.brute_force_below:
            builder = builder.score_brute_force()
        else:
            builder = (
                builder.tree(
                    num_leaves=p.num_leaves,
                    num_leaves_to_search=p.leaves_to_search,
                    training_sample_size=min(p.training_sample_size, self.num_rows),
                )
                .score_ah(
                    p.dims_per_block,
                    anisotropic_quantization_threshold=p.anisotropic_threshold,
                    training_sample_size=min(p.training_sample_size, self.num_rows),
                )
                .reorder(max(p.reorder, num_neighbors))
            )
        self._searcher = builder.build()
        del dataset

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(check_queries(np.asarray(queries), self.dim), dtype=np.float32)
        k = min(k, self.num_rows)
        kwargs: dict[str, Any] = {"final_num_neighbors": k}
        if self.num_rows >= self.params.brute_force_below:
            kwargs["pre_reorder_num_neighbors"] = max(self.params.reorder, k)
            kwargs["leaves_to_search"] = self.params.leaves_to_search
        # Large batches use ScaNN's thread pool; small ones are cheaper on the calling thread.
        search = self._searcher.search_batched_parallel if len(queries) >= 64 else self._searcher.search_batched
        rows, scores = search(queries, **kwargs)
        return np.asarray(scores, np.float32), np.asarray(rows, np.int64)

    def serialize(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        self._searcher.serialize(str(folder))

    @classmethod
    def load(cls, folder: str | Path, embeddings: np.ndarray, params: ScannParams, num_neighbors: int) -> ScannSearcher:
        """A serialized searcher (no rebuild, no float32 copy of `embeddings`: ScaNN reads its own files)."""
        scann = import_scann()
        searcher = scann.scann_ops_pybind.load_searcher(str(folder))
        return cls(embeddings, params, num_neighbors, searcher=searcher)
