"""Document index: passages, their vectors and top-k search (exact on the accelerator, or ScaNN).

`DocumentIndex` joins three parts, each in its own module:
- documents (`relik_jax.retriever.store`): a list, or a `DocumentStore` that reads `documents.jsonl` lazily;
- vectors [N, d] on the host: for a loaded index a read-only memory map of the file (no RAM until used);
- a search backend (`relik_jax.retriever.search`): "exact" (the vectors on the accelerator in the index dtype:
  the stored one unless `dtype` says otherwise, so the published fp16 indexes stay fp16) or "scann". It is built
  on the first search, so loading, converting and saving an index never touch the accelerator.

Documents follow the reference: `{"text", "id", "metadata"}`; the passage that gets embedded is
`text + separator + metadata[field]` for each of `metadata_fields` (reference separator `" <def> "`); the
reader only sees `text`. Queries wider than the index are truncated to its width (Matryoshka, reference §3.2).

Folders:
- ours (`save`/`load`): `index.json` (settings; `"embeddings"` names the vectors file), `documents.jsonl`,
  `embeddings.npy` (+ `scann/` for ScaNN, so a loaded index answers exactly as the saved one without
  re-training). `index.json` may instead point at a reference `embeddings.pt`: then the folder is also a
  reference folder (what `relik-jax index build` writes);
- reference (`from_reference`/`to_reference`): `config.yaml`, `documents.jsonl`, `embeddings.pt` (torch
  zip, fp16 on the hub) read (memory-mapped) and written (streamed) without torch by `relik_jax.io.torch_pickle`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import yaml

from relik_jax.io import arrays, torch_pickle
from relik_jax.retriever.search import (
    NUMPY_DTYPES,
    ExactSearcher,
    ScannParams,
    ScannSearcher,
    resolve_dtype,
)
from relik_jax.retriever.store import (
    DEFAULT_SEPARATOR,
    Document,
    DocumentStore,
    RetrievedDocument,
    passage_text,
    read_documents,
    write_documents,
)

__all__ = [  # the index API (store and search names re-exported: they were defined here before the split)
    "DEFAULT_SEPARATOR", "INDEX_FORMAT", "REFERENCE_TARGET", "Document", "DocumentIndex", "DocumentStore",
    "ExactSearcher", "RetrievedDocument", "ScannParams", "ScannSearcher", "load_index", "passage_text",
    "read_documents", "reference_config", "write_documents",
]

REFERENCE_TARGET = "relik.retriever.indexers.inmemory.InMemoryDocumentIndex"
INDEX_FORMAT = "relik-jax-index"


def reference_config(metadata_fields: Sequence[str], separator: str | None, name_or_path: str | None) -> str:
    """The reference's `config.yaml` of an index folder."""
    config = {
        "_target_": REFERENCE_TARGET,
        "metadata_fields": list(metadata_fields),
        "separator": separator,
        "name_or_path": name_or_path,
    }
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def _same_file(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and os.path.samefile(a, b)


def _map_embeddings(path: Path, dtype: str | None = None) -> np.ndarray:
    """The vectors file of an index folder as a read-only memory map (`.npy` or a torch zip `.pt`); `dtype`
    names the stored dtype of a `.npy` (needed for bfloat16, which `.npy` headers cannot name)."""
    if path.suffix == ".npy":
        embeddings = arrays.open_npy(path, NUMPY_DTYPES.get(dtype) if dtype else None)
    else:
        embeddings = torch_pickle.load(path, mmap=True)
    if not isinstance(embeddings, np.ndarray) or embeddings.ndim != 2:
        raise ValueError(f"{path}: expected a single [N, d] tensor, got {type(embeddings).__name__}")
    return embeddings


class DocumentIndex:
    """Documents + their passage vectors + a search backend ("exact" or "scann").

    embeddings: [N, d] host array (row i ↔ documents[i]), kept as given (a memory map stays one; fp16 stays fp16
    for export). dtype: on-device dtype of the exact backend ("float32" / "bfloat16" / "float16", or fp32 /
    bf16 / fp16); None = the stored dtype (fp16 files → fp16 on the device, fp32 vectors → fp32). devices: where
    the exact backend keeps the vectors (rows sharded across them); None = every local device.
    """

    def __init__(
        self,
        documents: Sequence[Document],
        embeddings: np.ndarray,
        metadata_fields: Sequence[str] = (),
        separator: str | None = DEFAULT_SEPARATOR,
        backend: str = "exact",
        dtype: str | None = None,
        chunk_size: int = 65536,
        scann_params: ScannParams | None = None,
        num_neighbors: int = 100,
        name_or_path: str | None = None,
        scann_folder: Path | None = None,
        devices: Sequence[jax.Device] | None = None,
    ):
        """scann_folder: a serialized ScaNN searcher over these vectors (loaded instead of re-trained)."""
        if not isinstance(embeddings, np.ndarray):
            embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be [N, d], got shape {embeddings.shape}")
        if len(documents) != embeddings.shape[0]:
            raise ValueError(f"{len(documents)} documents but {embeddings.shape[0]} embedding rows")
        if backend not in ("exact", "scann"):
            raise ValueError(f"backend must be 'exact' or 'scann', got {backend!r}")
        self.documents = documents if isinstance(documents, DocumentStore) else list(documents)
        self.embeddings = embeddings
        self.metadata_fields = list(metadata_fields)
        self.separator = separator
        self.backend = backend
        self.dtype = None if dtype is None else resolve_dtype(dtype)
        self.chunk_size = chunk_size
        self.name_or_path = name_or_path
        self.scann_params = scann_params or ScannParams()
        self.num_neighbors = num_neighbors
        self.scann_folder = scann_folder
        self.devices = None if devices is None else list(devices)
        self._searcher: ExactSearcher | ScannSearcher | None = None
        self._lock = threading.Lock()

    @property
    def searcher(self) -> ExactSearcher | ScannSearcher:
        """The search backend, built on first use (vectors streamed to the device / ScaNN trained or loaded)."""
        with self._lock:
            if self._searcher is None:
                if self.backend == "exact":
                    self._searcher = ExactSearcher(self.embeddings, self.search_dtype, self.chunk_size, self.devices)
                elif self.scann_folder is not None:
                    self._searcher = ScannSearcher.load(
                        self.scann_folder, self.embeddings, self.scann_params, self.num_neighbors
                    )
                else:
                    self._searcher = ScannSearcher(self.embeddings, self.scann_params, self.num_neighbors)
            return self._searcher

    @property
    def search_dtype(self) -> str:
        """The dtype the exact backend keeps on the device."""
        return resolve_dtype(self.dtype, self.embeddings.dtype)

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
        # Each retrieved row is read (or looked up) once, however many queries return it.
        documents = {r: self.documents[r] for r in np.unique(rows).tolist()}
        return [
            [RetrievedDocument(documents[r], float(s), r) for s, r in zip(srow.tolist(), rrow.tolist(), strict=True)]
            for srow, rrow in zip(scores, rows, strict=True)
        ]

    def recall_vs_exact(self, queries: np.ndarray, k: int) -> float:
        """Fraction of the fp32 exact top-k rows that this index's top-k also returns."""
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
            chunk_size=self.chunk_size,
            scann_params=self.scann_params,
            num_neighbors=self.num_neighbors,
            name_or_path=self.name_or_path,
            devices=self.devices,
        )
        settings.update(kwargs)
        return DocumentIndex(self.documents, self.embeddings, backend=backend, **settings)

    # -------------------- our format

    def settings(self, embeddings_file: str = "embeddings.npy") -> dict[str, Any]:
        """The `index.json` of this index."""
        return {
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
            "embeddings": embeddings_file,
            "embeddings_dtype": str(self.embeddings.dtype),
        }

    def save(self, folder: str | Path) -> None:
        """Write our folder, streaming vectors and documents file to file (nothing is loaded whole)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._write_documents(folder / "documents.jsonl")
        source = getattr(self.embeddings, "filename", None)  # a memory map of the very file: already there
        if not (source and _same_file(Path(source), folder / "embeddings.npy")):
            arrays.write_npy(folder / "embeddings.npy", self.embeddings)
        if self.backend == "scann":
            self.searcher.serialize(folder / "scann")
        (folder / "index.json").write_text(json.dumps(self.settings(), indent=2) + "\n")

    def _write_documents(self, path: Path) -> None:
        store = self.documents
        if isinstance(store, DocumentStore) and not store.skip_metadata:
            if not _same_file(store.path, path):
                shutil.copyfile(store.path, path)  # the file as it is: byte-identical, at disk speed
        else:
            write_documents(self.documents, path)

    @classmethod
    def load(cls, folder: str | Path, skip_metadata: bool = False, **overrides: Any) -> DocumentIndex:
        """Our folder: vectors memory-mapped, documents read lazily (`skip_metadata`: documents without metadata).

        overrides: constructor arguments replacing the saved settings (e.g. `dtype="bf16"`, `backend="exact"`)."""
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
        embeddings_file = folder / settings.get("embeddings", "embeddings.npy")
        embeddings = _map_embeddings(embeddings_file, settings.get("embeddings_dtype"))
        documents = DocumentStore(folder / "documents.jsonl", skip_metadata=skip_metadata)
        kwargs: dict[str, Any] = dict(
            metadata_fields=settings["metadata_fields"],
            separator=settings["separator"],
            backend=settings["backend"],
            dtype=settings.get("dtype"),
            num_neighbors=settings["num_neighbors"],
            scann_params=ScannParams(**settings["scann_params"]),
            name_or_path=settings.get("name_or_path"),
        )
        kwargs.update(overrides)
        if kwargs["backend"] == "scann" and (folder / "scann").exists() and "scann_params" not in overrides:
            kwargs.setdefault("scann_folder", folder / "scann")
        return cls(documents, embeddings, **kwargs)

    # -------------------- reference format

    @classmethod
    def from_reference(cls, folder: str | Path, skip_metadata: bool = False, **kwargs: Any) -> DocumentIndex:
        """Load a reference index folder (`config.yaml`, `documents.jsonl`, `embeddings.pt`).

        The vectors stay a memory map of `embeddings.pt` in their stored dtype (fp16 on the hub), and the exact
        backend keeps that dtype on the device unless `kwargs["dtype"]` says otherwise.
        """
        folder = Path(folder)
        for name in ("config.yaml", "documents.jsonl", "embeddings.pt"):
            if not (folder / name).exists():
                raise FileNotFoundError(f"reference index folder {folder} has no {name}")
        config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
        embeddings = _map_embeddings(folder / "embeddings.pt")
        documents = DocumentStore(folder / "documents.jsonl", skip_metadata=skip_metadata)
        kwargs.setdefault("metadata_fields", config.get("metadata_fields") or [])
        kwargs.setdefault("separator", config.get("separator"))
        kwargs.setdefault("name_or_path", config.get("name_or_path"))
        return cls(documents, embeddings, **kwargs)

    def to_reference(self, folder: str | Path, embeddings_dtype: str | None = None) -> None:
        """Write the reference layout, streamed; `embeddings_dtype` (e.g. "float16", as on the hub) defaults to the
        host dtype."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(reference_config(self.metadata_fields, self.separator, self.name_or_path))
        source = getattr(self.embeddings, "filename", None)
        target = folder / "embeddings.pt"
        if not (source and _same_file(Path(source), target)):
            torch_pickle.save(self.embeddings, target, dtype=embeddings_dtype)
        self._write_documents(folder / "documents.jsonl")

    @property
    def device_bytes(self) -> int:
        """Bytes the search backend holds on the accelerator (0 before the first search, or for ScaNN)."""
        return self._searcher.device_bytes if isinstance(self._searcher, ExactSearcher) else 0


def load_index(folder: str | Path, **kwargs: Any) -> DocumentIndex:
    """Our folder (`index.json`) or a reference folder (`config.yaml` + `embeddings.pt`), whichever it is."""
    folder = Path(folder)
    if (folder / "index.json").is_file():
        return DocumentIndex.load(folder, **kwargs)
    return DocumentIndex.from_reference(folder, **kwargs)
