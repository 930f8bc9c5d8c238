"""Document index: exact search vs numpy, sharded path, ScaNN recall, save/load and reference-format round
trips."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from relik_jax.io import torch_pickle
from relik_jax.retriever.index import Document, DocumentIndex, ExactSearcher, ScannParams

REPO = Path(__file__).resolve().parents[2]


def _clustered(n: int, d: int, seed: int = 0, centers: int = 50) -> np.ndarray:
    """Vectors around a few centres, like passage embeddings of a real KB (not isotropic noise)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d)).astype(np.float32) * 3
    return (c[rng.integers(0, centers, n)] + rng.standard_normal((n, d)).astype(np.float32)).astype(
        np.float32
    )


def _numpy_top_k(queries: np.ndarray, emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries.astype(np.float64) @ emb.astype(np.float64).T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, rows, 1), rows


def _docs(n: int) -> list[Document]:
    return [Document(f"Title {i} é", i, {"definition": f"definition of {i}"}) for i in range(n)]


@pytest.mark.parametrize("chunk", [64, 100_000])
def test_exact_matches_numpy(chunk):
    emb, q = _clustered(1000, 32), _clustered(7, 32, seed=1)
    scores, rows = ExactSearcher(emb, chunk_size=chunk).search(q, 25)
    ref_scores, ref_rows = _numpy_top_k(q, emb, 25)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-4)


def test_exact_ties_keep_lower_row_and_k_clamped():
    emb = np.ones((10, 4), np.float32)
    scores, rows = ExactSearcher(emb, chunk_size=8).search(np.ones((1, 4), np.float32), 50)
    assert rows.tolist() == [list(range(10))]  # k clamped to N, ties in row order (as a global stable top-k)
    assert np.all(scores == 4.0)


def test_bf16_index_and_matryoshka_truncation():
    emb = _clustered(500, 16)
    q = np.concatenate([_clustered(3, 16, seed=2), np.full((3, 8), 1e6, np.float32)], 1)  # extra dims ignored
    _, rows = ExactSearcher(emb, dtype="bfloat16").search(q, 5)
    _, ref = _numpy_top_k(q[:, :16], emb, 5)
    assert (rows[:, 0] == ref[:, 0]).all()
    with pytest.raises(ValueError, match="dim"):
        ExactSearcher(emb).search(np.zeros((1, 8), np.float32), 3)


def test_sharded_exact_search_on_two_devices():
    code = textwrap.dedent("""
        import jax, numpy as np
        from relik_jax.retriever.index import ExactSearcher
        assert jax.local_device_count() == 2
        rng = np.random.default_rng(0)
        emb = rng.standard_normal((1003, 16)).astype(np.float32)
        q = rng.standard_normal((5, 16)).astype(np.float32)
        ex = ExactSearcher(emb, chunk_size=64)
        assert len(ex.embeddings.sharding.device_set) == 2
        _, rows = ex.search(q, 40)
        ref = np.argsort(-(q @ emb.T), 1, kind="stable")[:, :40]
        assert (rows == ref).all(), (rows, ref)
        print("OK")
    """)
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        PYTHONPATH=str(REPO),
        JAX_PLATFORMS="cpu",
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


def test_scann_recall_against_exact():
    emb = _clustered(6000, 32)
    queries = emb[:50] + 0.5 * _clustered(50, 32, seed=3)
    index = DocumentIndex(
        _docs(6000),
        emb,
        ["definition"],
        backend="scann",
        scann_params=ScannParams(num_leaves=60, leaves_to_search=15),
        num_neighbors=20,
    )
    assert index.recall_vs_exact(queries, 20) >= 0.9


@pytest.mark.parametrize("backend", ["exact", "scann"])
def test_saved_and_loaded_index_returns_identical_results(tmp_path, backend):
    emb = _clustered(3000, 16)
    index = DocumentIndex(
        _docs(3000),
        emb,
        ["definition"],
        backend=backend,
        scann_params=ScannParams(num_leaves=40, leaves_to_search=8),
        num_neighbors=10,
    )
    q = _clustered(20, 16, seed=5)
    before = index.search(q, 10)
    index.save(tmp_path / "idx")
    loaded = DocumentIndex.load(tmp_path / "idx")
    after = loaded.search(q, 10)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_array_equal(before[0], after[0])
    assert loaded.documents == index.documents and loaded.passages()[0] == "Title 0 é <def> definition of 0"


def _write_reference_folder(folder: Path, emb16: np.ndarray, docs: list[Document]) -> None:
    """A reference-layout folder written with torch itself (as `InMemoryDocumentIndex.save_pretrained`
    does)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(
        "_target_: relik.retriever.indexers.inmemory.InMemoryDocumentIndex\n"
        "metadata_fields:\n- definition\nseparator: ' <def> '\nname_or_path: some/index\n"
    )
    torch.save(torch.from_numpy(emb16), folder / "embeddings.pt")
    with open(folder / "documents.jsonl", "w") as f:
        for d in docs:
            f.write(json.dumps(d.to_dict()) + "\n")


def test_reference_folder_round_trip_is_bit_identical(tmp_path):
    emb16 = _clustered(300, 24).astype(np.float16)
    docs = _docs(300)
    _write_reference_folder(tmp_path / "ref", emb16, docs)
    index = DocumentIndex.from_reference(tmp_path / "ref")
    assert index.embeddings.dtype == np.float16 and index.metadata_fields == ["definition"]
    assert index.separator == " <def> " and index.name_or_path == "some/index"
    np.testing.assert_array_equal(index.embeddings.view(np.uint16), emb16.view(np.uint16))
    index.to_reference(tmp_path / "out")
    again = DocumentIndex.from_reference(tmp_path / "out")
    np.testing.assert_array_equal(again.embeddings.view(np.uint16), emb16.view(np.uint16))
    assert again.documents == docs
    # documents.jsonl is byte-identical to the reference writer's; torch reads our embeddings.pt back exactly.
    assert (tmp_path / "out/documents.jsonl").read_bytes() == (tmp_path / "ref/documents.jsonl").read_bytes()
    back = torch.load(tmp_path / "out/embeddings.pt", weights_only=True)
    assert back.dtype == torch.float16 and torch.equal(back, torch.from_numpy(emb16))
    assert np.array_equal(
        torch_pickle.load(tmp_path / "out/embeddings.pt").view(np.uint16), emb16.view(np.uint16)
    )


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="documents"):
        DocumentIndex(_docs(3), np.zeros((4, 8), np.float32))
    with pytest.raises(FileNotFoundError, match="from_reference"):
        (tmp_path / "r").mkdir()
        (tmp_path / "r/config.yaml").write_text("{}")
        DocumentIndex.load(tmp_path / "r")
    with pytest.raises(KeyError, match="definition"):
        DocumentIndex([Document("x", 0)], np.zeros((1, 4), np.float32), ["definition"]).passages()
