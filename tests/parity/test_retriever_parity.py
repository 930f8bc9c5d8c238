"""Retriever parity with the reference GoldenRetriever (relik 1.0.7, PyTorch) on its own fixtures.

Fixtures (tests/reference_harness.py, built once by the reference venv): for a random-init BERT encoder and the
real all-MiniLM-L6-v2 weights, the saved encoder folder, the saved index folder (reference format, ≥ 5,000
passages `title <def> definition`), the pooled query and passage vectors and the top-100 per query.
We load the reference folders with our code, re-encode everything ourselves and compare.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from relik_jax.retriever.encoder import Retriever
from relik_jax.retriever.index import DocumentIndex

ATOL = 1e-5


def _manifest(reference_dir: Path) -> dict:
    return json.loads((reference_dir / "manifest.json").read_text())


def _check_top_k(ours: np.ndarray, ref_ids: np.ndarray, ref_scores: np.ndarray, q: np.ndarray, p: np.ndarray):
    """Identical top-K, allowing only swaps between passages whose reference scores tie to fp32 rounding."""
    exact_rows = 0
    for i, (a, b) in enumerate(zip(ours, ref_ids, strict=True)):
        if np.array_equal(a, b):
            exact_rows += 1
            continue
        scores = p.astype(np.float64) @ q[i].astype(np.float64)  # reference vectors, float64
        tol = 1e-6 * max(1.0, float(np.abs(ref_scores[i]).max()))
        for j in np.nonzero(a != b)[0]:
            assert abs(scores[a[j]] - scores[b[j]]) <= tol, (i, j, a[j], b[j], scores[a[j]], scores[b[j]])
    return exact_rows


# MiniLM passages are `title <def> definition` (~64 tokens): encoding all 5,200 on 2 CPU cores takes over a
# minute, so its passage vectors are checked on a fixed random subset and its top-k uses the reference passage
# vectors with our query vectors. The random BERT is small enough to check on the full KB.
@pytest.mark.parametrize(("name", "passage_subset"), [("random-bert", None), ("minilm", 384)])
def test_pooled_vectors_and_top_k_match_reference(reference_dir: Path, name: str, passage_subset: int | None):
    info = _manifest(reference_dir)["retriever"][name]
    qinfo = json.loads((reference_dir / "retriever" / name / "queries.json").read_text())
    with np.load(reference_dir / "retriever" / name / "topk.npz") as z:
        ref_ids, ref_scores = z["ids"], z["scores"]
        ref_q, ref_p = z["query_vectors"], z["passage_vectors"]
    assert info["n_passages"] >= 5000

    retriever = Retriever.from_pretrained(
        reference_dir / info["encoder_dir"],
        reference_dir / info["index_dir"],
        question_max_length=qinfo["query_max_length"],
        passage_max_length=qinfo["passage_max_length"],
        passage_batch_size=256,
    )
    index = retriever.index
    assert index.metadata_fields == ["definition"] and index.separator == " <def> "
    np.testing.assert_array_equal(index.embeddings, ref_p)  # the saved embeddings.pt, read without torch

    # Our passage vectors from the passage texts (title <def> definition), and our query vectors.
    rows = np.arange(len(ref_p))
    if passage_subset is not None:
        rows = np.sort(np.random.default_rng(0).choice(len(ref_p), passage_subset, replace=False))
    all_passages = index.passages()
    passages = retriever.encode_passages([all_passages[r] for r in rows], progress=None)
    np.testing.assert_allclose(passages, ref_p[rows], atol=ATOL, rtol=0)
    queries = retriever.encode_questions(qinfo["queries"])
    np.testing.assert_allclose(queries, ref_q, atol=ATOL, rtol=0)

    # Top-k with our exact search over the full KB (our passage vectors where we encoded all of them).
    kb_vectors = passages if passage_subset is None else ref_p
    ours = DocumentIndex(index.documents, kb_vectors).search(queries, qinfo["k"])[1]
    ours_ids = np.array([[index.documents[r].id for r in row] for row in ours])
    exact = _check_top_k(ours_ids, ref_ids, ref_scores, ref_q, ref_p)
    assert exact >= 0.9 * len(ref_ids)
    # And the reference's own vectors through our search give its ranking.
    ref_search = index.search(ref_q, qinfo["k"])[1]
    _check_top_k(
        np.array([[index.documents[r].id for r in row] for row in ref_search]), ref_ids, ref_scores, ref_q, ref_p
    )


def test_reference_index_folder_round_trip(reference_dir: Path, tmp_path: Path):
    info = _manifest(reference_dir)["retriever"]["minilm"]
    folder = reference_dir / info["index_dir"]
    index = DocumentIndex.from_reference(folder)
    index.to_reference(tmp_path / "out")
    again = DocumentIndex.from_reference(tmp_path / "out")
    assert again.embeddings.dtype == index.embeddings.dtype
    assert np.array_equal(again.embeddings.view(np.uint8), index.embeddings.view(np.uint8))
    assert again.documents == index.documents
    assert again.metadata_fields == index.metadata_fields and again.separator == index.separator
    assert (tmp_path / "out/documents.jsonl").read_bytes() == (folder / "documents.jsonl").read_bytes()
