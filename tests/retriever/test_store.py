"""DocumentStore: lazy documents.jsonl equal to read_documents (blank lines, unicode, CRLF, block edges)."""

from __future__ import annotations

import json
import pickle

import pytest

from relik_jax.retriever import store as store_module
from relik_jax.retriever.store import Document, DocumentStore, line_offsets, read_documents, write_documents

CASES = [
    '{"text": "a", "id": 1}\n\n{"text": "b", "id": 2, "metadata": {"x": 1}}\n   \n \t\r\n{"text":"c"}',
    "",
    "\n\n",
    '{"text": "a", "id": 1}',
    '{"text": "é ü", "id": 1}\r\n {"text": "leading space"}\n',
]


@pytest.mark.parametrize("block", [1, 3, 7, 1 << 20])
@pytest.mark.parametrize("content", CASES)
def test_store_equals_read_documents(tmp_path, monkeypatch, content, block):
    monkeypatch.setattr(store_module, "_SCAN_BYTES", block)  # newline scan across block edges
    path = tmp_path / "documents.jsonl"
    path.write_text(content, encoding="utf-8")
    expected = read_documents(path)
    store = DocumentStore(path)
    assert len(store) == len(expected) and list(store) == expected and store == expected
    assert [store[i] for i in range(len(store))] == expected
    if expected:
        assert store[-1] == expected[-1] and store[0:2] == expected[0:2]
        with pytest.raises(IndexError):
            store[len(store)]


def test_store_skip_metadata_pickle_and_offsets(tmp_path):
    docs = [Document(f"Title {i}", i, {"definition": f"d{i}" * 50}) for i in range(1000)]
    write_documents(docs, tmp_path / "d.jsonl")
    store = DocumentStore(tmp_path / "d.jsonl")
    assert store == docs and store != docs[:-1] and store != "not a sequence"
    light = DocumentStore(tmp_path / "d.jsonl", skip_metadata=True)
    assert light[7] == Document("Title 7", 7, {}) and all(d.metadata == {} for d in light)
    again = pickle.loads(pickle.dumps(store))
    assert again[999] == docs[999]
    offsets = line_offsets(tmp_path / "d.jsonl")
    assert offsets.dtype.name == "int64" and len(offsets) == 1001
    assert offsets[-1] == (tmp_path / "d.jsonl").stat().st_size
    assert json.loads((tmp_path / "d.jsonl").read_bytes()[offsets[3] : offsets[4]])["id"] == 3
