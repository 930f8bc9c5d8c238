"""The reader to train: tokenizer with the reference's special symbols, model from a tiny / pretrained backbone or a
saved reader, dropout and fresh-head init surgery, and its optimizer (`trainer.make_optimizer` with the paper's
layer-wise learning-rate decay)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from tokenizers import AddedToken, Tokenizer

from relik_jax.data import toy as toy_data
from relik_jax.io import hf_io
from relik_jax.models import backbones
from relik_jax.reader.convert import load_reader
from relik_jax.reader.inputs import SpanInputConfig, TripletInputConfig, relation_symbols, span_symbols
from relik_jax.reader.model import ReaderConfig, SpanReader, TripletReader, build_reader
from relik_jax.retriever.encoder import resolve_encoder
from relik_jax.text.tokenization import load_tokenizer
from relik_jax.training.trainer import make_optimizer


def reader_symbols(cfg: ReaderConfig) -> list[str]:
    """Special tokens a training tokenizer gets, in the reference's order (EL: NME + [E-i]; RE: [R-i]; cIE: [R-i]
    then NME + [E-i])."""
    if cfg.is_span:
        return span_symbols(cfg.additional_special_symbols - 1)
    types = span_symbols(cfg.additional_special_symbols_types - 1) if cfg.additional_special_symbols_types else []
    return relation_symbols(cfg.additional_special_symbols) + types


def add_symbols(tokenizer: Tokenizer, symbols: Sequence[str]) -> Tokenizer:
    """Add the special symbols (ids after the base vocabulary, as HF `add_special_tokens` + resize)."""
    missing = [s for s in symbols if tokenizer.token_to_id(s) is None]
    tokenizer.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in missing])
    return tokenizer


def input_config(cfg: ReaderConfig, config: ml_collections.ConfigDict) -> SpanInputConfig | TripletInputConfig:
    """Training-time row options: the span reader uses the training symbol list (n strings, the tokenizer's)."""
    if cfg.is_span:
        return SpanInputConfig(tuple(span_symbols(cfg.additional_special_symbols - 1)), use_nme=config.use_nme,
                               model_max_length=config.max_length)
    types = cfg.additional_special_symbols_types
    return TripletInputConfig(tuple(relation_symbols(cfg.additional_special_symbols)),
                              tuple(span_symbols(types - 1)) if types else (), use_nme=config.use_nme,
                              max_triplets=config.max_relations, model_max_length=config.max_length)


TINY_BACKBONES = {
    "tiny-bert": dict(model_type="bert", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=128, max_position_embeddings=512, type_vocab_size=2),
    "tiny-deberta": dict(model_type="deberta-v2", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, relative_attention=True, position_buckets=64,
                         max_relative_positions=-1, pos_att_type=["p2c", "c2p"], share_att_key=True,
                         norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0,
                         layer_norm_eps=1e-7),
}


def build_training_reader(config: ml_collections.ConfigDict) -> tuple[ReaderConfig, SpanReader | TripletReader,
                                                                       Tokenizer, dict[str, Any]]:
    """The model to train: `config.init` = 'random' (named tiny backbone or a backbone config folder), 'pretrained'
    (HF encoder folder as backbone, fresh heads) or 'reader' (a reference or our reader folder)."""
    if config.init == "reader":
        cfg, model, tokenizer, tok_cfg = load_reader(config.backbone)
        seed_dropout(model, config.seed)  # loading draws its dropout keys from a fixed seed
        set_dropout(model, config.get("dropout", -1.0))
        return cfg, model, tokenizer, tok_cfg
    task = config.task
    types = int(config.get("entity_types", 0) or 0)
    if task == "el":
        cfg = ReaderConfig(architecture="RelikReaderSpanModel", transformer_model=config.backbone,
                           additional_special_symbols=config.candidates_per_forward + 1,
                           linears_hidden_size=config.linears_hidden_size)
    else:
        cfg = ReaderConfig(architecture="RelikReaderREModel", transformer_model=config.backbone,
                           additional_special_symbols=config.max_relations,
                           additional_special_symbols_types=types + 1 if types else 0,
                           linears_hidden_size=config.linears_hidden_size, entity_type_loss=types > 0,
                           add_entity_embedding=types > 0, threshold=config.get("threshold", 0.5))
    if config.init == "random":
        if config.backbone in TINY_BACKBONES:
            tokenizer = toy_data.toy_tokenizer()
            bb = dict(TINY_BACKBONES[config.backbone])
        else:
            folder = resolve_encoder(config.backbone)
            tokenizer, bb = load_tokenizer(folder), hf_io.read_config(folder)
    elif config.init == "pretrained":
        folder = resolve_encoder(config.backbone)
        tokenizer, bb = load_tokenizer(folder), hf_io.read_config(folder)
    else:
        raise ValueError(f"config.init={config.init!r}: expected 'random', 'pretrained' or 'reader'")
    tokenizer.no_truncation()
    tokenizer.no_padding()
    add_symbols(tokenizer, reader_symbols(cfg))
    bb["vocab_size"] = tokenizer.get_vocab_size(with_added_tokens=True)
    model = build_reader(cfg, backbones.backbone_config_from_dict(bb), rngs=nnx.Rngs(config.seed))
    if config.init == "pretrained":
        backbones.init_from_pretrained(model.transformer_model, folder, seed=config.seed)
    head_init = config.get("head_init", "reference")
    if head_init == "reference":
        torch_default_head_init(model, seed=config.seed)
    elif head_init != "normal":
        raise ValueError(f"config.head_init={head_init!r}: expected 'reference' or 'normal'")
    set_dropout(model, config.get("dropout", -1.0))
    return cfg, model, tokenizer, {"model_max_length": int(config.max_length)}


def set_dropout(model: nnx.Module, rate: float) -> None:
    """Every dropout of `model` (backbone and heads) at `rate`; rate < 0 keeps the model's own rates. Rate 0 makes
    training deterministic (the lockstep comparison with the reference, benchmarks/reference_train_conll04.py)."""
    if rate < 0:
        return
    if rate >= 1:
        raise ValueError(f"config.dropout={rate}: expected a rate in [0, 1) or < 0 for the model's own rates")
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Dropout):
            node.rate = float(rate)


