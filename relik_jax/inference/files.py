"""Annotating files (`relik-jax annotate`): no document lost, none duplicated, resumable after a crash.

Reading (`read_documents`): a `.txt` file is one document per line, where only "\\n" or "\\r\\n" ends a line (a lone
"\\r" stays inside its document, so it cannot shift later ids; `str.splitlines` would split there); a `.jsonl` file
is one `{"text": ..., "id": ...}` record per non-blank line; a `.parquet` file one record per row (columns "text"
and optionally "id"; pyarrow, from the `[ray]` extra); a folder holds one document per `.txt` file. Files are
read as bytes and decoded line by line, so a line of invalid UTF-8, invalid JSON, a lone surrogate (`"\\ud800"`)
or an unknown key becomes *that document's* `DocumentError`, naming the file and line, and the others are read.

Writing (`annotate_file`): each finished document is one line, written in input order with a single `os.write`
of the complete line on an O_APPEND descriptor (a crash leaves at most one torn last line), fsync'ed every
`fsync_every` lines and at the end. A document that fails gets an error line `{"id": ..., "error": ...}` and the
run goes on (`on_error="skip"`), or stops there (`"fail"`).

Resuming (`resume=True`): a torn last line is cut off, the ids already written must be the input's first ids (else
the run refuses: not the same input), and annotation restarts at the group holding the first missing document.
Documents go to the model in fixed groups of `group_size` input documents, the same groups as an uninterrupted run,
so every document is batched with the same neighbours and its output line is byte-identical (batch composition
can change the last bits of a score, and a near-tie, the output); the re-annotated documents already in the file
are not written again.

Sharing (`shard=ProcessShard(i, n)`, engine/distributed.py): process i of n annotates the groups g with g % n == i
into its own file; the union of the n files is, line for line, the single-process output (the same groups, so
the same batches). Ray Data workers (inference/ray_annotate.py) annotate the same groups with `annotate_group`.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relik_jax.engine.distributed import ProcessShard
from relik_jax.extras import missing_extra
from relik_jax.inference.outputs import RelikOutput
from relik_jax.inference.validation import DocumentError, validate_document

__all__ = ["AnnotateReport", "ResumeError", "annotate_file", "annotate_group", "completed_records", "document_groups",
           "output_line", "read_documents", "same_document"]

BOM = b"\xef\xbb\xbf"


class ResumeError(RuntimeError):
    """The output file cannot be continued (not from this input, or damaged before its last line)."""


def _decode(raw: bytes, where: str, index: int, doc_id: Any) -> str | DocumentError:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return DocumentError(index, f"{where}: not valid UTF-8: byte 0x{raw[err.start]:02x} at byte {err.start} "
                                    f"of the line ({err.reason})", doc_id)


def _lines(path: Path) -> Iterator[bytes]:
    """The lines of a file as bytes, without their "\\n" / "\\r\\n" ending (binary reading splits on "\\n" only)."""
    with path.open("rb") as f:
        for n, raw in enumerate(f):
            if n == 0 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            if raw.endswith(b"\n"):
                raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
            yield raw


def _jsonl_record(raw: bytes, where: str, index: int) -> tuple[Any, dict | DocumentError]:
    line = _decode(raw, where, index, index)
    if isinstance(line, DocumentError):  # its error line still carries the record's id when it can be read
        try:
            doc_id = json.loads(raw.decode("utf-8", "replace")).get("id")
        except (ValueError, AttributeError):
            doc_id = None
        doc_id = doc_id if _usable_id(doc_id) else index
        return doc_id, DocumentError(index, line.reason, doc_id)
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        return index, DocumentError(index, f"{where}: not valid JSON ({err})", index)
    if not isinstance(record, dict):
        return index, DocumentError(index, f'{where}: expected an object {{"text": ..., "id": ...}}, got '
                                           f"{type(record).__name__}", index)
    if record.get("id") is None:
        record = {**record, "id": index}
    try:
        validate_document(record, index)
    except DocumentError as err:
        doc_id = record["id"] if _usable_id(record["id"]) else index  # an error line must carry a writable id
        return doc_id, DocumentError(index, f"{where}: {err.reason}", doc_id)
    return record["id"], record


def _usable_id(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")  # no lone surrogate
        except UnicodeEncodeError:
            return False
        return True
    return isinstance(value, int) and not isinstance(value, bool)


def _parquet_records(path: Path) -> Iterator[tuple[Any, dict | DocumentError]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise missing_extra("pyarrow", "ray", "reading Parquet documents") from None
    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            if record.get("id") is None:
                record = {**record, "id": index}
            try:
                validate_document(record, index)
                yield record["id"], record
            except DocumentError as err:
                doc_id = record["id"] if _usable_id(record["id"]) else index
                yield doc_id, DocumentError(index, f"{path} row {index}: {err.reason}", doc_id)
            index += 1


def read_documents(path: str | Path) -> Iterator[tuple[Any, dict | DocumentError]]:
    """(id, `{"text", "id"}` record or the `DocumentError` saying why the document could not be read), in order.
    Ids: the record's "id" (default: its position among the records), the line index of a .txt, the file name in a
    folder."""
    path = Path(path)
    if path.suffix == ".parquet":
        yield from _parquet_records(path)
        return
    if path.is_dir():
        for index, f in enumerate(sorted(path.glob("*.txt"))):
            text = _decode(f.read_bytes().removeprefix(BOM), str(f), index, f.name)
            yield f.name, text if isinstance(text, DocumentError) else {"text": text, "id": f.name}
        return
    if path.suffix == ".jsonl":
        index = 0
        for n, raw in enumerate(_lines(path), 1):
            if not raw.strip():
                continue
            yield _jsonl_record(raw, f"{path}:{n}", index)
            index += 1
        return
    for index, raw in enumerate(_lines(path)):
        text = _decode(raw, f"{path}:{index + 1}", index, index)
        yield index, text if isinstance(text, DocumentError) else {"text": text, "id": index}


def output_line(out: RelikOutput) -> bytes:
    """One JSONL line: the output (without candidates) and its id, or `{"id", "error"}`."""
    if out.error is not None:
        # ensure_ascii: an error may quote the bad input (e.g. a lone surrogate), which UTF-8 cannot carry
        return (json.dumps({"id": out.id, "error": out.error}, ensure_ascii=True) + "\n").encode("ascii")
    d = out.to_dict()
    d.pop("candidates")
    d["id"] = out.id
    return (json.dumps(d, ensure_ascii=False) + "\n").encode("utf-8")


HEAD = 200  # characters of each written text kept to check, on --resume, that the input is the same


def completed_records(path: str | Path) -> list[tuple[Any, str | None]]:
    """(id, first characters of the output text; None for an error line) of the complete output lines of `path`;
    cuts off a torn (or garbled) last line left by a crash."""
    path = Path(path)
    if not path.exists():
        return []
    done: list[tuple[Any, str | None]] = []
    end = 0  # byte offset after the last good line
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                if not raw.endswith(b"\n"):
                    raise ValueError("torn line")
                record = json.loads(raw)
                text = record.get("text")
                done.append((record["id"], text[:HEAD] if isinstance(text, str) else None))
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                if f.read(1):  # something follows: the damage is not from an interrupted append
                    raise ResumeError(f"{path}:{n}: not a complete output record ({err}); cannot resume") from None
                break
            end += len(raw)
    if end < path.stat().st_size:
        os.truncate(path, end)
    return done


def same_document(done: tuple[Any, str | None], doc_id: Any, doc: dict | DocumentError) -> bool:
    """Whether a written line belongs to this input document: same id, and its text (the document from its first to
    its last word) inside the document's text (ids alone, e.g. line numbers, would accept any other file)."""
    written_id, head = done
    if written_id != doc_id:
        return False
    return head is None or (isinstance(doc, dict) and isinstance(doc["text"], str) and head in doc["text"])


