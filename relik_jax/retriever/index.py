"""Document index: passages, their vectors and top-k search (exact on the accelerator, or ScaNN).

One interface, `DocumentIndex`, over two search backends:
- `ExactSearcher`: embeddings live on the accelerator (fp32/bf16/fp16); queries are scored by a chunked
  matmul merged with `jax.lax.top_k`, so memory stays bounded for multi-million-row indexes. With several
  local devices the rows are sharded over them (`jax.shard_map`): each device keeps its own top-k and the
  k·n_devices candidates are merged once more. Scores = reference `InMemoryDocumentIndex.search` (raw dot).
- `ScannSearcher`: ScaNN tree + asymmetric hashing + exact re-ranking (dot product), for CPU serving.

Documents follow the reference: `{"text", "id", "metadata"}`; the passage that gets embedded is
`text + separator + metadata[field]` for each of `metadata_fields` (reference separator `" <def> "`); the
reader only sees `text`. Queries wider than the index are truncated to its width (Matryoshka, reference §3.2).

Folders:
- ours (`save`/`load`): `index.json` (settings), `documents.jsonl`, `embeddings.npy` (+ `scann/` for ScaNN,
  so a loaded index answers exactly as the saved one without re-training);
- reference (`from_reference`/`to_reference`): `config.yaml`, `documents.jsonl`, `embeddings.pt` (torch
  zip, fp16 on the hub) read and written without torch by `relik_jax.io.torch_pickle`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from relik_jax.engine.buckets import pow2_at_least
from relik_jax.io import torch_pickle

DEFAULT_SEPARATOR = " <def> "
REFERENCE_TARGET = "relik.retriever.indexers.inmemory.InMemoryDocumentIndex"
INDEX_FORMAT = "relik-jax-index"
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class Document:
    """One KB entry (entity title or relation name) as in the reference `Document`."""

    text: str
    id: Any
    metadata: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"text": self.text, "id": self.id, "metadata": self.metadata}

    @classmethod
    def from_dict(cls, d: dict) -> Document:
        if "text" not in d:
            raise ValueError(f"document without a 'text' field: {d!r}")
        return cls(text=d["text"], id=d.get("id"), metadata=d.get("metadata") or {})


@dataclasses.dataclass(frozen=True)
class RetrievedDocument:
    document: Document
    score: float
    row: int


def passage_text(document: Document, metadata_fields: Sequence[str], separator: str | None) -> str:
    """Text embedded for `document` (reference `get_passage_from_document`)."""
    passage = document.text
    for field in metadata_fields:
        if field not in document.metadata:
            raise KeyError(f"document {document.id!r} has no metadata field {field!r} (has {list(document.metadata)})")
        passage += f"{separator}{document.metadata[field]}"
    return passage


def read_documents(path: str | Path) -> list[Document]:
    """Read a `documents.jsonl` (one `{"text","id","metadata"}` per line)."""
    with open(path, encoding="utf-8") as f:
        return [Document.from_dict(json.loads(line)) for line in f if line.strip()]


def write_documents(documents: Iterable[Document], path: str | Path) -> None:
    """Write `documents.jsonl` byte-compatibly with the reference (`json.dumps(doc.to_dict())` per line)."""
    with open(path, "w", encoding="utf-8") as f:
        for doc in documents:
            f.write(json.dumps(doc.to_dict()) + "\n")


def _check_queries(queries: np.ndarray | jax.Array, dim: int) -> np.ndarray | jax.Array:
    if queries.ndim != 2:
        raise ValueError(f"queries must be [num_queries, dim], got shape {tuple(queries.shape)}")
    if queries.shape[-1] < dim:
        raise ValueError(f"queries have dim {queries.shape[-1]} but the index has dim {dim}")
    # Matryoshka indexes store a prefix of the query space: keep the first `dim` components (reference §3.2).
    return queries[:, :dim] if queries.shape[-1] > dim else queries


# -------------------- exact search


def _local_top_k(
    emb: jax.Array, queries: jax.Array, n_valid: jax.Array, row_offset: jax.Array, k: int, chunk: int
) -> tuple[jax.Array, jax.Array]:
    """Top-k of `queries @ emb.T` over `emb` [n, d] (n a multiple of `chunk`) → scores [Q,k] f32, rows [Q,k]
    i32.

    Rows ≥ `n_valid` (padding) never win. Ties keep the lower row first (lax.top_k is stable and earlier
    chunks are
    concatenated before later ones), as a global top_k would.
    """
    n, d = emb.shape
    q = queries.astype(emb.dtype)  # reference casts the query to the index dtype
    num_q = q.shape[0]

    def body(carry, xs):
        best_s, best_i = carry
        block, start = xs
        s = jnp.einsum("qd,nd->qn", q, block, preferred_element_type=jnp.float32)
        rows = start + jnp.arange(chunk, dtype=jnp.int32)
        s = jnp.where(rows[None, :] < n_valid, s, -jnp.inf)
        s, pos = jax.lax.top_k(s, min(k, chunk))
        cat_s = jnp.concatenate([best_s, s], axis=1)
        cat_i = jnp.concatenate([best_i, rows[pos]], axis=1)
        top_s, top_pos = jax.lax.top_k(cat_s, k)
        return (top_s, jnp.take_along_axis(cat_i, top_pos, axis=1)), None

    starts = row_offset + jnp.arange(0, n, chunk, dtype=jnp.int32)
    init = (jnp.full((num_q, k), -jnp.inf, jnp.float32), jnp.full((num_q, k), -1, jnp.int32))
    (scores, rows), _ = jax.lax.scan(body, init, (emb.reshape(n // chunk, chunk, d), starts))
    return scores, rows


class ExactSearcher:
    """Exact maximum-inner-product search on the accelerator.

    embeddings: [N, d]; `dtype` is the on-device storage dtype ("float32", "bfloat16", "float16"); scores are
    accumulated in float32. `chunk_size` rows are scored at a time (bounds memory at Q·chunk_size floats).
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        dtype: str = "float32",
        chunk_size: int = 65536,
        devices: Sequence[jax.Device] | None = None,
    ):
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise ValueError(f"embeddings must be a non-empty [N, d] matrix, got shape {embeddings.shape}")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        self.num_rows, self.dim = embeddings.shape
        self.dtype = dtype
        self.devices = list(devices) if devices is not None else jax.local_devices()
        n_dev = len(self.devices)
        per_device = math.ceil(self.num_rows / n_dev)
        # chunk: multiple of 8, no larger than what one device holds.
        self.chunk = max(8, min(chunk_size, -(-per_device // 8) * 8))
        per_device = -(-per_device // self.chunk) * self.chunk
        padded = np.zeros((per_device * n_dev, self.dim), dtype=np.asarray(embeddings).dtype)
        padded[: self.num_rows] = embeddings
        host = padded.astype(_DTYPES[dtype])
        if n_dev == 1:
            self.embeddings = jax.device_put(host, self.devices[0])
            self._mesh = None
        else:
            self._mesh = jax.sharding.Mesh(np.array(self.devices), ("rows",))
            sharding = jax.sharding.NamedSharding(self._mesh, jax.sharding.PartitionSpec("rows", None))
            self.embeddings = jax.device_put(host, sharding)
        self._per_device = per_device
        self._fns: dict[int, Any] = {}

    def _search_fn(self, k: int):
        if k in self._fns:
            return self._fns[k]
        chunk, n_valid = self.chunk, self.num_rows
        if self._mesh is None:

            def fn(emb, q):
                return _local_top_k(emb, q, jnp.int32(n_valid), jnp.int32(0), k, chunk)

        else:
            per_device, mesh = self._per_device, self._mesh
            P = jax.sharding.PartitionSpec
            k_local = min(k, per_device)

            def local(emb, q):
                offset = jax.lax.axis_index("rows").astype(jnp.int32) * per_device
                return _local_top_k(emb, q, jnp.int32(n_valid), offset, k_local, chunk)

            sharded = jax.shard_map(
                local,
                mesh=mesh,
                in_specs=(P("rows", None), P()),
                out_specs=(P(None, "rows"), P(None, "rows")),
                check_vma=False,  # the scan carry starts replicated and becomes per-device
            )

            def fn(emb, q):
                # [Q, k_local·n_dev] candidates in device (= row) order; a stable top_k keeps lower rows on
                # ties.
                s, r = sharded(emb, q)
                s, pos = jax.lax.top_k(s, k)
                return s, jnp.take_along_axis(r, pos, axis=1)

        self._fns[k] = jax.jit(fn)
        return self._fns[k]

    def search_device(self, queries: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
        """Like `search` but stays on device (no host transfer); queries are not padded to a bucket."""
        queries = _check_queries(queries, self.dim)
        return self._search_fn(min(k, self.num_rows))(self.embeddings, queries)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries [Q, d'≥d] → (scores [Q, min(k,N)] float32, rows [Q, min(k,N)] int64), best first."""
        queries = np.asarray(_check_queries(np.asarray(queries), self.dim), dtype=np.float32)
        num_q = queries.shape[0]
        padded = np.zeros((pow2_at_least(num_q, 8), self.dim), np.float32)
        padded[:num_q] = queries
        scores, rows = self._search_fn(min(k, self.num_rows))(self.embeddings, jnp.asarray(padded))
        return np.asarray(scores)[:num_q], np.asarray(rows)[:num_q].astype(np.int64)


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


class ScannSearcher:
    """Approximate maximum-inner-product search with ScaNN (CPU). Same `search` contract as
    `ExactSearcher`."""

    def __init__(
        self,
        embeddings: np.ndarray,
        params: ScannParams | None = None,
        num_neighbors: int = 100,
        _searcher: Any = None,
    ):
        import scann

        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise ValueError(f"embeddings must be a non-empty [N, d] matrix, got shape {embeddings.shape}")
        self.num_rows, self.dim = embeddings.shape
        self.params = (params or ScannParams()).resolve(self.num_rows)
        self.num_neighbors = num_neighbors
        if _searcher is not None:
            self._searcher = _searcher
            return
        p = self.params
        builder = scann.scann_ops_pybind.builder(embeddings, num_neighbors, "dot_product")
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

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(_check_queries(np.asarray(queries), self.dim), dtype=np.float32)
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
        import scann

        searcher = scann.scann_ops_pybind.load_searcher(str(folder))
        return cls(embeddings, params, num_neighbors, _searcher=searcher)


# -------------------- index


class DocumentIndex:
    """Documents + their passage vectors + a search backend ("exact" or "scann").

    embeddings: [N, d] numpy (row i ↔ documents[i]); kept on host in the given dtype (fp16 stays fp16 for
    export).
    """

    def __init__(
        self,
        documents: Sequence[Document],
        embeddings: np.ndarray,
        metadata_fields: Sequence[str] = (),
        separator: str | None = DEFAULT_SEPARATOR,
        backend: str = "exact",
        dtype: str = "float32",
        chunk_size: int = 65536,
        scann_params: ScannParams | None = None,
        num_neighbors: int = 100,
        name_or_path: str | None = None,
        _scann_folder: Path | None = None,
    ):
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be [N, d], got shape {embeddings.shape}")
        if len(documents) != embeddings.shape[0]:
            raise ValueError(f"{len(documents)} documents but {embeddings.shape[0]} embedding rows")
        if backend not in ("exact", "scann"):
            raise ValueError(f"backend must be 'exact' or 'scann', got {backend!r}")
        self.documents = list(documents)
        self.embeddings = embeddings
        self.metadata_fields = list(metadata_fields)
        self.separator = separator
        self.backend = backend
        self.dtype = dtype
        self.name_or_path = name_or_path
        self.scann_params = scann_params or ScannParams()
        self.num_neighbors = num_neighbors
        if backend == "exact":
            self.searcher: ExactSearcher | ScannSearcher = ExactSearcher(embeddings, dtype, chunk_size)
        elif _scann_folder is not None:
            self.searcher = ScannSearcher.load(_scann_folder, embeddings, self.scann_params, num_neighbors)
        else:
            self.searcher = ScannSearcher(embeddings, self.scann_params, num_neighbors)

    def __len__(self) -> int:
        return len(self.documents)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def passages(self) -> list[str]:
        """Texts to embed, row order."""
        return [passage_text(d, self.metadata_fields, self.separator) for d in self.documents]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries [Q, d'] → (scores [Q,k'], rows [Q,k']) with k' = min(k, N), best first."""
        return self.searcher.search(queries, k)

    def retrieve(self, queries: np.ndarray, k: int) -> list[list[RetrievedDocument]]:
        scores, rows = self.search(queries, k)
        return [
            [RetrievedDocument(self.documents[r], float(s), int(r)) for s, r in zip(srow, rrow, strict=True)]
            for srow, rrow in zip(scores, rows, strict=True)
        ]

    def recall_vs_exact(self, queries: np.ndarray, k: int) -> float:
        """Fraction of the exact top-k rows that this index's top-k also returns (1.0 for the exact
        backend)."""
        exact = ExactSearcher(self.embeddings, "float32")
        _, truth = exact.search(queries, k)
        _, got = self.search(queries, k)
        hits = sum(len(set(t.tolist()) & set(g.tolist())) for t, g in zip(truth, got, strict=True))
        return hits / truth.size

    def with_backend(self, backend: str, **kwargs: Any) -> DocumentIndex:
        """Same documents and vectors, another search backend."""
        settings = dict(
            metadata_fields=self.metadata_fields,
            separator=self.separator,
            dtype=self.dtype,
            scann_params=self.scann_params,
            num_neighbors=self.num_neighbors,
            name_or_path=self.name_or_path,
        )
        settings.update(kwargs)
        return DocumentIndex(self.documents, self.embeddings, backend=backend, **settings)

    # -------------------- our format

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        settings = {
            "format": INDEX_FORMAT,
            "version": 1,
            "metadata_fields": self.metadata_fields,
            "separator": self.separator,
            "backend": self.backend,
            "dtype": self.dtype,
            "num_neighbors": self.num_neighbors,
            "scann_params": dataclasses.asdict(self.scann_params),
            "name_or_path": self.name_or_path,
            "num_documents": len(self.documents),
            "dim": self.dim,
        }
        (folder / "index.json").write_text(json.dumps(settings, indent=2) + "\n")
        np.save(folder / "embeddings.npy", self.embeddings, allow_pickle=False)
        write_documents(self.documents, folder / "documents.jsonl")
        if isinstance(self.searcher, ScannSearcher):
            self.searcher.serialize(folder / "scann")

    @classmethod
    def load(cls, folder: str | Path, **overrides: Any) -> DocumentIndex:
        folder = Path(folder)
        config_path = folder / "index.json"
        if not config_path.exists():
            hint = (
                " (this looks like a reference index folder: use DocumentIndex.from_reference)"
                if (folder / "config.yaml").exists()
                else ""
            )
            raise FileNotFoundError(f"{config_path} not found{hint}")
        settings = json.loads(config_path.read_text())
        if settings.get("format") != INDEX_FORMAT:
            raise ValueError(f"{config_path}: not a {INDEX_FORMAT} folder (format={settings.get('format')!r})")
        embeddings = np.load(folder / "embeddings.npy", allow_pickle=False)
        documents = read_documents(folder / "documents.jsonl")
        kwargs: dict[str, Any] = dict(
            metadata_fields=settings["metadata_fields"],
            separator=settings["separator"],
            backend=settings["backend"],
            dtype=settings["dtype"],
            num_neighbors=settings["num_neighbors"],
            scann_params=ScannParams(**settings["scann_params"]),
            name_or_path=settings.get("name_or_path"),
        )
        kwargs.update(overrides)
        if kwargs["backend"] == "scann" and (folder / "scann").exists() and "scann_params" not in overrides:
            kwargs["_scann_folder"] = folder / "scann"
        return cls(documents, embeddings, **kwargs)

    # -------------------- reference format

    @classmethod
    def from_reference(cls, folder: str | Path, skip_metadata: bool = False, **kwargs: Any) -> DocumentIndex:
        """Load a reference index folder (`config.yaml`, `documents.jsonl`, `embeddings.pt`).

        Embeddings keep their stored dtype on host (fp16 on the hub); the search dtype is `kwargs["dtype"]`
        (float32 by default, as the reference on CPU).
        """
        folder = Path(folder)
        for name in ("config.yaml", "documents.jsonl", "embeddings.pt"):
            if not (folder / name).exists():
                raise FileNotFoundError(f"reference index folder {folder} has no {name}")
        config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
        embeddings = torch_pickle.load(folder / "embeddings.pt")
        if not isinstance(embeddings, np.ndarray):
            raise ValueError(f"{folder / 'embeddings.pt'}: expected a single tensor, got {type(embeddings)}")
        documents = read_documents(folder / "documents.jsonl")
        if skip_metadata:
            documents = [Document(d.text, d.id, {}) for d in documents]
        kwargs.setdefault("metadata_fields", config.get("metadata_fields") or [])
        kwargs.setdefault("separator", config.get("separator"))
        kwargs.setdefault("name_or_path", config.get("name_or_path"))
        return cls(documents, embeddings, **kwargs)

    def to_reference(self, folder: str | Path, embeddings_dtype: str | None = None) -> None:
        """Write the reference layout; `embeddings_dtype` (e.g. "float16", as on the hub) defaults to the
        host dtype."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "_target_": REFERENCE_TARGET,
            "metadata_fields": self.metadata_fields,
            "separator": self.separator,
            "name_or_path": self.name_or_path,
        }
        (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        embeddings = self.embeddings if embeddings_dtype is None else self.embeddings.astype(embeddings_dtype)
        torch_pickle.save(np.ascontiguousarray(embeddings), folder / "embeddings.pt")
        write_documents(self.documents, folder / "documents.jsonl")
