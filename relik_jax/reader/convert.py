"""Reference reader checkpoint folder -> our reader; our reader <-> an orbax folder.

A reference (hub / `save_pretrained`) reader folder holds `config.json` (`architectures`, `transformer_model`,
symbol counts, ...), `model.safetensors` or `pytorch_model.bin`, and the tokenizer files. The backbone config is
*not* in it: `transformer_model` names the base DeBERTa (a hub id or a local folder). We read the local folder's
`config.json` when it exists (relative paths are tried against the reader folder's parent and the working
directory), else a bundled config for the known hub ids, else the caller's `backbone_config`. The vocabulary size
always comes from the checkpoint's embedding matrix.

Our format (`save_reader` / `load_reader`): `reader_config.json` (reader + backbone config + input options),
`tokenizer.json`, `tokenizer_config.json` (model_max_length) and `params/` (an orbax PyTree checkpoint of the NNX
parameter state).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tokenizers import Tokenizer

from relik_jax.io import hf_io
from relik_jax.models.backbones import backbone_config_from_dict
from relik_jax.reader.model import ReaderConfig, SpanReader, TripletReader, build_reader
from relik_jax.text.tokenization import load_tokenizer, save_tokenizer

_V3 = dict(model_type="deberta-v2", relative_attention=True, position_buckets=256, max_relative_positions=-1,
           pos_att_type=["p2c", "c2p"], share_att_key=True, norm_rel_ebd="layer_norm", position_biased_input=False,
           type_vocab_size=0, layer_norm_eps=1e-7, hidden_act="gelu", max_position_embeddings=512,
           vocab_size=128100, pad_token_id=0)
KNOWN_BACKBONES: dict[str, dict[str, Any]] = {
    "microsoft/deberta-v3-small": dict(_V3, hidden_size=768, num_hidden_layers=6, num_attention_heads=12,
                                       intermediate_size=3072),
    "microsoft/deberta-v3-base": dict(_V3, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                      intermediate_size=3072),
    "microsoft/deberta-v3-large": dict(_V3, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                       intermediate_size=4096),
}


def backbone_config(name: str, reader_folder: Path, override: dict[str, Any] | str | Path | None = None
                    ) -> dict[str, Any]:
    if override is not None:
        return dict(override) if isinstance(override, dict) else hf_io.read_config(override)
    for base in (reader_folder.parent, reader_folder.parent.parent, Path.cwd()):
        folder = base / name
        if (folder / "config.json").is_file():
            return hf_io.read_config(folder)
    if Path(name).is_absolute() and (Path(name) / "config.json").is_file():
        return hf_io.read_config(name)
    if name in KNOWN_BACKBONES:
        return dict(KNOWN_BACKBONES[name])
    raise FileNotFoundError(
        f"{reader_folder}: backbone {name!r} (config transformer_model) is neither a local folder with config.json "
        f"nor one of {sorted(KNOWN_BACKBONES)}; pass backbone_config= (a dict or a folder)")


def load_reference_reader(folder: str | Path, *, dtype: str = "fp32", backbone: dict[str, Any] | str | None = None,
                          seed: int = 0) -> tuple[ReaderConfig, SpanReader | TripletReader, Tokenizer, dict]:
    """Reference reader folder -> (config, model with the checkpoint's weights, tokenizer, tokenizer_config)."""
    folder = Path(folder)
    raw = hf_io.read_config(folder)
    cfg = ReaderConfig.from_dict(raw)
    sd = hf_io.read_state_dict(folder)
    key = "transformer_model.embeddings.word_embeddings.weight"
    if key not in sd:
        raise KeyError(f"{folder}: checkpoint has no {key!r} (is this a ReLiK reader checkpoint?)")
    bb = backbone_config(cfg.transformer_model, folder, backbone)
    bb["vocab_size"] = int(sd[key].shape[0])
    bcfg = backbone_config_from_dict(bb)
    model = _abstract(cfg, bcfg, dtype)
    hf_io.load_state_dict(model, sd, where=str(folder))
    tok_cfg = _tokenizer_config(folder)
    return cfg, model, load_tokenizer(folder), tok_cfg


def _abstract(cfg: ReaderConfig, backbone: Any, dtype: str) -> SpanReader | TripletReader:
    """The model with shape-only parameters (no random init to compile and run); every one is then loaded."""

    model = nnx.eval_shape(lambda: build_reader(cfg, backbone, rngs=nnx.Rngs(0), dtype=dtype))
    # Dropout RNG streams must be concrete (they are used when training); parameters are loaded by the caller.
    state = nnx.state(model, nnx.Not(nnx.Param))
    for i, (_, var) in enumerate(state.flat_state()):
        shape = var.get_value()
        if isinstance(var, nnx.RngKey):
            var.set_value(jax.random.fold_in(jax.random.key(0), i))
        else:
            var.set_value(jnp.zeros(shape.shape, shape.dtype))
    nnx.update(model, state)
    return model


def random_reader(cfg: ReaderConfig, backbone: Any, *, seed: int = 0, dtype: str = "fp32",
                  std: float = 0.02) -> SpanReader | TripletReader:
    """A randomly initialised reader built without compiling an init program per parameter shape (fast on CPU):
    kernels / embeddings ~ N(0, std), biases 0, LayerNorm scales 1 (as HF's init)."""
    model = _abstract(cfg, backbone, dtype)
    rng = np.random.default_rng(seed)
    state = nnx.state(model, nnx.Param)
    for path, var in state.flat_state():
        spec = var.get_value()
        if path[-1] in ("kernel", "embedding"):
            value = rng.normal(0.0, std, spec.shape)
        elif path[-1] == "scale":
            value = np.ones(spec.shape)
        else:
            value = np.zeros(spec.shape)
        var.set_value(np.asarray(value, dtype=spec.dtype))
    nnx.update(model, state)
    return model


def _tokenizer_config(folder: Path) -> dict[str, Any]:
    path = folder / "tokenizer_config.json"
    d = json.loads(path.read_text()) if path.is_file() else {}
    return {"model_max_length": int(min(d.get("model_max_length", 10**30), 10**30))}


def save_reader(folder: str | Path, cfg: ReaderConfig, model: SpanReader | TripletReader, tokenizer: Tokenizer,
                tokenizer_config: dict[str, Any] | None = None) -> Path:
    """Write our format: reader_config.json, tokenizer.json, tokenizer_config.json, params/ (orbax)."""
    import orbax.checkpoint as ocp

    folder = Path(folder).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"reader": cfg.to_dict(), "backbone": model.transformer_model.config.to_dict(), "format": 1}
    (folder / "reader_config.json").write_text(json.dumps(meta, indent=2))
    save_tokenizer(tokenizer, folder)
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config or {}, indent=2))
    params = {"/".join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.state(model, nnx.Param).flat_state()}
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(folder / "params", params, force=True)
    return folder


