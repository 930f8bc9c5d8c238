"""Pipeline names -> local folders: the Hugging Face cache layout, relik's config.yaml, and the one error that names
every repository an offline user must fetch (no network: hub-shaped folders are built here)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import jax
import pytest
import yaml

from relik_jax import paths
from relik_jax.inference import hub
from relik_jax.inference.hub import Fetcher, MissingRepositories, cached_snapshot, hub_cache_dir, is_repo_id
from relik_jax.inference.pipeline import Relik, RelikConfig
from relik_jax.inference.pretrained import (
    conversion_folder,
    parse_reference_config,
    pretrained_folder,
    resolve_device,
)

# sapienzanlp/relik-entity-linking-large (commit 8e0d408, shared/reference/relik-reference.md) + use_nme
EL_CONFIG = {
    "_target_": "relik.inference.annotator.Relik",
    "retriever": {"span": {"_target_": "relik.retriever.pytorch_modules.model.GoldenRetriever",
                           "question_encoder": "sapienzanlp/relik-retriever-e5-base-v2-aida-blink-encoder"}},
    "index": {"span": {"_target_": "relik.retriever.indexers.inmemory.InMemoryDocumentIndex.from_pretrained",
                       "name_or_path": "sapienzanlp/relik-retriever-e5-base-v2-aida-blink-wikipedia-index"}},
    "reader": {"_target_": "relik.reader.pytorch_modules.span.RelikReaderForSpanExtraction",
               "transformer_model": "sapienzanlp/relik-reader-deberta-v3-large-aida", "use_nme": True},
    "task": "SPAN", "metadata_fields": [], "top_k": 100, "window_size": 32, "window_stride": 16,
}
EL_REPOS = ["sapienzanlp/relik-reader-deberta-v3-large-aida",
            "sapienzanlp/relik-retriever-e5-base-v2-aida-blink-encoder",
            "sapienzanlp/relik-retriever-e5-base-v2-aida-blink-wikipedia-index"]
CIE_CONFIG = {
    "retriever": {"span": {"question_encoder": "relik-ie/encoder-e5-base-v2-wikipedia-matryoshka"},
                  "triplet": {"question_encoder": "relik-ie/encoder-e5-small-v2-wikipedia-relations"}},
    "index": {"span": {"name_or_path": "relik-ie/index-e5-base-v2-wikipedia-matryoshka"},
              "triplet": {"name_or_path": "relik-ie/encoder-e5-small-v2-wikipedia-relations-index"}},
    "reader": {"_target_": "relik.reader.pytorch_modules.triplet.RelikReaderForTripletExtraction",
               "transformer_model": "relik-ie/relik-reader-deberta-v3-small-cie-wikipedia", "use_nme": True},
    "task": "BOTH", "metadata_fields": [], "top_k": 100, "window_size": 64, "window_stride": 32,
}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty HF cache, offline, and our conversion cache, all under tmp_path."""
    root = tmp_path / "hf" / "hub"
    root.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(paths, "CACHE", tmp_path / "relik-jax-cache")
    return root


