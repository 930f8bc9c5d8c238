"""relik pipeline folders load as they are: a folder written by relik 1.0.7's `Relik.save_pretrained` (and the same
components laid out as a Hugging Face cache, addressed by repo id) loads with `Relik.from_pretrained` and annotates
exactly as the reference does when it loads that folder (tests/reference/make_pipeline_folders.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jax
import pytest
import yaml
from flax import nnx

from relik_jax import paths
from relik_jax.cli import main
from relik_jax.inference.pipeline import Relik

ORG = "relik-jax-test"


@pytest.fixture(autouse=True)
def conversion_cache(tmp_path, monkeypatch):
    """Conversions of local folders go under paths.CACHE: keep them in the test's folder."""
    monkeypatch.setattr(paths, "CACHE", tmp_path / "relik-jax-cache")


def expected(root: Path, name: str) -> tuple[list[str], list[dict]]:
    call = json.loads((root / "runs" / name / "call.json").read_text())
    return call["texts"], json.loads((root / "runs" / name / "outputs.json").read_text())


def assert_same(ours: list, reference: list[dict], name: str) -> None:
    """Spans (start, end, label) and triplets (boundaries, relation, confidence) as the reference's. Spans with
    end <= start (a reference EL quirk) are compared only where our output keeps them."""
    assert len(ours) == len(reference)
    n_spans = n_triplets = 0
    for doc, (out, ref) in enumerate(zip(ours, reference, strict=True)):
        want = {(s[0], s[1], s[2]) for s in ref["spans"]}
        got = {(s.start, s.end, s.label) for s in out.spans}
        if not any(s.end <= s.start for s in out.spans):
            want = {s for s in want if s[1] > s[0]}
        assert got == want, f"{name} doc {doc}: missing {sorted(want - got)[:5]}, extra {sorted(got - want)[:5]}"
        # [Reference quirk, tests/parity/test_pipeline_parity.py] a triplet's span labels follow set iteration
        # order where two labels share boundaries: compare boundaries, relation and confidence. Confidences are
        # rounded to 2 decimals by both; a probability at a rounding boundary (0.945) may round either way in
        # fp32, so they agree within one step.
        want_t = triplets((t["subject"][:2], t["label"], t["object"][:2], t["confidence"]) for t in ref["triplets"])
        got_t = triplets(((t.subject.start, t.subject.end), t.label, (t.object.start, t.object.end), t.confidence)
                         for t in out.triplets)
        assert want_t.keys() == got_t.keys(), f"{name} doc {doc}: triplets missing " \
            f"{sorted(want_t.keys() - got_t.keys())[:3]}, extra {sorted(got_t.keys() - want_t.keys())[:3]}"
        for key, confidences in want_t.items():
            assert len(confidences) == len(got_t[key]) and all(
                abs(a - b) < 0.0101 for a, b in zip(confidences, got_t[key], strict=True)), (name, doc, key)
        n_spans += len(want)
        n_triplets += sum(map(len, want_t.values()))
    assert n_spans > 0 and (name == "el" or n_triplets > 0), "fixtures must not be trivial"


def triplets(items) -> dict[tuple, list[float]]:
    """(subject boundaries, relation, object boundaries) -> its distinct confidences (rounded to 2), sorted."""
    out: dict[tuple, set[float]] = {}
    for subject, label, obj, confidence in items:
        out.setdefault((tuple(subject), label, tuple(obj)), set()).add(round(confidence, 2))
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.parametrize("name", ["el", "cie"])
def test_reference_pipeline_folder_annotates_like_the_reference(reference_pipelines_dir, name):
    manifest = json.loads((reference_pipelines_dir / "manifest.json").read_text())["pipelines"][name]
    folder = reference_pipelines_dir / manifest["folder"]
    # The index is searched as stored: fp32 here, as the reference searched it (an fp16 search of these fp32
    # vectors ranks some near-tied candidates differently, and the reader then links other titles).
    relik = Relik.from_pretrained(folder, local_files_only=True, device="cpu")
    cpu = jax.devices("cpu")[0]
    assert {leaf.device for leaf in jax.tree.leaves(nnx.state(relik.reader.model))} == {cpu}
    for retriever in relik.retrievers.values():
        assert retriever.index.devices == [cpu] and retriever.index.search_dtype == "float32"
    settings = manifest["settings"]
    assert (relik.config.top_k, relik.config.window_size, relik.config.window_stride) == \
        (settings["top_k"], settings["window_size"], settings["window_stride"])
    assert list(relik.config.metadata_fields) == settings.get("metadata_fields", [])
    assert relik.config.use_nme is (True if name == "el" else manifest["config_edits"]["reader"]["use_nme"])
    texts, reference = expected(reference_pipelines_dir, name)
    assert_same(relik(texts), reference, name)


