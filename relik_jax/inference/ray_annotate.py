"""Corpus annotation on Ray Data (the `[ray]` extra): `relik-jax annotate --ray [ADDRESS] MODEL INPUT OUTPUT`.

    from relik_jax.inference.ray_annotate import annotate_corpus, annotate_dataset
    annotate_corpus("out/pipeline", "corpus/", "annotated/", num_actors=2)     # shards in, shards out, resumable
    annotations = annotate_dataset(ray.data.read_parquet("docs/"), "out/pipeline", num_actors=8)   # lazy Dataset

Both run `map_batches` over an actor pool: each actor loads one `Relik` (once) and annotates batches of documents
with the single-process building block (`files.annotate_group`: per-document error records, fixed groups). One
actor per accelerator when the cluster has GPUs (`num_gpus=1` each), else `num_actors` actors on CPU.

`annotate_dataset`: a Dataset of documents ("text", optional "id") -> a Dataset of annotations, one row per
document: "id" and "annotation" (the JSON line `relik-jax annotate` writes for it). Its batches are Ray's
(`batch_size=group_size` rows).

`annotate_corpus` (the command): INPUT is a .jsonl / .txt / .parquet file, a folder of .txt documents, or a folder
of .jsonl / .parquet shards (read in name order; give documents ids unique across shards). Work items are the fixed
groups of `files.document_groups` (`group_size` consecutive documents of a shard), so every document is batched
with the same neighbours as in `relik-jax annotate` and its output is byte-identical. Each group is written by the
actor that annotated it as one file, `OUTPUT/part-SSSSS-GGGGGG.jsonl` (or `.parquet`: columns "id", "annotation"),
keyed by the ids inside it:

- exactly once: a file is written to a temporary name and renamed into place (atomic), so it exists complete or
  not at all; Ray restarts a killed actor and retries its batch, and the retry renames the same content onto the
  same name: no document is lost, none is written twice.
- resumable: a re-run (after the driver, a worker or the cluster died) skips the groups whose file exists, after
  checking that the file holds those documents (ids and text), and annotates the rest.

`read_annotations(OUTPUT)` yields the lines in input order (the single-process output). For a triplet pipeline,
spans with equal starts keep the reference's set order, which follows the hash seed: give the driver a fixed
PYTHONHASHSEED and it is passed to the workers.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relik_jax.engine.host_memory import freeze_loaded_objects
from relik_jax.extras import missing_extra
from relik_jax.inference.files import (
    HEAD,
    ResumeError,
    annotate_group,
    completed_records,
    document_groups,
    output_line,
    same_document,
)
from relik_jax.inference.pipeline import Relik
from relik_jax.inference.validation import DocumentError

__all__ = ["CorpusReport", "annotate_corpus", "annotate_dataset", "input_shards", "read_annotations"]

FORMATS = ("jsonl", "parquet")
PART = re.compile(r"^part-(\d{5})-(\d{6})\.(jsonl|parquet)$")
WORKERS = ".workers"  # one empty file per actor process, named by its pid (operators, and the kill test)


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - pandas / pyarrow come with ray[data]
    except ImportError:
        raise missing_extra("ray", "ray", "annotation on Ray (relik-jax annotate --ray)") from None
    return ray


def input_shards(src: str | Path) -> list[Path]:
    """The input files of INPUT: a file; the .jsonl / .parquet files of a folder, by name; or a folder of .txt
    documents (one input, as `relik-jax annotate` reads it)."""
    src = Path(src)
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise FileNotFoundError(f"annotate: INPUT {src} does not exist")
    shards = sorted(p for p in src.iterdir() if p.suffix in (".jsonl", ".parquet") and p.is_file())
    return shards or [src]


def part_name(shard: int, group: int, fmt: str) -> str:
    return f"part-{shard:05d}-{group:06d}.{fmt}"


def written_records(path: Path) -> list[tuple[Any, str | None]]:
    """(id, text head; None for an error record) of a written part, as `files.completed_records`."""
    if path.suffix == ".jsonl":
        return completed_records(path)
    import pyarrow.parquet as pq

    out = []
    for line in pq.read_table(path, columns=["annotation"]).column("annotation").to_pylist():
        record = json.loads(line)
        text = record.get("text")
        out.append((record["id"], text[:HEAD] if isinstance(text, str) else None))
    return out


def write_part(path: Path, ids: list[Any], lines: list[bytes]) -> None:
    """Write a part atomically: a temporary file in the same folder, fsync'ed, renamed onto `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        if path.suffix == ".jsonl":
            with tmp.open("wb") as f:
                f.write(b"".join(lines))
                f.flush()
                os.fsync(f.fileno())
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({"id": [str(i) for i in ids],
                              "annotation": [line.decode().rstrip("\n") for line in lines]})
            pq.write_table(table, tmp)
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_annotations(dst: str | Path) -> Iterator[bytes]:
    """Every output line of an `annotate_corpus` folder in input order (shard, group, document)."""
    parts = sorted(p for p in Path(dst).iterdir() if PART.match(p.name))
    for path in parts:
        if path.suffix == ".jsonl":
            with path.open("rb") as f:
                yield from f
        else:
            import pyarrow.parquet as pq

            for line in pq.read_table(path, columns=["annotation"]).column("annotation").to_pylist():
                yield (line + "\n").encode()


