"""Hugging Face folders <-> NNX modules: config.json + model.safetensors / pytorch_model.bin, both ways.

Our modules mirror HF attribute names, so an NNX parameter path maps onto a state-dict key mechanically:
`('encoder', 'layer', 0, 'attention', 'self', 'query', 'kernel')` <-> `encoder.layer.0.attention.self.query.weight`
(Linear kernels are transposed; LayerNorm `scale` and Embed `embedding` are called `weight` in torch).
`.bin` files are read with `torch_pickle` (no torch at runtime).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors.numpy import load_file, save_file

from relik_jax.io import torch_pickle

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Buffers and unused heads found in HF checkpoints that have no parameter here.
IGNORED_SUFFIXES = ("position_ids", "pooler.dense.weight", "pooler.dense.bias")


def read_config(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no config.json (expected a Hugging Face model folder)")
    return json.loads(path.read_text())


def read_state_dict(folder: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a HF folder as numpy arrays (safetensors preferred; sharded index files supported)."""
    folder = Path(folder)
    for name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / name).is_file():
            shards = sorted(set(json.loads((folder / name).read_text())["weight_map"].values()))
            out: dict[str, np.ndarray] = {}
            for shard in shards:
                out.update(_read_file(folder / shard))
            return out
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return _read_file(folder / name)
    raise FileNotFoundError(f"{folder}: no weights (expected one of {', '.join(WEIGHT_FILES)})")


def _read_file(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".safetensors":

        return load_file(str(path))
    sd = torch_pickle.load(path)
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(sd).__name__}")
    return dict(sd)


def strip_prefix(state_dict: dict[str, np.ndarray], prefixes: Iterable[str]) -> dict[str, np.ndarray]:
    """Drop the first of `prefixes` (e.g. 'bert.', 'deberta.') that every matching key carries."""
    for prefix in prefixes:
        if any(k.startswith(prefix) for k in state_dict):
            return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return state_dict


def param_key(path: tuple) -> tuple[str, bool]:
    """NNX parameter path -> (HF key, transpose?)."""
    *mods, leaf = (str(p) for p in path)
    if leaf == "kernel":
        return ".".join([*mods, "weight"]), True
    if leaf in ("scale", "embedding"):
        return ".".join([*mods, "weight"]), False
    return ".".join([*mods, leaf]), False


def load_state_dict(model: nnx.Module, state_dict: dict[str, np.ndarray], *, where: str = "checkpoint",
                    rename: Callable[[str], str] | None = None,
                    ignore: Callable[[str], bool] | None = None) -> None:
    """Copy HF-named tensors into `model` in place; every parameter must be found with the right shape.

    `rename` maps our key to the checkpoint's key (for heads whose torch names are not valid attributes).
    Unused checkpoint keys are an error unless `ignore(key)` or they are known buffers.
    """
    state = nnx.state(model, nnx.Param)
    used: set[str] = set()
    for path, var in state.flat_state():
        key, transpose = param_key(path)
        if rename is not None:
            key = rename(key)
        if key not in state_dict:
            raise KeyError(f"{where}: missing tensor {key!r} for parameter {'/'.join(map(str, path))}")
        value = np.asarray(state_dict[key])
        if transpose:
            value = value.T
        expected = var.get_value().shape
        if value.shape != expected:
            raise ValueError(f"{where}: tensor {key!r} has shape {value.shape}"
                             f"{' (transposed)' if transpose else ''}, expected {expected}")
        var.set_value(jnp.asarray(value, dtype=var.get_value().dtype))
        used.add(key)
    extra = [k for k in state_dict if k not in used and not k.endswith(IGNORED_SUFFIXES)
             and not (ignore is not None and ignore(k))]
    if extra:
        raise ValueError(f"{where}: {len(extra)} unexpected tensors, first {extra[0]!r}")
    nnx.update(model, state)


def to_state_dict(model: nnx.Module, rename: Callable[[str], str] | None = None) -> dict[str, np.ndarray]:
    """HF-named float32 numpy tensors of `model` (kernels transposed back to torch [out, in])."""
    out = {}
    for path, var in nnx.state(model, nnx.Param).flat_state():
        key, transpose = param_key(path)
        if rename is not None:
            key = rename(key)
        value = np.asarray(var.get_value(), dtype=np.float32)
        out[key] = np.ascontiguousarray(value.T if transpose else value)
    return out


def save_folder(model: nnx.Module, config: dict[str, Any], folder: str | Path, *,
                rename: Callable[[str], str] | None = None) -> Path:
    """Write `config.json` + `model.safetensors` (loadable by transformers and by `load_*`)."""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file(to_state_dict(model, rename), str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


