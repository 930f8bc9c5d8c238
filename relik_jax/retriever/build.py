"""`relik-jax index build`: encode a KB file into an index folder, streamed and resumable.

Memory stays bounded for any KB size: documents are read from the JSONL through a `DocumentStore` (offsets only)
and their vectors written into a preallocated `.npy` memory map on disk (`OUT/.build/`).

The batches are the ones `Retriever.encode_passages` forms for the whole KB (passages sorted by token length,
`batch_size` at a time, the same padding buckets), so the vectors are bit-identical to `Retriever.build_index`'s.
A first pass keeps only the token lengths (4 bytes a passage) to plan them; the second tokenizes and encodes one
batch at a time. Every `chunk_rows` passages the vectors are flushed and `state.json` records the batches done
(written atomically), so a run killed at any point (even with SIGKILL) continues from the last completed chunk
when the same command is run again, and writes exactly the bytes an uninterrupted run writes.

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

import jax.numpy as jnp
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from relik_jax.io import arrays, torch_pickle
from relik_jax.retriever.encoder import Retriever, padded_batches, resolve_encoder
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


def token_lengths(retriever: Retriever, store: Sequence[Document], config: BuildConfig, rows: int = 65536,
                  advance: Callable[[int], None] = lambda n: None) -> np.ndarray:
    """Token count of every passage (truncated at the passage max length), streamed over the KB."""
    lengths = np.zeros(len(store), np.int32)
    batch: list[str] = []
    done = 0
    for doc in store:  # sequential read of the JSONL
        batch.append(passage_text(doc, config.metadata_fields, config.separator))
        if len(batch) == rows or done + len(batch) == len(store):
            encoded = retriever.tokenize(batch, max_length=retriever.passage_max_length)
            lengths[done : done + len(batch)] = [len(ids) for ids, _ in encoded]
            done += len(batch)
            advance(len(batch))
            batch = []
    return lengths


def encode_batches(
    retriever: Retriever,
    store: Sequence[Document],
    config: BuildConfig,
    order: np.ndarray,
    vectors: np.ndarray,
    first_batch: int,
    batches_per_chunk: int,
    on_chunk: Callable[[int], None],
) -> None:
    """Encode the batches `order[b·B : (b+1)·B]` for b ≥ first_batch into their rows of `vectors`, as
    `Retriever.encode` batches them; `on_chunk(batches_done)` after every `batches_per_chunk` flushed batches."""
    num_batches = -(-len(order) // config.batch_size)
    pending: list[tuple[np.ndarray, Any]] = []

    def write_out(keep: int) -> None:
        while len(pending) > keep:
            positions, pooled = pending.pop(0)
            vectors[positions] = np.asarray(pooled)[: len(positions)].astype(vectors.dtype)

    for b in range(first_batch, num_batches):
        positions = order[b * config.batch_size : (b + 1) * config.batch_size]
        passages = [passage_text(store[int(i)], config.metadata_fields, config.separator) for i in positions]
        encodings = retriever.tokenize(passages, max_length=retriever.passage_max_length)
        ((_, arrays_),) = padded_batches(encodings, config.batch_size, retriever.length_buckets, sort=False)
        pooled = retriever.forward(*(jnp.asarray(arrays_[k]) for k in ("input_ids", "attention_mask",
                                                                        "token_type_ids")))
        pending.append((positions, pooled))
        write_out(keep=2)  # a couple of batches in flight (async dispatch) while earlier ones are copied out
        if (b + 1) % batches_per_chunk == 0 or b + 1 == num_batches:
            write_out(keep=0)
            vectors.flush()  # on disk before the state says so
            arrays.release(vectors)  # rows are scattered over the file: drop all mapped pages
            on_chunk(b + 1)


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
    folder `out`; resumes an interrupted build of the same settings. `chunk_rows`: passages between two
    checkpoints (rounded to whole batches; it does not change the result). Returns `out`."""
    if backend not in ("exact", "scann"):
        raise ValueError(f"backend must be 'exact' or 'scann', got {backend!r}")
    if chunk_rows < 1 or batch_size < 1:
        raise ValueError("chunk_rows and batch_size must be positive")
    encoder_folder = resolve_encoder(str(encoder)).resolve()
    documents = Path(documents).resolve()
    if not documents.is_file():
        raise FileNotFoundError(f"documents file {documents} not found")
    config = BuildConfig(str(encoder_folder), str(documents), resolve_dtype(dtype), batch_size, passage_max_length,
                         tuple(metadata_fields), separator)
    out = Path(out)
    work = out / WORK_DIR
    fingerprint = config.fingerprint()
    settings = read_state(out / "index.json") or {}
    if settings.get("build") == fingerprint and not work.exists() and settings.get("backend") == backend:
        log(f"{out} is up to date")
        return out
    store = DocumentStore(documents)
    n = len(store)
    if not n:
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
        state = {"fingerprint": fingerprint, "num_documents": n, "batches_done": 0, "rows_done": 0}
    elif state["rows_done"]:
        log(f"resuming {out}: {state['rows_done']:,} of {n:,} documents already encoded")
    batches_per_chunk = max(1, chunk_rows // batch_size)

    def on_chunk(batches_done: int) -> None:
        rows_done = min(batches_done * batch_size, n)
        commit_progress(work, {**state, "batches_done": batches_done, "rows_done": rows_done})
        bar.update(encoding, completed=rows_done)

    with _progress_bar(progress) as bar:
        if not (work / "lengths.npy").exists():  # pass 1: the batch plan needs every passage's token count
            tokenizing = bar.add_task("Tokenizing passages", total=n)
            lengths = token_lengths(retriever, store, config, advance=lambda k: bar.advance(tokenizing, k))
            arrays.create_npy(work / "embeddings.npy", (n, dim), NUMPY_DTYPES[config.dtype]).flush()
            np.save(work / "lengths.tmp.npy", lengths)
            os.replace(work / "lengths.tmp.npy", work / "lengths.npy")  # the plan exists once this file does
            commit_progress(work, state)
        order = np.argsort(np.load(work / "lengths.npy"), kind="stable")  # = padded_batches' order
        vectors = arrays.open_npy_for_update(work / "embeddings.npy", NUMPY_DTYPES[config.dtype])
        encoding = bar.add_task("Encoding passages", total=n, completed=state["rows_done"])
        encode_batches(retriever, store, config, order, vectors, state["batches_done"], batches_per_chunk, on_chunk)
    del vectors
    _finish(out, work, store, config, backend, scann_params, fingerprint)
    log(f"wrote {out} ({n:,} documents × {dim}, {config.dtype})")
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
