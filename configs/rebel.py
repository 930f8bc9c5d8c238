"""cIE reader on the REBEL sample (paper Table 4: lr 2e-5, layer LR decay 0.9, wd 0.01, 600k steps, warmup 10k,
token batch 4096; K = 25 entity passages, K' = 20 relation passages). The offline sample is split 80/10/10
(train/dev/test) in file order; without a trained retriever the candidates are the window's gold entities /
relations plus random others from the sample (up to 25 / 20): a smoke test of the cIE path, not a reproduction.
Entity labels are Wikidata QIDs.

    python train.py --config configs/rebel.py --workdir runs/rebel --config.backbone=/path/to/deberta-v3-small
    python train.py --config configs/rebel.py:cpu --workdir runs/rebel-minilm    # all-MiniLM-L6-v2, 2 CPU cores
"""

import ml_collections

from configs import default


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    c = default.get_config()
    c.task = "cie"
    c.dataset = "rebel"
    c.init = "pretrained"
    c.backbone = "microsoft/deberta-v3-small"  # a local HF folder (no hub access)
    c.window_size = 64
    c.window_stride = 32
    c.entity_types = 25  # the 25 entity candidates are the cIE "types" (NME + [E-0..24])
    c.max_relations = 20
    c.learning_rate = 2e-5
    c.num_steps = 600_000
    c.warmup_steps = 10_000
    c.token_batch_size = 4096
    c.shuffle_candidates = 0.0
    c.flip_candidates = 1.0
    c.eval_every = 5000
    c.checkpoint_every = 5000
    c.select_metric = "strict_f1"
    if "cpu" in arg.split(","):
        c.backbone = "all-MiniLM-L6-v2"
        c.max_length = 512
        c.seq_lens = (128, 256, 512)
        c.linears_hidden_size = 256
        c.learning_rate = 1e-4
        c.warmup_steps = 50
        c.num_steps = 400
        c.eval_every = 100
        c.checkpoint_every = 100
    return c
