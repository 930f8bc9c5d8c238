"""`relik-jax index build`: same vectors and top-k as `Retriever.build_index`, resumable after SIGKILL with a
byte-identical result, and the folder loads in relik 1.0.7 (reference venv)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from flax import nnx
from reference_harness import ensure_reference_venv

from relik_jax.cli import main
from relik_jax.models.bert import BertConfig
from relik_jax.retriever.build import build_index
from relik_jax.retriever.encoder import GoldenRetrieverModel, Retriever, resolve_encoder, save_encoder
from relik_jax.retriever.index import DocumentIndex, load_index, read_documents

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    """A random tiny BERT retriever encoder with MiniLM's tokenizer (fast to run, real tokenization)."""
    folder = tmp_path_factory.mktemp("encoder")
    config = BertConfig.from_dict(dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                       intermediate_size=64, max_position_embeddings=128, type_vocab_size=2,
                                       layer_norm_eps=1e-12, hidden_act="gelu"))
    save_encoder(GoldenRetrieverModel(config, rngs=nnx.Rngs(0)), config, folder,
                 tokenizer_folder=resolve_encoder("all-MiniLM-L6-v2"))
    return folder


def _kb(path: Path, n: int) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"text": f"Entity {i} " + "word " * (i % 13), "id": i,
                                "metadata": {"definition": f"thing number {i % 97} é"}}) + "\n")
    return path


def _cli(encoder: Path, kb: Path, out: Path, *extra: str) -> list[str]:
    return ["index", "build", "--encoder", str(encoder), "--documents", str(kb), "--out", str(out),
            "--metadata-fields", "definition", *extra]


def test_build_matches_build_index_and_loads_both_ways(tmp_path, encoder):
    kb = _kb(tmp_path / "kb.jsonl", 700)
    main(_cli(encoder, kb, tmp_path / "idx", "--dtype", "fp32", "--chunk-rows", "64", "--batch-size", "32"))
    built = DocumentIndex.load(tmp_path / "idx")
    assert built.embeddings.dtype == np.float32 and built.search_dtype == "float32"
    retriever = Retriever.from_pretrained(encoder, passage_batch_size=32)
    memory = retriever.build_index(read_documents(kb), ["definition"], progress=None)
    np.testing.assert_array_equal(built.embeddings, memory.embeddings)  # the same batches: bit-identical
    queries = retriever.encode_questions([f"Entity {i} word word" for i in range(0, 700, 37)])
    np.testing.assert_array_equal(built.search(queries, 50)[1], memory.search(queries, 50)[1])
    assert built.documents == memory.documents and built.passages() == memory.passages()
    reference_view = DocumentIndex.from_reference(tmp_path / "idx")  # the same folder read as a reference one
    np.testing.assert_array_equal(reference_view.embeddings, built.embeddings)
    assert load_index(tmp_path / "idx").metadata_fields == ["definition"]
    main(_cli(encoder, kb, tmp_path / "idx", "--dtype", "fp32", "--chunk-rows", "64", "--batch-size", "32"))
    assert not (tmp_path / "idx" / ".build").exists()  # second run: up to date, nothing redone


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in ("embeddings.pt", "documents.jsonl")}


# Kills itself with SIGKILL inside the 3rd progress commit, after chunk 3's vectors are on disk but before the state
# says so: the resumed run must redo that chunk and still write the same bytes.
KILL_IN_COMMIT = textwrap.dedent("""
    import os, signal, sys
    from relik_jax.retriever import build
    from relik_jax.cli import main
    real, calls = build.commit_progress, []
    def commit(work, state):
        calls.append(state)
        if len(calls) == 4:  # the 1st commit is the empty state
            os.kill(os.getpid(), signal.SIGKILL)
        real(work, state)
    build.commit_progress = commit
    main(sys.argv[1:])
""")


