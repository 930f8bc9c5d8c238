"""Retriever fine-tuning on AIDA-CoNLL (paper §4.1.4, Table 3 "EL"; configs/default_retriever.py). Variants: `cpu`
(a short 2-core run: MiniLM, small batches, one mining round before training), `smoke` (3 steps on a few samples):

    python train.py --config configs/retriever_aida.py --workdir runs/retriever_aida
    python train.py --config configs/retriever_aida.py:cpu --workdir runs/retriever_aida
"""

import ml_collections

from configs import default_retriever


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    variants = arg.split(",") if arg else []
    c = default_retriever.get_config()
    c.dataset = "aida"
    if "cpu" in variants:
        # one epoch over 1,920 random training windows, hard negatives mined once before training, a larger lr
        # for so few steps
        c.question_batch_size = 32
        c.passage_batch_size = 96
        c.max_hard_negatives = 1
        c.max_steps = 60
        c.mine_every = 10_000
        c.mine_at_start = True
        c.max_train_samples = 1920
        c.lr = 5e-5
        c.layer_norm_lr = 5e-4
        c.log_every = 5
        c.checkpoint_every = 30
    if "smoke" in variants:
        c.question_batch_size = 8
        c.passage_batch_size = 24
        c.max_steps = 3
        c.max_train_samples = 64
        c.max_eval_samples = 32
        c.mine_every = 2
        c.max_hard_negatives = 2
        c.log_every = 1
    return c