@dataclass
class AnnotateReport:
    documents: int = 0  # input documents seen
    written: int = 0  # lines written by this run
    resumed: int = 0  # documents found already written
    failed: int = 0  # error records in the output (resumed ones included), or the one that stopped a "fail" run
    first_error: str | None = None


class LineWriter:
    """Appends complete lines with one `os.write` each (no torn line but the last after a crash); fsync'ed every
    `fsync_every` lines and on close."""

    def __init__(self, path: str | Path, truncate: bool, fsync_every: int = 100) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
        self.fd = os.open(path, flags, 0o644)
        self.fsync_every, self.unsynced = fsync_every, 0

    def write(self, line: bytes) -> None:
        view = memoryview(line)
        while view:  # a regular file takes the whole line at once; loop only for the pathological short write
            view = view[os.write(self.fd, view):]
        self.unsynced += 1
        if self.unsynced >= self.fsync_every:
            os.fsync(self.fd)
            self.unsynced = 0

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


def document_groups(src: str | Path, group_size: int) -> Iterator[tuple[int, list[tuple[Any, dict | DocumentError]]]]:
    """(group number g, the documents [g·group_size, (g+1)·group_size) of `src`): the fixed batches every
    annotation path (one process, process shards, Ray workers) sends to the model."""
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    docs = read_documents(src)
    for g in itertools.count():
        group = list(itertools.islice(docs, group_size))
        if not group:
            return
        yield g, group