# ------------------------------------------------------------------------------------------------ actors
class _Annotator:
    """A Ray Data actor: one `Relik`, loaded once (`model`: a pipeline folder or hub id)."""

    def __init__(self, model: str, relik_kwargs: dict[str, Any], top_k: int | None, dst: str | None = None,
                 fmt: str = "jsonl"):
        self.relik = Relik.from_pretrained(model, **relik_kwargs)
        freeze_loaded_objects()  # one pipeline per actor: full garbage collections stop walking it
        self.top_k, self.fmt = top_k, fmt
        self.dst = None if dst is None else Path(dst)
        if self.dst is not None:
            (self.dst / WORKERS).mkdir(exist_ok=True)
            (self.dst / WORKERS / str(os.getpid())).touch()

    def annotate(self, docs: list[dict | DocumentError]) -> list[Any]:
        return list(annotate_group(self.relik, docs, top_k=self.top_k))


class DocumentAnnotator(_Annotator):
    """Documents batch ({"text": [...], "id": [...]}) -> {"id": [...], "annotation": [JSON lines]}."""

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        texts = list(batch["text"])
        ids = list(batch["id"]) if "id" in batch else [None] * len(texts)
        docs = [{"text": t, **({"id": _plain(i)} if i is not None else {})} for t, i in zip(texts, ids, strict=True)]
        outs = self.annotate(docs)
        return {"id": [_plain(o.id) for o in outs], "annotation": [output_line(o).decode().rstrip("\n") for o in outs]}


class GroupAnnotator(_Annotator):
    """Group rows ({"shard", "group", "written", "size", "docs": pickled [(id, record | DocumentError)]}) -> a part
    file each; returns one summary row per group."""

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"shard": [], "group": [], "documents": [], "failed": [], "first_error": []}
        out["resumed"] = []
        for shard, group, written, size, blob in zip(batch["shard"], batch["group"], batch["written"], batch["size"],
                                                     batch["docs"], strict=True):
            if written:  # by an earlier run
                for key, value in (("shard", int(shard)), ("group", int(group)), ("documents", int(size)),
                                   ("failed", 0), ("first_error", ""), ("resumed", True)):
                    out[key].append(value)
                continue
            docs = pickle.loads(blob)
            outs = self.annotate([doc for _, doc in docs])
            write_part(self.dst / part_name(int(shard), int(group), self.fmt), [o.id for o in outs],
                       [output_line(o) for o in outs])
            errors = [o.error for o in outs if o.error is not None]
            out["shard"].append(int(shard))
            out["group"].append(int(group))
            out["documents"].append(len(outs))
            out["failed"].append(len(errors))
            out["first_error"].append(errors[0] if errors else "")
            out["resumed"].append(False)
        return out


def _plain(value: Any) -> Any:
    """numpy scalars (Ray's numpy batches) -> Python ints / strs, as JSON ids."""
    return value.item() if hasattr(value, "item") else value


