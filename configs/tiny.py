"""Tiny reader on the built-in toy dataset (generated in code, no files), the default of train.py: a random
2-layer DeBERTa-v3-style encoder (hidden 64, `tiny-deberta`) learns mention detection and linking of the toy
world. Variants: `el` (default), `re`, `cie` (RE + entity types).

    python train.py --workdir /tmp/relik-tiny
    python train.py --config configs/tiny.py:re --workdir /tmp/relik-tiny-re
    python train.py --config configs/tiny.py:cie --workdir /tmp/relik-tiny-cie
    python train.py --workdir /tmp/relik-tiny-bert --config.backbone=tiny-bert   # absolute positions
"""

import ml_collections

from configs import default


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    c = default.get_config()
    variant = arg or "el"
    c.backbone = "tiny-deberta"
    c.linears_hidden_size = 64
    c.window_size = 0  # one window per toy document
    c.use_dataset_words = True
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