def test_convert_command_writes_a_self_contained_folder(reference_pipelines_dir, tmp_path):
    manifest = json.loads((reference_pipelines_dir / "manifest.json").read_text())["pipelines"]["el"]
    out = tmp_path / "converted"
    main(["convert", "pipeline", str(reference_pipelines_dir / manifest["folder"]), str(out)])
    saved = json.loads((out / "relik.json").read_text())
    assert {k: saved[k] for k in manifest["settings"]} == manifest["settings"]
    assert saved["task"] == "span" and saved["use_nme"] is True
    assert (out / "reader" / "reader_config.json").is_file() and (out / "retriever-span" / "config.json").is_file()
    assert not (out / "index-span").is_symlink() and (out / "index-span" / "index.json").is_file()


def blob_tree(cache: Path, repo_id: str, files: dict[str, Path | str], commit: str) -> Path:
    """`models--org--name/{refs/main, snapshots/<commit>/<file> -> ../../blobs/<id>}` as huggingface_hub writes
    it (blobs here are links to the fixture files, or small texts)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    if snapshot.is_dir():  # one repo named twice (the cIE pipeline's tasks share an encoder)
        return snapshot
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    for rel, source in files.items():
        blob = repo / "blobs" / f"{commit[:8]}-{rel.replace('/', '_')}"
        if isinstance(source, Path):
            blob.unlink(missing_ok=True)
            blob.symlink_to(source.resolve())
        else:
            blob.write_text(source)
        target = snapshot / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(os.path.relpath(blob, target.parent))
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def files_of(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def hub_tree(cache: Path, reference_pipelines_dir: Path, name: str) -> str:
    """The reference pipeline `name` as hub repos: pipeline, reader (its backbone a hub id too), encoder, indexes."""
    folder = reference_pipelines_dir / "pipelines" / name
    config = yaml.safe_load((folder / "config.yaml").read_text())
    reader = Path(config["reader"]["transformer_model"])
    reader_config = json.loads((reader / "config.json").read_text())
    backbone = reader.parent.parent / reader_config["transformer_model"]
    reader_config["transformer_model"] = f"{ORG}/{backbone.name}"
    blob_tree(cache, f"{ORG}/{backbone.name}", {"config.json": backbone / "config.json"}, "b" * 40)
    reader_files = {**files_of(reader), "config.json": json.dumps(reader_config)}
    blob_tree(cache, f"{ORG}/{name}-reader", reader_files, "c" * 40)
    config["reader"]["transformer_model"] = f"{ORG}/{name}-reader"
    for task in config["retriever"]:
        encoder = Path(config["retriever"][task]["question_encoder"])
        blob_tree(cache, f"{ORG}/encoder", files_of(encoder), "d" * 40)
        config["retriever"][task]["question_encoder"] = f"{ORG}/encoder"
        index = Path(config["index"][task]["name_or_path"])
        blob_tree(cache, f"{ORG}/{index.name}", files_of(index), "e" * 40)
        config["index"][task]["name_or_path"] = f"{ORG}/{index.name}"
    blob_tree(cache, f"{ORG}/relik-{name}", {"config.yaml": yaml.safe_dump(config, sort_keys=False)}, "a" * 40)
    return f"{ORG}/relik-{name}"


def test_hub_cache_tree_by_repo_id(reference_pipelines_dir, tmp_path, monkeypatch):
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo_id = hub_tree(cache, reference_pipelines_dir, "cie")
    texts, reference = expected(reference_pipelines_dir, "cie")
    relik = Relik.from_pretrained(repo_id)
    assert_same(relik(texts), reference, "cie")
    # converted beside the pipeline's snapshot, keyed by the snapshots; a second load converts nothing
    repo = cache / f"models--{ORG}--relik-cie"
    converted = sorted((repo / "relik-jax").iterdir())
    assert len(converted) == 1 and (converted[0] / "relik.json").is_file()
    assert (converted[0] / "index-span").is_symlink()
    stamp = (converted[0] / "relik.json").stat().st_mtime_ns
    Relik.from_pretrained(repo_id)
    assert (converted[0] / "relik.json").stat().st_mtime_ns == stamp
    # a new snapshot of a component (refs/main moves on) converts again, into a new folder
    reader = cache / f"models--{ORG}--cie-reader"
    shutil.copytree(reader / "snapshots" / ("c" * 40), reader / "snapshots" / ("f" * 40), symlinks=True)
    (reader / "refs" / "main").write_text("f" * 40)
    Relik.from_pretrained(repo_id)
    assert len(list((repo / "relik-jax").iterdir())) == 2
