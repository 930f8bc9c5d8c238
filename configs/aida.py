"""EL reader on AIDA-CoNLL (paper Table 4; the default's optimisation settings: lr 1e-5, layer LR decay 0.9,
wd 0.01, 50k steps, warmup 5000, token batch 2048; windows of 32 words / stride 16; 100 candidates + NME).
Train on train, select on testa, test on testb. Candidates come from a retriever (its encoder folder, e.g. the
`encoder/` of a configs/retriever_aida.py run, and its index folder; "" = index the closed AIDA KB here), cached
as windowized JSONL in `candidates_cache`:

    python train.py --config configs/aida.py --workdir runs/aida-reader \\
        --config.backbone=/path/to/deberta-v3-base --config.retriever=runs/ret-aida/encoder \\
        --config.retriever_index=runs/ret-aida/index --config.candidates_cache=runs/aida-candidates

Windowized JSONL files with candidates made elsewhere (`relik-jax add-candidates`, the reference's `relik retriever
add-candidates`):

    python train.py --config configs/aida.py --workdir runs/aida-reader --config.dataset=windows \\
        --config.train_windows=train.jsonl --config.dev_windows=testa.jsonl --config.test_windows=testb.jsonl

Variants: `minilm` (all-MiniLM-L6-v2 backbone, 512 positions), `cpu` (minilm at a 2-core budget):

    python train.py --config configs/aida.py:cpu --workdir runs/aida-minilm --config.retriever=runs/ret-aida/encoder
"""

import ml_collections

from configs import default


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    variants = arg.split(",") if arg else []
    c = default.get_config()
    c.dataset = "aida"
    c.train_windows = ""  # dataset=windows: windowized JSONL files with candidates
    c.dev_windows = ""
    c.test_windows = ""
    c.use_dataset_words = True
    c.init = "pretrained"
    c.backbone = "microsoft/deberta-v3-base"  # a local HF folder (no hub access)
    c.num_candidates = 100
    c.eval_every = 2000
    c.checkpoint_every = 2000
    if "minilm" in variants or "cpu" in variants:  # BERT backbone: 512 positions at most
        c.backbone = "all-MiniLM-L6-v2"
        c.max_length = 512
        c.seq_lens = (64, 128, 256, 512)
    if "cpu" in variants:
        c.retriever = c.retriever or "all-MiniLM-L6-v2"
        c.linears_hidden_size = 256
        c.num_candidates = 20
        c.candidates_per_forward = 20
        c.learning_rate = 1e-4
        c.head_lr_multiplier = 10.0
        c.head_init = "normal"  # learns faster than the reference's init at short budgets (configs/conll04.py)
        c.num_steps = 500
        c.warmup_steps = 40
        c.eval_every = 250
        c.checkpoint_every = 125
    return c
