"""Reader backbones: DeBERTa-v2/v3 (the reference's default) or any BERT-family encoder (e.g. all-MiniLM-L6-v2).

The reference builds its reader backbone with `AutoModel.from_pretrained(transformer_model)`, so any encoder works;
we support the two families we implement. BERT consumes `token_type_ids` (0 for `[CLS] text [SEP]`, 1 for the
candidates), DeBERTa-v3 ignores them (`type_vocab_size=0`).

`init_from_pretrained(model, folder, vocab_size)` copies an HF encoder checkpoint into a reader's
`transformer_model`, growing the word-embedding matrix for the added special symbols (HF
`resize_token_embeddings`: old rows kept, new rows ~ N(0, 0.02) as transformers 4.41's `_init_weights`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from relik_jax.io import hf_io
from relik_jax.models.bert import BertConfig, BertModel
from relik_jax.models.deberta import DebertaV2Config, DebertaV2Model

BackboneConfig = DebertaV2Config | BertConfig
BERT_TYPES = ("bert", "e5", "golden_retriever")


def backbone_config_from_dict(d: dict[str, Any]) -> BackboneConfig:
    """An HF `config.json` dict (or our saved backbone dict) -> the matching config class."""
    model_type = d.get("model_type", "deberta-v2")
    if model_type in BERT_TYPES:
        return BertConfig.from_dict(d)
    if model_type == "deberta-v2":
        return DebertaV2Config.from_dict(d)
    raise ValueError(f"reader backbone: model_type {model_type!r} is unsupported (expected 'deberta-v2' or one of "
                     f"{BERT_TYPES})")


def build_backbone(cfg: BackboneConfig, rngs: nnx.Rngs, dtype: Any = "fp32") -> DebertaV2Model | BertModel:
    if isinstance(cfg, BertConfig):
        return BertModel(cfg, rngs=rngs, dtype=dtype)
    if isinstance(cfg, DebertaV2Config):
        return DebertaV2Model(cfg, rngs=rngs, dtype=dtype)
    raise TypeError(f"reader backbone: expected DebertaV2Config or BertConfig, got {type(cfg).__name__}")


def init_from_pretrained(backbone: nnx.Module, folder: str | Path, *, seed: int = 0, std: float = 0.02) -> None:
    """Load an HF encoder folder into `backbone` in place; extra word-embedding rows are freshly initialised."""
    folder = Path(folder)
    sd = hf_io.read_state_dict(folder)
    prefixes = ("bert.", "model.") if isinstance(backbone, BertModel) else ("deberta.", "model.")
    sd = hf_io.strip_prefix(sd, prefixes)
    key = "embeddings.word_embeddings.weight"
    if key not in sd:
        raise KeyError(f"{folder}: no {key!r} in the checkpoint (is it a BERT/DeBERTa encoder?)")
    target = backbone.embeddings.word_embeddings.embedding.get_value().shape
    old = np.asarray(sd[key], dtype=np.float32)
    if old.shape[1] != target[1] or old.shape[0] > target[0]:
        raise ValueError(f"{folder}: word embeddings {old.shape} cannot grow into {target}")
    new = np.random.default_rng(seed).normal(0.0, std, size=(target[0] - old.shape[0], target[1]))
    sd[key] = np.concatenate([old, new.astype(np.float32)], axis=0)
    hf_io.load_state_dict(backbone, sd, where=str(folder),
                          ignore=lambda k: not k.startswith(("embeddings.", "encoder.")))  # poolers, MLM heads


def load_bert(folder: str | Path, *, dtype: str = "fp32", seed: int = 0) -> tuple[BertConfig, BertModel]:
    """BERT/E5/MiniLM HF folder -> (BertConfig, BertModel) with the checkpoint's weights."""
    cfg = BertConfig.from_dict(hf_io.read_config(folder))
    model = BertModel(cfg, rngs=nnx.Rngs(seed), dtype=dtype)
    sd = hf_io.strip_prefix(hf_io.read_state_dict(folder), ("bert.", "model."))
    hf_io.load_state_dict(model, sd, where=str(folder))
    return cfg, model


def load_deberta(folder: str | Path, *, dtype: str = "fp32", seed: int = 0
                 ) -> tuple[DebertaV2Config, DebertaV2Model]:
    """DeBERTa-v2/v3 HF folder -> (DebertaV2Config, DebertaV2Model) with the checkpoint's weights."""
    cfg = DebertaV2Config.from_dict(hf_io.read_config(folder))
    model = DebertaV2Model(cfg, rngs=nnx.Rngs(seed), dtype=dtype)
    sd = hf_io.strip_prefix(hf_io.read_state_dict(folder), ("deberta.", "model."))
    hf_io.load_state_dict(model, sd, where=str(folder),
                    ignore=lambda k: not k.startswith(("embeddings.", "encoder.")))  # e.g. MLM heads
    return cfg, model