def annotate_group(relik: Any, docs: list[dict | DocumentError], *, top_k: int | None = None,
                   progress: Callable[[int], None] | None = None) -> Iterator[RelikOutput]:
    """One group through the model: an output per document (its error record when it fails), in order."""
    return relik.stream(docs, on_error="record", keep_candidates=False, top_k=top_k, progress=progress)


def annotate_file(relik: Any, src: str | Path, dst: str | Path, *, resume: bool = False, on_error: str = "skip",
                  group_size: int = 256, fsync_every: int = 100, top_k: int | None = None,
                  progress: Callable[[int], None] | None = None, shard: ProcessShard | None = None) -> AnnotateReport:
    """Annotate every document of `src` (with `shard`, those of its groups) into the JSONL `dst` (module
    docstring). Raises `ResumeError` when `dst` does not continue this input."""
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    shard = shard or ProcessShard()
    done = completed_records(dst) if resume else []
    report = AnnotateReport(resumed=len(done), failed=sum(head is None for _, head in done))
    writer = LineWriter(dst, truncate=not resume, fsync_every=fsync_every)
    base = 0  # line of `dst` the group's first document goes to
    try:
        for g, group in document_groups(src, group_size):
            if not shard.owns(g):
                continue
            for k, (doc_id, doc) in enumerate(group):
                if base + k < len(done) and not same_document(done[base + k], doc_id, doc):
                    raise ResumeError(f"{dst}:{base + k + 1} (id {done[base + k][0]!r}) is not the output of "
                                      f"document {g * group_size + k} of {src} (id {doc_id!r}): not the output of "
                                      "this input")
            report.documents += len(group)
            if base + len(group) <= len(done):
                base += len(group)
                continue  # written completely by an earlier run
            for k, out in enumerate(annotate_group(relik, [doc for _, doc in group], top_k=top_k, progress=progress)):
                if base + k < len(done):
                    continue  # in the file already; annotated again only to batch the group as the first run did
                if out.error is not None:
                    report.failed += 1
                    report.first_error = report.first_error or out.error
                    if on_error == "fail":
                        return report
                writer.write(output_line(out))
                report.written += 1
            base += len(group)
        if report.documents < len(done):
            raise ResumeError(f"{dst} has {len(done)} records but {src} only {report.documents} documents: not the "
                              "output of this input")
    finally:
        writer.close()
    return report
