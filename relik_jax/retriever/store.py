"""Documents of an index: the `Document` record and a lazy store over a `documents.jsonl` file.

The published Wikipedia index has 5.9M documents (3 GB of JSONL); as Python objects they take ~1.8× the file.
`DocumentStore` keeps only the byte offset of each line (8 bytes a document) and parses a line when its document
is asked for, so a loaded index costs no document memory until retrieval returns rows. A document read from the
store equals the one `read_documents` would have built (same parsing, same blank-line rule).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

DEFAULT_SEPARATOR = " <def> "
_SCAN_BYTES = 1 << 26  # newline scan in 64 MB blocks


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
    """Read a `documents.jsonl` (one `{"text","id","metadata"}` per line) into memory."""
    with open(path, encoding="utf-8") as f:
        return [Document.from_dict(json.loads(line)) for line in f if line.strip()]


def write_documents(documents: Iterable[Document], path: str | Path) -> None:
    """Write `documents.jsonl` byte-compatibly with the reference (`json.dumps(doc.to_dict())` per line)."""
    with open(path, "w", encoding="utf-8") as f:
        for doc in documents:
            f.write(json.dumps(doc.to_dict()) + "\n")


def line_offsets(path: str | Path) -> np.ndarray:
    """Start offsets of the non-blank lines of a text file, plus the file size at the end: int64 [n + 1].

    Newlines are found with numpy in 64 MB blocks (a 3 GB file in seconds). A JSON line starts with "{"; the
    few lines that do not are read and dropped when blank (whitespace only), as `read_documents` drops them.
    """
    starts: list[np.ndarray] = []
    firsts: list[np.ndarray] = []
    size, pending = 0, True  # pending: a line starts at `size`, its first byte is in the next block
    with open(path, "rb") as f:
        while block := f.read(_SCAN_BYTES):
            buf = np.frombuffer(block, np.uint8)
            if pending:
                starts.append(np.array([size], np.int64))
                firsts.append(buf[:1])
            local = np.flatnonzero(buf == 10) + 1
            pending = bool(len(local)) and local[-1] == len(buf)
            local = local[:-1] if pending else local
            starts.append(local.astype(np.int64) + size)
            firsts.append(buf[local])
            size += len(buf)
        begins = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        first = np.concatenate(firsts) if firsts else np.zeros(0, np.uint8)
        ends = np.append(begins[1:], size)
        blank = []
        for i in np.flatnonzero(first != ord("{")).tolist():
            f.seek(int(begins[i]))
            if not f.read(int(ends[i] - begins[i])).decode("utf-8").strip():
                blank.append(i)
    keep = np.ones(len(begins), bool)
    keep[blank] = False
    return np.append(begins[keep], size).astype(np.int64)


class DocumentStore(Sequence[Document]):
    """Read-only `Sequence[Document]` over a `documents.jsonl` file: line offsets in memory, text on demand.

    skip_metadata: documents come back with `metadata={}` (reference `skip_metadata`), as the reader never
    needs it. The file must not change while the store is used.
    """

    def __init__(self, path: str | Path, skip_metadata: bool = False, offsets: np.ndarray | None = None):
        self.path = Path(path)
        self.skip_metadata = skip_metadata
        self.offsets = line_offsets(self.path) if offsets is None else np.asarray(offsets, np.int64)
        self._fd = os.open(self.path, os.O_RDONLY)  # pread: no shared file position, safe across threads

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def _read(self, row: int) -> dict:
        begin, end = int(self.offsets[row]), int(self.offsets[row + 1])
        return json.loads(os.pread(self._fd, end - begin, begin))

    def document(self, row: int) -> Document:
        n = len(self)
        if not -n <= row < n:
            raise IndexError(f"document row {row} out of range for {n} documents")
        doc = Document.from_dict(self._read(row % n))
        return Document(doc.text, doc.id, {}) if self.skip_metadata else doc

    @overload
    def __getitem__(self, row: int) -> Document: ...

    @overload
    def __getitem__(self, row: slice) -> list[Document]: ...

    def __getitem__(self, row: int | slice) -> Document | list[Document]:
        if isinstance(row, slice):
            return [self.document(i) for i in range(*row.indices(len(self)))]
        return self.document(int(row))

    def __iter__(self) -> Iterator[Document]:
        # Sequential reads through one buffered file: the whole store streams at disk speed.
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    doc = Document.from_dict(json.loads(line))
                    yield Document(doc.text, doc.id, {}) if self.skip_metadata else doc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str) or len(other) != len(self):
            return NotImplemented if not isinstance(other, Sequence) else False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable-looking sequence semantics, as a list

    def __repr__(self) -> str:
        return f"DocumentStore({str(self.path)!r}, {len(self)} documents)"

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_fd"]  # file descriptors do not cross processes: reopened on the other side
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._fd = os.open(self.path, os.O_RDONLY)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None
