"""Tiny reader run on the built-in toy dataset (generated in code, no files): the DEFAULT of train.py.

    python train.py --workdir /tmp/relik-tiny                       # EL, ~1-2 min on 2 CPU cores
    python train.py --config configs/tiny.py:re --workdir /tmp/relik-tiny-re   # RE
    python train.py --config configs/tiny.py:cie --workdir /tmp/relik-tiny-cie # RE + entity types

A random 2-layer BERT (hidden 64, `tiny-bert`; `--config.backbone=tiny-deberta` for DeBERTa-v3-style) learns
mention detection and linking of the toy world within a few hundred steps: the loss falls from ~5 to < 1 and dev
F1 rises from ~0 to > 0.8 (EL). Variants: `el` (default), `re`, `cie`.
"""

import ml_collections

from relik_jax.reader_training import default_config


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    c = default_config()
    variant = arg or "el"
    c.dataset = "toy"
    c.init = "random"
    c.backbone = "tiny-bert"
    c.linears_hidden_size = 64
    c.window_size = 0  # one window per toy document
    c.use_dataset_words = True
    c.toy_train = 400
    c.toy_eval = 60
    c.max_length = 512
    c.seq_lens = (32, 64, 128, 256, 512)
    c.token_batch_size = 1024
    c.learning_rate = 2e-3
    c.layer_lr_decay = 0.0  # off: a random backbone learns at the heads' rate
    c.num_steps = 300
    c.warmup_steps = 20
    c.log_every = 25
    c.eval_every = 100
    c.checkpoint_every = 100
    if variant == "el":
        c.task = "el"
        c.candidates_per_forward = 16
        c.num_candidates = 8
    elif variant in ("re", "cie"):
        c.task = variant
        c.max_relations = 4
        c.entity_types = 3 if variant == "cie" else 0
        c.shuffle_candidates = 0.0
        c.flip_candidates = 1.0
        c.select_metric = "strict_f1" if variant == "cie" else "f1"
    else:
        raise ValueError(f"configs/tiny.py: unknown variant {variant!r} (el, re, cie)")
    return c