def load_reader(folder: str | Path, *, dtype: str = "fp32") -> tuple[ReaderConfig, SpanReader | TripletReader,
                                                                       Tokenizer, dict]:
    """Our format -> (config, model, tokenizer, tokenizer_config); a reference folder is converted on the fly."""
    import orbax.checkpoint as ocp

    folder = Path(folder).absolute()
    if not (folder / "reader_config.json").is_file():
        return load_reference_reader(folder, dtype=dtype)
    meta = json.loads((folder / "reader_config.json").read_text())
    rd = dict(meta["reader"])
    cfg = ReaderConfig.from_dict(rd)
    model = _abstract(cfg, backbone_config_from_dict(meta["backbone"]), dtype)
    state = nnx.state(model, nnx.Param)
    flat = {"/".join(map(str, p)): v for p, v in state.flat_state()}
    with ocp.StandardCheckpointer() as ckpt:
        params = ckpt.restore(folder / "params")
    for key, var in flat.items():
        if key not in params:
            raise KeyError(f"{folder}: parameter {key!r} missing from params/")
        value = np.asarray(params[key])
        if value.shape != var.get_value().shape:
            raise ValueError(f"{folder}: parameter {key!r} has shape {value.shape}, expected {var.get_value().shape}")
        var.set_value(value.astype(var.get_value().dtype))
    extra = sorted(set(params) - set(flat))
    if extra:
        raise ValueError(f"{folder}: unexpected parameter {extra[0]!r} in params/")
    nnx.update(model, state)
    tok_cfg = json.loads((folder / "tokenizer_config.json").read_text())
    return cfg, model, Tokenizer.from_file(str(folder / "tokenizer.json")), tok_cfg