def snapshot(cache: Path, repo_id: str, files: dict[str, str], commit: str = "a" * 40, ref: str = "main") -> Path:
    """A repo in the huggingface_hub cache layout (plain files instead of blob links: lookups do not care)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    folder = repo / "snapshots" / commit
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return folder


# ------------------------------------------------------------------------------------------------ cache layout
def test_hub_cache_dir_follows_the_environment_at_call_time(tmp_path, monkeypatch):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    assert hub_cache_dir() == Path.home() / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hub_cache_dir() == tmp_path / "hub"


def test_repo_ids_and_paths():
    assert is_repo_id("sapienzanlp/relik-entity-linking-large") and is_repo_id("bert-base-uncased")
    assert not any(map(is_repo_id, ["/abs/folder", "a/b/c", "../up", "./here", "org/../x", ""]))
    assert hub.snapshot_of(Path("/c/models--org--name/snapshots/abc/sub/file")) == ("org/name", "abc")
    assert hub.snapshot_of(Path("/plain/folder")) is None


@pytest.mark.parametrize("with_hub", [True, False])
def test_cached_snapshot_with_and_without_huggingface_hub(cache, monkeypatch, with_hub):
    if not with_hub:  # the same lookup on the cache layout when the [hub] extra is absent
        monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    main = snapshot(cache, "org/name", {"config.json": "{}"})
    other = snapshot(cache, "org/name", {"config.json": "{}"}, commit="b" * 40, ref="v2")
    assert cached_snapshot("org/name", cache_dir=cache) == main
    assert cached_snapshot("org/name", "v2", cache_dir=cache) == other
    assert cached_snapshot("org/name", "b" * 40, cache_dir=cache) == other
    assert cached_snapshot("org/other", cache_dir=cache) is None


# ------------------------------------------------------------------------------------------------ config.yaml
def test_reference_config_settings_and_components():
    p = parse_reference_config(EL_CONFIG)
    assert p.settings == {"task": "span", "top_k": 100, "window_size": 32, "window_stride": 16,
                          "metadata_fields": [], "use_nme": True, "relation_threshold": None}
    assert p.reader == EL_REPOS[0]
    assert p.encoders == {"span": EL_REPOS[1]} and p.indexes == {"span": EL_REPOS[2]}
    assert set(p.settings) <= {f.name for f in dataclasses.fields(RelikConfig)}
    cie = parse_reference_config(CIE_CONFIG)
    assert cie.settings["task"] == "both" and cie.settings["use_nme"] is True
    assert set(cie.encoders) == set(cie.indexes) == {"span", "triplet"}
    RelikConfig(**cie.settings)


def test_reference_config_defaults_follow_relik():
    # relik's triplet reader defaults to use_nme False whatever its checkpoint says; the span reader to True
    re_config = {**CIE_CONFIG, "task": "TRIPLET", "reader": {"transformer_model": "org/re-reader"}}
    assert parse_reference_config(re_config).settings["use_nme"] is False
    assert parse_reference_config({"reader": "org/el", "task": "span"}).settings["use_nme"] is True
    # no stride: windows without overlap; "none": one window per document; bare strings for the sections
    p = parse_reference_config({"reader": "org/el", "retriever": "org/enc", "index": "org/idx", "task": "span",
                                "window_size": 20, "window_stride": None, "top_k": None,
                                "metadata_fields": ["definition"], "relation_threshold": 0.3})
    assert (p.settings["window_size"], p.settings["window_stride"], p.settings["top_k"]) == (20, 20, 100)
    assert p.settings["metadata_fields"] == ["definition"] and p.settings["relation_threshold"] == 0.3
    assert p.encoders == {"span": "org/enc"} and p.indexes == {"span": "org/idx"}
    assert parse_reference_config({"reader": "r", "window_size": "none"}).settings["window_size"] == "none"
    with pytest.raises(ValueError, match="sentence"):
        parse_reference_config({"reader": "r", "window_size": "sentence"})
    with pytest.raises(ValueError, match="task"):
        parse_reference_config({"reader": "r", "task": "ner"})


# ------------------------------------------------------------------------------------------------ errors
def test_offline_error_names_every_missing_repo_and_how_to_fetch_it(cache):
    snapshot(cache, "sapienzanlp/relik-entity-linking-large", {"config.yaml": yaml.safe_dump(EL_CONFIG)})
    with pytest.raises(MissingRepositories) as err:
        Relik.from_pretrained("sapienzanlp/relik-entity-linking-large")  # HF_HUB_OFFLINE=1: no download tried
    message = str(err.value)
    assert "3 component(s)" in message
    for repo in EL_REPOS:
        assert f"hf download {repo}\n" in message
        assert f"snapshot_download({repo!r}" in message
    assert "reader" in message and "span document index" in message and "not in the local cache" in message
    assert isinstance(err.value, FileNotFoundError) and len(err.value.missing) == 3


def test_offline_error_for_the_pipeline_itself(cache):
    with pytest.raises(MissingRepositories) as err:
        Relik.from_pretrained("relik-ie/relik-cie-small", local_files_only=True)
    assert [m.name for m in err.value.missing] == ["relik-ie/relik-cie-small"]
    assert "hf download relik-ie/relik-cie-small" in str(err.value)


def test_incomplete_snapshots_missing_local_paths_and_backbones_are_reported_together(cache, tmp_path):
    config = {**CIE_CONFIG, "index": {"span": {"name_or_path": str(tmp_path / "no-such-index")},
                                      "triplet": {"name_or_path": "relik-ie/relations-index"}}}
    snapshot(cache, "relik-ie/relik-cie-small", {"config.yaml": yaml.safe_dump(config)})
    # the reader is cached (its backbone is not), one encoder only has its config.json
    reader = {"config.json": json.dumps({"transformer_model": "org/unknown-backbone"}), "model.safetensors": ""}
    snapshot(cache, CIE_CONFIG["reader"]["transformer_model"], reader)
    snapshot(cache, "relik-ie/encoder-e5-base-v2-wikipedia-matryoshka", {"config.json": "{}"})
    with pytest.raises(MissingRepositories) as err:
        pretrained_folder("relik-ie/relik-cie-small", local_files_only=True)
    reasons = {m.name: m.reason for m in err.value.missing}
    assert set(reasons) == {"relik-ie/encoder-e5-base-v2-wikipedia-matryoshka",
                            "relik-ie/encoder-e5-small-v2-wikipedia-relations", str(tmp_path / "no-such-index"),
                            "relik-ie/relations-index", "org/unknown-backbone"}
    assert "incomplete" in reasons["relik-ie/encoder-e5-base-v2-wikipedia-matryoshka"]
    assert reasons[str(tmp_path / "no-such-index")] == "no such local folder"
    message = str(err.value)
    assert "hf download org/unknown-backbone config.json" in message  # only the config of a backbone is needed
    assert f"hf download {tmp_path}" not in message  # a local path is not a repo to download


def test_downloads_when_allowed_and_reports_failures(cache, monkeypatch):
    snapshot(cache, "org/pipeline", {"relik.json": "{}"})
    calls = []

    def fake_download(repo_id, revision=None, cache_dir=None, allow_patterns=None):
        calls.append(repo_id)
        if repo_id == "org/unreachable":
            raise ConnectionError("no route to host")
        return snapshot(cache_dir, repo_id, {"config.json": "{}", "model.safetensors": ""})

    monkeypatch.setattr(hub, "download", fake_download)
    fetcher = Fetcher(local_files_only=False, cache_dir=cache)
    assert fetcher.local("org/pipeline", "pipeline", [["relik.json"]]) == cache / "models--org--pipeline" / \
        "snapshots" / ("a" * 40)  # cached: no download
    got = fetcher.local("org/encoder", "encoder", [["config.json"], ["model.safetensors"]])
    assert got is not None and got.is_dir() and calls == ["org/encoder"]
    assert fetcher.local("org/unreachable", "reader") is None
    with pytest.raises(MissingRepositories, match="download failed: ConnectionError: no route to host"):
        fetcher.raise_missing("test")


def test_our_folder_by_path_or_hub_id_is_used_as_it_is(cache, tmp_path):
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "relik.json").write_text("{}")
    assert pretrained_folder(ours) == ours
    hosted = snapshot(cache, "org/ours", {"relik.json": "{}"})
    assert pretrained_folder("org/ours") == hosted
    (tmp_path / "neither").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks relik.json or config.yaml"):
        pretrained_folder(tmp_path / "neither")


def test_relative_component_paths_resolve_against_the_pipeline_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipe" / "reader").mkdir(parents=True)
    fetcher = Fetcher(local_files_only=True, bases=[tmp_path / "pipe"])
    assert fetcher.local("reader", "reader") == tmp_path / "pipe" / "reader"
    assert fetcher.local("pipe/reader", "reader") == tmp_path / "pipe" / "reader"  # the working directory


# ------------------------------------------------------------------------------------------------ cache folders
def test_conversions_live_beside_the_snapshot_else_in_our_cache(cache, tmp_path, monkeypatch):
    folder = snapshot(cache, "org/pipe", {"config.yaml": "{}"})
    assert conversion_folder(folder, "org/pipe", "k1") == cache / "models--org--pipe" / "relik-jax" / "k1"
    assert conversion_folder(tmp_path, str(tmp_path), "k2").parent == paths.CACHE / "pipelines"
    read_only = snapshot(cache, "org/read-only", {"config.yaml": "{}"})
    os.chmod(read_only.parent.parent, 0o555)
    try:
        with monkeypatch.context() as m:
            if os.geteuid() == 0:  # root writes anywhere: let the check answer as it would for a user
                m.setattr(os, "access", lambda path, mode: False)
            assert conversion_folder(read_only, "org/read-only", "k3") == paths.CACHE / "pipelines" / \
                "org--read-only-k3"
    finally:
        os.chmod(read_only.parent.parent, 0o755)


def test_devices():
    cpu = jax.devices("cpu")[0]
    assert resolve_device(None) is None and resolve_device(cpu) is cpu
    assert resolve_device("cpu") == cpu and resolve_device("cpu:0") == cpu
    with pytest.raises(ValueError, match="no such JAX platform"):
        resolve_device("no-such-platform")
    with pytest.raises(ValueError, match="device"):
        resolve_device("cpu:99")