def seed_dropout(model: nnx.Module, seed: int) -> None:
    """Give every dropout of `model` its own key derived from `seed` (counters reset): the masks of a training run
    then follow `config.seed` whatever built the model. In place."""
    base = jax.random.key(seed)
    i = 0
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Dropout) and node.rngs is not None:
            node.rngs.key.set_value(jax.random.fold_in(base, i))
            node.rngs.count.set_value(jnp.zeros_like(node.rngs.count.get_value()))
            i += 1


def torch_default_head_init(model: nnx.Module, *, seed: int = 0) -> None:
    """Re-draw every head Linear (everything outside `transformer_model`) as `torch.nn.Linear` does by default,
    weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)): the reference's fresh heads keep that init (its reader
    models never run HF's `post_init`). LayerNorms keep ones / zeros, as in torch. In place."""
    rng = np.random.default_rng(seed + 7919)  # a stream of its own, not the backbone's
    for path, node in nnx.iter_graph(model):
        if not isinstance(node, nnx.Linear) or (path and path[0] == "transformer_model"):
            continue
        kernel = node.kernel.get_value()
        bound = 1.0 / np.sqrt(kernel.shape[0])
        node.kernel.set_value(jnp.asarray(rng.uniform(-bound, bound, kernel.shape), kernel.dtype))
        if node.bias is not None:
            bias = node.bias.get_value()
            node.bias.set_value(jnp.asarray(rng.uniform(-bound, bound, bias.shape), bias.dtype))


def _head_multiplier(config: ml_collections.ConfigDict) -> Callable[[str], float] | None:
    """Optional larger learning rate for the fresh heads (not in the reference: short CPU runs only)."""
    mult = float(config.get("head_lr_multiplier", 1.0))
    if mult == 1.0:
        return None
    return lambda key: 1.0 if key.startswith("transformer_model.") else mult


def reader_optimizer(config: ml_collections.ConfigDict, model: SpanReader | TripletReader
                     ) -> optax.GradientTransformation:
    """AdamW with layer-wise LR decay, warmup + linear decay over `config.num_steps`, clipping (Tables 3-4)."""
    return make_optimizer(nnx.state(model, nnx.Param), learning_rate=config.learning_rate,
                          total_steps=config.num_steps, warmup_steps=config.warmup_steps,
                          weight_decay=config.weight_decay, clip_norm=config.grad_clip or None,
                          layer_lr_decay=config.layer_lr_decay or None,
                          num_layers=model.transformer_model.config.num_hidden_layers,
                          backbone_prefix="transformer_model.", lr_multipliers=_head_multiplier(config))
