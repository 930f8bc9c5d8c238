"""`relik-jax index build`: encode a KB file into an index folder, streamed and resumable.

Memory stays bounded for any KB size: documents are read from the JSONL through a `DocumentStore` (offsets only),
encoded `chunk_rows` at a time and written into a preallocated `.npy` memory map on disk (`OUT/.build/`). After
each chunk the vectors are flushed and `state.json` records the rows done (written atomically), so a run killed
at any point (even with SIGKILL) continues from the last completed chunk when the same command is run again.
Every chunk is encoded by itself (the same batches whatever happened before), so a resumed run writes exactly the
bytes an uninterrupted one writes.

The finished folder is a reference index folder (`config.yaml`, `documents.jsonl`, `embeddings.pt` as a torch zip
of `dtype` vectors: relik 1.0.7's `InMemoryDocumentIndex.from_pretrained` loads it) and one of ours
(`index.json` pointing at `embeddings.pt`; `scann/` for the ScaNN backend).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from relik_jax.io import arrays, torch_pickle
from relik_jax.retriever.encoder import Retriever, resolve_encoder
from relik_jax.retriever.index import DocumentIndex, reference_config
from relik_jax.retriever.search import NUMPY_DTYPES, ScannParams, ScannSearcher, resolve_dtype
from relik_jax.retriever.store import DEFAULT_SEPARATOR, Document, DocumentStore, passage_text

WORK_DIR = ".build"


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """What determines the vectors of a build (a resumed run must match it exactly)."""

    encoder: str
    documents: str
    dtype: str = "float16"
    batch_size: int = 512
    passage_max_length: int = 64
    metadata_fields: tuple[str, ...] = ()
    separator: str | None = DEFAULT_SEPARATOR
    chunk_rows: int = 4096

    def fingerprint(self) -> dict[str, Any]:
        """The settings plus the identity (size, mtime) of the encoder's and the KB's files."""
        def stamp(path: Path) -> list:
            st = path.stat()
            return [path.name, st.st_size, st.st_mtime_ns]

        encoder = Path(self.encoder)
        files = sorted(p for p in encoder.iterdir() if p.is_file()) if encoder.is_dir() else []
        return {**dataclasses.asdict(self), "metadata_fields": list(self.metadata_fields),
                "encoder_files": [stamp(p) for p in files], "documents_file": stamp(Path(self.documents))}


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def commit_progress(work: Path, state: dict[str, Any]) -> None:
    """Record progress atomically: a kill leaves either the old or the new state.json, never a torn one."""
    tmp = work / "state.json.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(state))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, work / "state.json")


def _progress_bar(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), disable=not enabled)


def encode_chunks(
    retriever: Retriever,
    store: Sequence[Document],
    config: BuildConfig,
    vectors: np.ndarray,
    first_row: int,
    on_chunk: Callable[[int], None],
) -> None:
    """Encode rows [first_row, N) chunk by chunk into `vectors`; `on_chunk(rows_done)` after each flushed chunk."""
    n = len(store)
    for lo in range(first_row, n, config.chunk_rows):
        hi = min(lo + config.chunk_rows, n)
        passages = [passage_text(store[i], config.metadata_fields, config.separator) for i in range(lo, hi)]
        encoded = retriever.encode_passages(passages, progress=None)
        vectors[lo:hi] = encoded.astype(vectors.dtype)
        vectors.flush()  # on disk before the state says so
        arrays.release(vectors[lo:hi])
        on_chunk(hi)


def build_index(
    encoder: str | Path,
    documents: str | Path,
    out: str | Path,
    *,
    dtype: str = "float16",
    backend: str = "exact",
    batch_size: int = 512,
    passage_max_length: int = 64,
    metadata_fields: Sequence[str] = (),
    separator: str | None = DEFAULT_SEPARATOR,
    chunk_rows: int = 4096,
    scann_params: ScannParams | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Encode every document of `documents` (JSONL of `{"text", "id", "metadata"}`) with `encoder` into the index
    folder `out`; resumes an interrupted build of the same settings. Returns `out`."""
    if backend not in ("exact", "scann"):
        raise ValueError(f"backend must be 'exact' or 'scann', got {backend!r}")
    if chunk_rows < 1 or batch_size < 1:
        raise ValueError("chunk_rows and batch_size must be positive")
    encoder_folder = resolve_encoder(str(encoder)).resolve()
    documents = Path(documents).resolve()
    if not documents.is_file():
        raise FileNotFoundError(f"documents file {documents} not found")
    config = BuildConfig(str(encoder_folder), str(documents), resolve_dtype(dtype), batch_size, passage_max_length,
                         tuple(metadata_fields), separator, chunk_rows)
    out = Path(out)
    work = out / WORK_DIR
    fingerprint = config.fingerprint()
    settings = read_state(out / "index.json") or {}
    if settings.get("build") == fingerprint and not work.exists() and settings.get("backend") == backend:
        log(f"{out} is up to date")
        return out
    store = DocumentStore(documents)
    if not len(store):
        raise ValueError(f"{documents}: no documents")
    retriever = Retriever.from_pretrained(encoder_folder, passage_max_length=passage_max_length,
                                          passage_batch_size=batch_size)
    dim = retriever.config.hidden_size
    state = read_state(work / "state.json")
    if state is None or state.get("fingerprint") != fingerprint:
        if work.exists():
            log(f"{work}: an earlier build with other settings; starting over")
            shutil.rmtree(work)
        work.mkdir(parents=True)
        arrays.create_npy(work / "embeddings.npy", (len(store), dim), NUMPY_DTYPES[config.dtype]).flush()
        state = {"fingerprint": fingerprint, "rows_done": 0, "num_documents": len(store)}
        commit_progress(work, state)
    elif state["rows_done"]:
        log(f"resuming {out}: {state['rows_done']:,} of {len(store):,} documents already encoded")
    vectors = arrays.open_npy_for_update(work / "embeddings.npy", NUMPY_DTYPES[config.dtype])

    def on_chunk(rows_done: int) -> None:
        commit_progress(work, {**state, "rows_done": rows_done})
        bar.update(task, completed=rows_done)

    with _progress_bar(progress) as bar:
        task = bar.add_task("Encoding passages", total=len(store), completed=state["rows_done"])
        encode_chunks(retriever, store, config, vectors, state["rows_done"], on_chunk)
    del vectors
    _finish(out, work, store, config, backend, scann_params, fingerprint)
    log(f"wrote {out} ({len(store):,} documents × {dim}, {config.dtype})")
    return out


