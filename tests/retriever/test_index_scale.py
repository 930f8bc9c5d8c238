"""The index at scale: memory-mapped vectors, the stored dtype on the device (one streamed copy, exact bytes),
fp16 recall against fp32, lazy documents, file-to-file conversion, bounded peak memory, the [scann] extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from relik_jax.cli import main
from relik_jax.retriever.index import Document, DocumentIndex, DocumentStore, write_documents

REPO = Path(__file__).resolve().parents[2]


def _clustered(n: int, d: int, seed: int = 0, centers: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d)).astype(np.float32) * 2
    return c[rng.integers(0, centers, n)] + rng.standard_normal((n, d)).astype(np.float32)


def _reference_folder(folder: Path, emb16: np.ndarray) -> list[Document]:
    folder.mkdir(parents=True)
    docs = [Document(f"Title {i}", i, {"definition": f"definition {i}"}) for i in range(len(emb16))]
    (folder / "config.yaml").write_text("_target_: relik.retriever.indexers.inmemory.InMemoryDocumentIndex\n"
                                        "metadata_fields:\n- definition\nseparator: ' <def> '\nname_or_path: x\n")
    torch.save(torch.from_numpy(emb16), folder / "embeddings.pt")  # as relik's save_pretrained writes it
    write_documents(docs, folder / "documents.jsonl")
    return docs


def _recall(got: np.ndarray, truth: np.ndarray) -> float:
    return sum(len(set(g) & set(t)) for g, t in zip(got.tolist(), truth.tolist(), strict=True)) / truth.size


def test_reference_index_is_mapped_and_searched_in_fp16(tmp_path):
    emb16 = _clustered(5000, 48).astype(np.float16)
    docs = _reference_folder(tmp_path / "ref", emb16)
    index = DocumentIndex.from_reference(tmp_path / "ref")
    assert isinstance(index.embeddings, np.memmap) and isinstance(index.documents, DocumentStore)
    assert index.search_dtype == "float16" and index.device_bytes == 0  # nothing on the device before a search
    q = _clustered(64, 48, seed=1)
    scores, rows = index.search(q, 100)
    assert index.device_bytes == 5000 * 48 * 2 and index.searcher.embeddings.dtype == np.float16
    # reference semantics: query cast to the index dtype, float32 accumulation
    expected = q.astype(np.float16).astype(np.float64) @ emb16.astype(np.float64).T
    np.testing.assert_allclose(scores, np.take_along_axis(expected, rows, 1), rtol=1e-3, atol=1e-2)
    truth = np.argsort(-(q @ emb16.astype(np.float32).T), axis=1, kind="stable")[:, :100]
    assert _recall(rows, truth) >= 0.999
    hits = index.retrieve(q[:2], 3)
    assert hits[0][0].document == docs[rows[0, 0]] and hits[0][0].row == rows[0, 0]
    as_list = DocumentIndex(docs, np.asarray(emb16)).retrieve(q[:2], 3)
    assert [[h.document for h in r] for r in hits] == [[h.document for h in r] for r in as_list]


def test_fp16_default_keeps_recall_against_fp32(tmp_path):
    emb = _clustered(30000, 96, seed=2)
    queries = emb[:300] + 0.3 * _clustered(300, 96, seed=3)
    fp32 = DocumentIndex([Document(str(i), i) for i in range(30000)], emb, dtype="fp32", chunk_size=4096)
    fp16 = DocumentIndex(fp32.documents, emb.astype(np.float16), chunk_size=4096)  # stored fp16 → fp16 search
    bf16 = fp32.with_backend("exact", dtype="bf16")
    _, truth = fp32.search(queries, 100)
    assert fp16.search_dtype == "float16" and _recall(fp16.search(queries, 100)[1], truth) >= 0.999
    assert _recall(bf16.search(queries, 100)[1], truth) >= 0.99  # bf16 keeps 8 bits of mantissa: a bit lower
    assert fp32.device_bytes == 30000 * 96 * 4 and bf16.device_bytes == 30000 * 96 * 2


def test_dtype_override_and_errors(tmp_path):
    _reference_folder(tmp_path / "ref", _clustered(100, 8).astype(np.float16))
    assert DocumentIndex.from_reference(tmp_path / "ref", dtype="fp32").search_dtype == "float32"
    assert DocumentIndex.from_reference(tmp_path / "ref", dtype="bfloat16").search_dtype == "bfloat16"
    with pytest.raises(ValueError, match="dtype"):
        DocumentIndex.from_reference(tmp_path / "ref", dtype="int8")


def test_convert_is_file_to_file(tmp_path):
    emb16 = _clustered(2000, 16).astype(np.float16)
    docs = _reference_folder(tmp_path / "ref", emb16)
    main(["convert", "index", str(tmp_path / "ref"), str(tmp_path / "ours")])
    settings = json.loads((tmp_path / "ours/index.json").read_text())
    assert settings["embeddings"] == "embeddings.npy" and settings["num_documents"] == 2000
    assert (tmp_path / "ours/documents.jsonl").read_bytes() == (tmp_path / "ref/documents.jsonl").read_bytes()
    ours = DocumentIndex.load(tmp_path / "ours")
    assert isinstance(ours.embeddings, np.memmap) and ours.embeddings.dtype == np.float16
    np.testing.assert_array_equal(ours.embeddings, emb16)
    q = _clustered(10, 16, seed=4)
    reference = DocumentIndex.from_reference(tmp_path / "ref")
    np.testing.assert_array_equal(ours.search(q, 20)[1], reference.search(q, 20)[1])
    assert ours.documents == docs
    ours.save(tmp_path / "ours")  # saving onto its own files leaves them intact
    np.testing.assert_array_equal(DocumentIndex.load(tmp_path / "ours").embeddings, emb16)


def test_sharded_fp16_with_rows_not_divisible_by_devices():
    code = textwrap.dedent("""
        import jax, numpy as np
        from relik_jax.retriever.search import ExactSearcher
        rng = np.random.default_rng(0)
        emb = rng.standard_normal((1003, 16)).astype(np.float16)
        q = rng.standard_normal((5, 16)).astype(np.float32)
        two = ExactSearcher(emb, dtype=None, chunk_size=64, transfer_rows=100)
        one = ExactSearcher(emb, dtype=None, chunk_size=64, devices=jax.local_devices()[:1])
        assert len(two.embeddings.sharding.device_set) == 2 and two.device_bytes == 1004 * 16 * 2
        assert one.device_bytes == 1003 * 16 * 2
        s2, r2 = two.search(q, 40)
        s1, r1 = one.search(q, 40)
        assert (r1 == r2).all() and (r2 < 1003).all(), (r1, r2)
        np.testing.assert_allclose(s1, s2, rtol=1e-6)  # other chunk shapes: fp32 sums may differ in the last bit
        print("OK")
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", PYTHONPATH=str(REPO),
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