def test_kill_9_and_resume_gives_identical_result(tmp_path, encoder):
    kb = _kb(tmp_path / "kb.jsonl", 1500)
    args = ["--chunk-rows", "32", "--batch-size", "16"]
    main(_cli(encoder, kb, tmp_path / "straight", *args))
    expected = _files(tmp_path / "straight")
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}

    # 1. killed at a known point (between writing a chunk and recording it)
    out = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILL_IN_COMMIT, *_cli(encoder, kb, out, *args)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    state = json.loads((out / ".build" / "state.json").read_text())
    assert state["rows_done"] == 64 and not (out / "embeddings.pt").exists()
    main(_cli(encoder, kb, out, *args))
    assert _files(out) == expected and not (out / ".build").exists()

    # 2. killed from outside at whatever point it has reached once two chunks are done
    out = tmp_path / "killed-outside"
    proc = subprocess.Popen([sys.executable, "-m", "relik_jax.cli", *_cli(encoder, kb, out, *args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        state_file = out / ".build" / "state.json"
        if state_file.exists() and json.loads(state_file.read_text() or "{}").get("rows_done", 0) >= 64:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the build finished before it could be killed"
    done = json.loads((out / ".build" / "state.json").read_text())["rows_done"]
    assert 64 <= done < 1500
    main(_cli(encoder, kb, out, *args))
    assert _files(out) == expected


def test_settings_change_restarts_and_bad_inputs(tmp_path, encoder):
    kb = _kb(tmp_path / "kb.jsonl", 50)
    out = build_index(encoder, kb, tmp_path / "idx", chunk_rows=16, batch_size=8, progress=False, log=lambda _: None)
    (out / ".build").mkdir()  # a stale work folder of other settings is discarded, not resumed
    (out / ".build" / "state.json").write_text(json.dumps({"fingerprint": {"other": 1}, "rows_done": 16}))
    build_index(encoder, kb, out, dtype="bf16", chunk_rows=16, batch_size=8, progress=False, log=lambda _: None)
    assert str(DocumentIndex.load(out).embeddings.dtype) == "bfloat16"
    with pytest.raises(FileNotFoundError, match="documents"):
        build_index(encoder, tmp_path / "missing.jsonl", tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="backend"):
        build_index(encoder, kb, tmp_path / "x", backend="faiss", progress=False)


def test_scann_backend_build(tmp_path, encoder):
    kb = _kb(tmp_path / "kb.jsonl", 300)
    main(_cli(encoder, kb, tmp_path / "idx", "--backend", "scann", "--chunk-rows", "128"))
    index = DocumentIndex.load(tmp_path / "idx")
    assert index.backend == "scann" and (tmp_path / "idx" / "scann").is_dir()
    q = np.asarray(index.embeddings[:5], np.float32)
    assert index.recall_vs_exact(q, 10) == 1.0  # < brute_force_below rows: ScaNN scores exactly


REFERENCE_LOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from relik.retriever.indexers.inmemory import InMemoryDocumentIndex
    index = InMemoryDocumentIndex.from_pretrained(sys.argv[1], device="cpu", precision=None)
    docs = [index.documents.get_document_from_index(i) for i in range(len(index.documents))]
    np.save(sys.argv[2], index.embeddings.numpy())
    print(json.dumps({"n": len(docs), "metadata_fields": list(index.metadata_fields), "separator": index.separator,
                      "passages": [index.get_passage_from_document(d) for d in docs[:5]],
                      "ids": [d.id for d in docs]}))
""")


def test_built_folder_loads_in_the_reference(tmp_path, encoder):
    kb = _kb(tmp_path / "kb.jsonl", 200)
    main(_cli(encoder, kb, tmp_path / "idx", "--chunk-rows", "64"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(ensure_reference_venv()), "-c", REFERENCE_LOAD, str(tmp_path / "idx"),
                           str(tmp_path / "ref.npy")], env=env, capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = DocumentIndex.load(tmp_path / "idx")
    assert ref["n"] == 200 and ref["ids"] == list(range(200))
    assert ref["metadata_fields"] == ["definition"] and ref["separator"] == " <def> "
    assert ref["passages"] == ours.passages()[:5]
    # relik converts the stored fp16 vectors to fp32 on CPU: the same values
    np.testing.assert_array_equal(np.load(tmp_path / "ref.npy"), np.asarray(ours.embeddings, np.float32))