def _finish(out: Path, work: Path, store: DocumentStore, config: BuildConfig, backend: str,
            scann_params: ScannParams | None, fingerprint: dict[str, Any]) -> None:
    """Write the final folder from the completed work files (idempotent: a kill here redoes it on the next run)."""
    vectors = arrays.open_npy(work / "embeddings.npy", NUMPY_DTYPES[config.dtype])
    documents_path = out / "documents.jsonl"
    if documents_path.resolve() != store.path:
        tmp = out / "documents.jsonl.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for row, doc in enumerate(store):  # as the reference writes it; a missing id becomes the row (reference)
                doc = Document(doc.text, row if doc.id is None else doc.id, doc.metadata)
                f.write(json.dumps(doc.to_dict()) + "\n")
        os.replace(tmp, documents_path)
    torch_pickle.save(vectors, work / "embeddings.pt")
    os.replace(work / "embeddings.pt", out / "embeddings.pt")
    (out / "config.yaml").write_text(reference_config(config.metadata_fields, config.separator, str(out)))
    index = DocumentIndex(DocumentStore(documents_path), vectors, config.metadata_fields, config.separator,
                          backend=backend, scann_params=scann_params, name_or_path=str(out))
    if backend == "scann":
        ScannSearcher(vectors, index.scann_params, index.num_neighbors).serialize(out / "scann")
    settings = {**index.settings("embeddings.pt"), "build": fingerprint}
    (out / "index.json").write_text(json.dumps(settings, indent=2) + "\n")
    shutil.rmtree(work)