# Peak RSS of loading a reference folder and putting it on the (CPU) device: one device copy plus bounded
# working memory; the old loader read the zip record whole, padded it, cast it to fp32 and kept the fp16 copy.
PEAK = textwrap.dedent("""
    import json, resource, sys
    import jax, numpy as np
    from relik_jax.retriever.index import DocumentIndex
    jax.numpy.zeros(1).block_until_ready()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    index = DocumentIndex.from_reference(sys.argv[1])
    index.searcher.embeddings.block_until_ready()
    index.search(np.ones((3, 768), np.float32), 10)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"delta_kb": peak - base, "device_bytes": index.device_bytes}))
""")


def test_loading_a_large_index_costs_one_copy(tmp_path):
    n, d = 196_608, 768  # 288 MiB of fp16
    folder = tmp_path / "ref"
    folder.mkdir()
    rng = np.random.default_rng(0)
    emb16 = np.concatenate([rng.standard_normal((16384, d), np.float32).astype(np.float16) for _ in range(12)])
    torch.save(torch.from_numpy(emb16), folder / "embeddings.pt")
    file_bytes = (folder / "embeddings.pt").stat().st_size
    del emb16
    (folder / "config.yaml").write_text("metadata_fields: []\nseparator: null\n")
    with open(folder / "documents.jsonl", "w") as f:
        f.writelines(f'{{"text": "t{i}", "id": {i}}}\n' for i in range(n))
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", PEAK, str(folder)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["device_bytes"] == n * d * 2
    assert result["delta_kb"] * 1024 <= 1.25 * file_bytes + 64 * 2**20, (result, file_bytes)


def test_scann_backend_without_scann_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scann", None)  # `import scann` now raises ImportError
    index = DocumentIndex([Document("a", 0)], np.ones((1, 4), np.float32), backend="scann")
    with pytest.raises(ImportError, match=r"pip install 'relik-jax\[scann\]'"):
        index.search(np.ones((1, 4), np.float32), 1)
