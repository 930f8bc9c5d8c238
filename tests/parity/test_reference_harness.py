"""The reference fixtures exist, are self-consistent and non-trivial (so parity tests built on them can fail).

Only numpy/json here: the fixtures were written by the reference venv (relik 1.0.7, torch), not this one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _batches(folder: Path) -> list[tuple[dict[str, np.ndarray], dict]]:
    files = sorted(folder.glob("batch_*.npz"))
    assert files, f"no batches in {folder}"
    out = []
    for f in files:
        with np.load(f) as z:
            arrays = {k: z[k] for k in z.files}
        out.append((arrays, _json(f.with_suffix(".json"))))
    return out


@pytest.fixture(scope="module")
def manifest(reference_dir: Path) -> dict:
    return _json(reference_dir / "manifest.json")


def test_manifest_and_versions(reference_dir: Path, manifest: dict) -> None:
    assert (reference_dir / "COMPLETE").exists()
    assert manifest["format_version"] == 1
    assert manifest["versions"]["transformers"] == "4.41.2"
    assert manifest["versions"]["torch"].startswith("2.13.0")
    assert set(manifest) >= {"el", "triplet", "retriever", "pipeline", "backbones", "spm"}


def test_reader_checkpoints_are_reference_layout(reference_dir: Path, manifest: dict) -> None:
    readers = {**manifest["el"], **manifest["triplet"]}
    assert len(manifest["el"]) >= 2 and len(manifest["triplet"]) >= 4
    for name, info in readers.items():
        folder = reference_dir / info["reader_dir"]
        config = _json(folder / "config.json")
        want = "RelikReaderSpanModel" if name.startswith("el") else "RelikReaderREModel"
        assert config["architectures"] == [want], name
        assert config["model_type"] == "relik-reader"
        # transformer_model is relative to the fixture root and names a backbone folder there
        backbone = reference_dir / config["transformer_model"]
        assert (backbone / "config.json").exists() and (backbone / "spm.model").exists(), name
        for f in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "spm.model"):
            assert (folder / f).exists(), f"{name}: missing {f}"
        if name.startswith("cie"):
            assert config["entity_type_loss"] and config["add_entity_embedding"]
            assert config["additional_special_symbols_types"] > 0


@pytest.mark.parametrize("reader", ["el-h64-d32", "el-h128-d48"])
def test_el_fixtures_nontrivial(reference_dir: Path, manifest: dict, reader: str) -> None:
    folder = reference_dir / "el" / reader
    docs = _json(folder / "documents.json")
    windows_in = _json(folder / "windows_input.json")
    preds = _json(folder / "predictions.json")
    assert len(preds) == len(windows_in) == manifest["el"][reader]["n_input_windows"]
    spans = [s for p in preds for s in p["predicted_spans"]]
    assert spans and len({s[2] for s in spans}) > 3, "expected spans with varied labels"
    for p in preds:  # char offsets are absolute document offsets
        text = docs["texts"][p["doc_id"]]
        for start, end, label in p["predicted_spans"]:
            # EL ends are not constrained to follow the start (reference quirk): end < start happens
            assert 0 <= start < len(text) and 0 < end <= len(text) and label != "--NME--"
    assert any(s[0] < s[1] for s in spans) and any(s[1] <= s[0] for s in spans)
    # trimming: the one-window `trim` document was split in several candidate patches
    trim_doc = len(docs["texts"]) - 1
    trim_windows = [p for p in preds if p["doc_id"] == trim_doc]
    assert len(trim_windows) == 1 and len(trim_windows[0]["patches"]) > 1
    counts = set()
    for arrays, meta in _batches(folder / "batches"):
        b, length = arrays["input_ids"].shape
        assert arrays["ned_start_logits"].shape == (b, length, 2)
        assert len(meta["window_index"]) == b
        n_cands = {len(c) for c in meta["predictable_candidates"]}
        assert len(n_cands) == 1  # the reference batches rows with equal candidate counts only
        counts |= n_cands
        # CLS + one symbol per predictable candidate (--NME-- included)
        assert (arrays["special_symbols_mask"].sum(1) == 1 + n_cands.pop()).all()
        assert (arrays["input_ids"][:, 0] == 1).all()  # [CLS]
        if "ed_logits" in arrays:
            assert arrays["ed_logits"].shape[0] == b and arrays["ed_logits"].shape[2] == 1 + len(
                meta["predictable_candidates"][0]
            )
            assert arrays["ned_end_logits"].shape == (
                int((arrays["ned_start_predictions"] > 0).sum()),
                length,
            )
    assert len(counts) > 1, "candidate counts should differ between batches"
    # trimmed patches hold fewer candidates than the document offered
    trim_meta = [m for _, m in _batches(folder / "batches") if trim_doc in m["doc_id"]]
    assert len(trim_meta) > 1
    assert all(
        len(c) < len(docs["candidates"][trim_doc]) + 1 for m in trim_meta for c in m["predictable_candidates"]
    )


@pytest.mark.parametrize("reader", ["re-h64-d32", "re-h128-d48", "cie-h64-d32", "cie-h128-d40"])
def test_triplet_fixtures_nontrivial(reference_dir: Path, manifest: dict, reader: str) -> None:
    kind = "cie" if reader.startswith("cie") else "re"
    folder = reference_dir / kind / reader
    docs = _json(folder / "documents.json")
    preds = _json(folder / "predictions.json")
    spans = [s for p in preds for s in p["predicted_spans"]]
    triplets = [t for p in preds for t in p["predicted_triplets"]]
    assert spans and triplets
    for p in preds:
        text = docs["texts"][p["doc_id"]]
        for start, end, _label in p["predicted_spans"]:
            assert 0 <= start < end <= len(text)
        for subj, relation, obj, prob in p["predicted_triplets"]:
            assert 0 <= subj < len(p["predicted_spans"]) and 0 <= obj < len(p["predicted_spans"])
            assert relation in docs["triplet_candidates"][p["doc_id"]] and prob > 0.5
    if kind == "cie":
        assert len({s[2] for s in spans}) > 2, "cIE spans should carry varied entity labels"
    counts = set()
    for arrays, meta in _batches(folder / "batches"):
        b = arrays["input_ids"].shape[0]
        # no RE candidate truncation (1.0.7 bug #7): every relation candidate has its symbol
        assert [int(n) for n in arrays["special_symbols_mask"].sum(1)] == [
            len(c) for c in meta["triplet_candidates"]
        ]
        counts.add(len(meta["triplet_candidates"][0]))
        if kind == "cie":
            # --NME-- was inserted in front of the entity candidates (use_nme)
            assert [int(n) for n in arrays["special_symbols_mask_entities"].sum(1)] == [
                len(c) for c in meta["span_candidates"]
            ]
            assert all(c[0] == "--NME--" for c in meta["span_candidates"])
        if "re_logits" in arrays and arrays["re_logits"].ndim == 5:
            s = arrays["re_logits"].shape[1]
            assert arrays["re_logits"].shape == (b, s, s, len(meta["triplet_candidates"][0]), 2)
    assert len(counts) > 1


def test_retriever_fixtures(reference_dir: Path, manifest: dict) -> None:
    for name, info in manifest["retriever"].items():
        folder = reference_dir / "retriever" / name
        with np.load(folder / "topk.npz") as z:
            ids, scores, q, p = z["ids"], z["scores"], z["query_vectors"], z["passage_vectors"]
        n_passages = sum(
            1 for _ in open(reference_dir / info["index_dir"] / "documents.jsonl", encoding="utf-8")
        )
        assert n_passages == info["n_passages"] == p.shape[0]
        assert (reference_dir / info["index_dir"] / "embeddings.pt").exists()
        assert (reference_dir / info["encoder_dir"] / "config.json").exists()
        k = min(100, n_passages)
        assert ids.shape == scores.shape == (info["n_queries"], k)
        assert (np.diff(scores, axis=1) <= 0).all()  # sorted best first
        assert ((ids >= 0) & (ids < n_passages)).all()
        # scores are the raw dot products of the pooled vectors (ids equal row positions here)
        recomputed = np.einsum("qd,qkd->qk", q.astype(np.float64), p[ids].astype(np.float64))
        np.testing.assert_allclose(recomputed, scores, rtol=1e-4, atol=1e-3)
        if name != "minilm-relations":
            assert n_passages >= 5000


def test_pipeline_fixtures(reference_dir: Path, manifest: dict) -> None:
    for name in ("el", "cie"):
        outputs = _json(reference_dir / "pipeline" / name / "outputs.json")
        call = _json(reference_dir / "pipeline" / name / "call.json")
        assert [o["text"] for o in outputs] == call["texts"]
        assert sum(len(o["spans"]) for o in outputs) > 0
        assert any(len(o["windows"]) > 1 for o in outputs), "a multi-window document is expected"
        for o in outputs:
            for start, end, _label, text in o["spans"]:
                assert o["text"][start:end] == text
        if name == "cie":
            assert sum(len(o["triplets"]) for o in outputs) > 0


@pytest.mark.parametrize("reader", ["el-h64-d32", "el-h128-d48", "re-h64-d32", "cie-h128-d40"])
def test_saved_reader_files_reproduce_reference_inputs(reference_dir: Path, reader: str) -> None:
    """The files a port loads (tokenizer.json via `tokenizers`, model.safetensors via safetensors.numpy) give
    the reference's token ids and the resized embedding; word-by-word tokenization as in the reference."""
    import safetensors.numpy
    import tokenizers

    kind = "el" if reader.startswith("el") else ("cie" if reader.startswith("cie") else "re")
    tok = tokenizers.Tokenizer.from_file(str(reference_dir / "readers" / reader / "tokenizer.json"))
    config = _json(reference_dir / "readers" / reader / "config.json")
    weights = safetensors.numpy.load_file(str(reference_dir / "readers" / reader / "model.safetensors"))
    backbone = _json(reference_dir / config["transformer_model"] / "config.json")
    rows = (
        backbone["vocab_size"]
        + config["additional_special_symbols"]
        + config["additional_special_symbols_types"]
    )
    assert weights["transformer_model.embeddings.word_embeddings.weight"].shape == (
        rows,
        backbone["hidden_size"],
    )
    windows = _json(reference_dir / kind / reader / "windows_output.json")
    for arrays, meta in _batches(reference_dir / kind / reader / "batches"):
        for row, w in enumerate(meta["window_index"]):
            words = windows[w]["words"]
            text_ids = [i for word in words for i in tok.encode(word, add_special_tokens=False).ids]
            ref = windows[w]["tokens"]
            ids = arrays["input_ids"][row]
            if kind == "el":  # tokens = [CLS] text [SEP]; the row continues with the candidates
                assert ref == [1, *text_ids, 2]
                assert ids[: len(ref)].tolist() == ref
            else:  # tokens = text [SEP] candidates [SEP]; the row is [CLS] + tokens
                assert ref[: len(text_ids) + 1] == [*text_ids, 2]
                assert ids[1 : len(ref) + 1].tolist() == ref and ids[0] == 1
