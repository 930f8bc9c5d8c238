"""Converter: reference reader folders -> our reader (exact weights), orbax round trip, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

from relik_jax.io import hf_io
from relik_jax.reader.convert import KNOWN_BACKBONES, backbone_config, load_reader, load_reference_reader, save_reader
from relik_jax.reader.model import ReaderConfig
from relik_jax.reader.reader import Reader
from relik_jax.text.windows import Window


def _reader_names(reference_dir: Path) -> list[str]:
    m = json.loads((reference_dir / "manifest.json").read_text())
    return sorted(m["el"])[:1] + sorted(n for n in m["triplet"] if n.startswith("cie"))[:1]


def _copy(reference_dir: Path, name: str, tmp_path: Path) -> Path:
    """A reader folder copy beside a link to the fixture backbones (its transformer_model is fixture-relative)."""
    (tmp_path / "backbones").symlink_to(reference_dir / "backbones")
    dest = tmp_path / "readers" / name
    shutil.copytree(reference_dir / "readers" / name, dest)
    return dest


def test_every_reference_tensor_is_used_exactly(reference_dir):
    for name in _reader_names(reference_dir):
        folder = reference_dir / "readers" / name
        cfg, model, tok, _ = load_reference_reader(folder)
        sd = hf_io.read_state_dict(folder)
        ours = hf_io.to_state_dict(model)
        assert set(ours) == set(sd), f"{name}: key sets differ: {sorted(set(ours) ^ set(sd))[:5]}"
        for k, v in sd.items():
            np.testing.assert_array_equal(ours[k], v, err_msg=f"{name}: {k}")
        assert "ned_start_classifier.1.weight" in ours and "ned_end_classifier.dense_0.weight" in ours
        assert tok.token_to_id("[E-0]" if cfg.is_span else "[R-0]") is not None


def test_orbax_round_trip_gives_identical_outputs(reference_dir, tmp_path):
    name = _reader_names(reference_dir)[1]  # cIE: the most heads
    cfg, model, tok, tok_cfg = load_reference_reader(reference_dir / "readers" / name)
    out = save_reader(tmp_path / "ours", cfg, model, tok, tok_cfg)
    assert (out / "reader_config.json").is_file() and (out / "params").is_dir()
    cfg2, model2, tok2, tok_cfg2 = load_reader(out)
    assert cfg2 == cfg and tok_cfg2 == tok_cfg
    a = nnx.state(model, nnx.Param).flat_state()
    b = dict(nnx.state(model2, nnx.Param).flat_state())
    for path, var in a:
        np.testing.assert_array_equal(np.asarray(var.get_value()), np.asarray(b[path].get_value()))
    # the reloaded reader still decodes exactly what the reference decoded
    windows = json.loads((reference_dir / "cie" / name / "windows_input.json").read_text())[:2]
    expected = json.loads((reference_dir / "cie" / name / "predictions.json").read_text())[:2]
    preds = Reader.from_folder(out).read([Window.from_dict(w) for w in windows])
    assert [sorted(list(s) for s in p.spans) for p in preds] == [sorted(e["predicted_spans"]) for e in expected]
    assert sum(len(p.spans) for p in preds) > 0


def test_missing_or_misshaped_tensor_is_named(reference_dir, tmp_path):
    name = _reader_names(reference_dir)[0]
    folder = _copy(reference_dir, name, tmp_path)
    weights = folder / "model.safetensors"
    sd = load_file(str(weights))
    missing = dict(sd)
    del missing["ed_end_projector.4.weight"]
    save_file(missing, str(weights))
    with pytest.raises(KeyError, match=r"ed_end_projector\.4\.weight"):
        load_reference_reader(folder)
    wrong = dict(sd)
    wrong["ned_start_classifier.1.bias"] = np.zeros(3, np.float32)
    save_file(wrong, str(weights))
    with pytest.raises(ValueError, match=r"ned_start_classifier\.1\.bias.*shape"):
        load_reference_reader(folder)
    extra = dict(sd)
    extra["re_classifier.1.weight"] = np.zeros((2, 2), np.float32)
    save_file(extra, str(weights))
    with pytest.raises(ValueError, match=r"unexpected tensors, first 're_classifier\.1\.weight'"):
        load_reference_reader(folder)


def test_config_errors_and_backbone_resolution(tmp_path):
    with pytest.raises(ValueError, match="architectures"):
        ReaderConfig.from_dict({"architectures": ["BertModel"]})
    cie = ReaderConfig.from_dict({"architectures": ["RelikReaderREModel"], "entity_type_loss": True,
                                  "add_entity_embedding": None, "additional_special_symbols_types": 76})
    assert cie.add_entity_embedding and not cie.is_span
    assert backbone_config("microsoft/deberta-v3-small", tmp_path)["num_hidden_layers"] == 6
    assert set(KNOWN_BACKBONES) >= {"microsoft/deberta-v3-base", "microsoft/deberta-v3-large"}
    with pytest.raises(FileNotFoundError, match="backbone_config"):
        backbone_config("nowhere/deberta", tmp_path)