def _actor_args(ray: Any, num_actors: int | None, num_gpus_per_actor: float | None) -> dict[str, Any]:
    """One actor per GPU when the cluster has GPUs, else `num_actors` (default: the cluster's CPUs) on CPU."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if num_gpus_per_actor is None:
        num_gpus_per_actor = 1.0 if gpus else 0.0
    if num_actors is None:
        num_actors = int(gpus / num_gpus_per_actor) if num_gpus_per_actor else int(ray.cluster_resources()["CPU"])
    args: dict[str, Any] = {"compute": ray.data.ActorPoolStrategy(size=max(1, num_actors)), "num_cpus": 1}
    if num_gpus_per_actor:
        args["num_gpus"] = num_gpus_per_actor
    seed = os.environ.get("PYTHONHASHSEED")
    if seed:  # a triplet pipeline's span order follows the hash seed (module docstring)
        args["runtime_env"] = {"env_vars": {"PYTHONHASHSEED": seed}}
    return args


def annotate_dataset(ds: Any, model: str | Path, *, num_actors: int | None = None, group_size: int = 256,
                     top_k: int | None = None, num_gpus_per_actor: float | None = None,
                     relik_kwargs: dict[str, Any] | None = None) -> Any:
    """`ray.data.Dataset` of documents ("text", optional "id") -> lazy Dataset of annotations ("id", "annotation":
    the JSON line of `relik-jax annotate`), `group_size` documents per model call, on an actor pool."""
    ray = _ray()
    return ds.map_batches(DocumentAnnotator, batch_size=group_size, batch_format="numpy",
                          fn_constructor_kwargs={"model": str(model), "relik_kwargs": relik_kwargs or {},
                                                 "top_k": top_k},
                          **_actor_args(ray, num_actors, num_gpus_per_actor))


# ------------------------------------------------------------------------------------------------ corpus
@dataclass
class CorpusReport:
    documents: int = 0  # documents annotated by this run
    groups: int = 0  # groups (part files) written by this run
    resumed_groups: int = 0  # groups found written by an earlier run
    resumed_documents: int = 0
    failed: int = 0  # error records written by this run
    first_error: str | None = None
    seconds: float = 0.0


def _done_parts(dst: Path, fmt: str) -> set[tuple[int, int]]:
    """(shard, group) of the complete parts in `dst`; removes temporaries left by killed writers."""
    done = set()
    for p in dst.iterdir():
        if p.name.startswith(".part-") and p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)
        m = PART.match(p.name)
        if m:
            if m.group(3) != fmt:
                raise ResumeError(f"{dst} holds {m.group(3)} parts; this run writes {fmt}")
            done.add((int(m.group(1)), int(m.group(2))))
    return done


def _check_written(path: Path, docs: list[tuple[Any, Any]], where: str) -> None:
    written = written_records(path)
    if len(written) != len(docs) or not all(same_document(w, i, d) for w, (i, d) in zip(written, docs, strict=True)):
        raise ResumeError(f"{path} is not the output of {where}: not the output of this input")


def _group_reader(group_size: int, dst: Path, fmt: str, done: set[tuple[int, int]]
                  ) -> Callable[[dict[str, Any]], Iterator[dict[str, Any]]]:
    """flat_map function: a shard row -> its group rows; a group already written (checked against its documents)
    is passed on without its documents, to be counted, not annotated."""

    def read(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
        s, shard = int(row["shard"]), Path(row["path"])
        for g, docs in document_groups(shard, group_size):
            written = (s, g) in done
            if written:
                _check_written(dst / part_name(s, g, fmt), docs, f"documents {g * group_size}.. of {shard}")
            yield {"shard": s, "group": g, "written": written, "size": len(docs),
                   "docs": b"" if written else pickle.dumps(docs)}

    return read


def annotate_corpus(model: str | Path, src: str | Path, dst: str | Path, *, address: str | None = None,
                    num_actors: int | None = None, group_size: int = 256, fmt: str = "jsonl",
                    top_k: int | None = None, num_gpus_per_actor: float | None = None,
                    relik_kwargs: dict[str, Any] | None = None,
                    progress: Callable[[int], None] | None = None) -> CorpusReport:
    """Annotate INPUT's shards into part files under `dst` on Ray (module docstring); re-running resumes.

    `address`: a running cluster ("auto", "ray://host:10001", "host:6379"); None: the one `ray.init` already
    connected to, else a local one. `progress(n)` is called with the documents of each finished group."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    ray = _ray()
    t0 = time.perf_counter()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    dst = Path(dst).absolute()
    dst.mkdir(parents=True, exist_ok=True)
    shards = [p.absolute() for p in input_shards(src)]
    report = CorpusReport()
    # Shards are read by Ray tasks (num_cpus=0: they must not wait for CPUs the actors hold), one group per row;
    # the actors take one row per call, so Ray's block boundaries never change which documents share a batch.
    ds = ray.data.from_items([{"shard": s, "path": str(p)} for s, p in enumerate(shards)],
                             override_num_blocks=len(shards))
    ds.context.target_max_block_size = 1  # every group row its own block: any idle actor can take it
    groups = ds.flat_map(_group_reader(group_size, dst, fmt, _done_parts(dst, fmt)), num_cpus=0)
    out = groups.map_batches(GroupAnnotator, batch_size=1, batch_format="numpy",
                             fn_constructor_kwargs={"model": str(model), "relik_kwargs": relik_kwargs or {},
                                                    "top_k": top_k, "dst": str(dst), "fmt": fmt},
                             **_actor_args(ray, num_actors, num_gpus_per_actor))
    try:
        for row in out.iter_rows():
            _count(report, row, progress)
    except Exception as err:  # a ResumeError raised by a reading task arrives wrapped by Ray
        cause = _find_resume_error(err)
        if cause is None:
            raise
        message = re.search(r"ResumeError: (.+)", str(cause))  # Ray's text holds the remote traceback and hints
        raise ResumeError(message.group(1) if message else str(cause)) from None
    report.seconds = time.perf_counter() - t0
    return report


def _count(report: CorpusReport, row: dict[str, Any], progress: Callable[[int], None] | None) -> None:
    """Add one group's summary row to the report."""
    if row["resumed"]:
        report.resumed_groups += 1
        report.resumed_documents += int(row["documents"])
        return
    report.groups += 1
    report.documents += int(row["documents"])
    report.failed += int(row["failed"])
    report.first_error = report.first_error or (row["first_error"] or None)
    if progress is not None:
        progress(int(row["documents"]))


def _find_resume_error(err: BaseException | None) -> BaseException | None:
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ResumeError):
            return err
        err = getattr(err, "cause", None) or err.__cause__ or err.__context__
    return None
