"""EL reader on AIDA-CoNLL (paper Table 4: lr 1e-5, layer LR decay 0.9, wd 0.01, 50k steps, warmup 5000, token
batch 2048; windows of 32 words / stride 16; 100 candidates per window + NME). Train on train, select on testa,
test on testb (strong-match InKB micro-F1).

Candidates come from a retriever over the closed AIDA KB (every AIDA title + the REBEL-sample titles, as the
retriever config): `config.retriever` is its encoder folder (e.g. the `encoder/` of a
`configs/retriever_aida.py` run), `config.retriever_index` its index folder ("" = index the KB here).
`config.candidates_cache` keeps the windows with candidates (the reference's windowized JSONL) for later runs:

    python train.py --config configs/aida.py --workdir runs/aida-reader \\
        --config.backbone=/path/to/deberta-v3-base --config.retriever=runs/ret-aida/encoder \\
        --config.retriever_index=runs/ret-aida/index --config.candidates_cache=runs/aida-candidates

Windowized JSONL files made elsewhere (`relik-jax add-candidates`, or the reference's `relik retriever
add-candidates`) also work: `--config.dataset=windows --config.train_windows=... --config.dev_windows=...
--config.test_windows=...`.

Variants: `minilm` (BERT backbone all-MiniLM-L6-v2, 512 positions); `cpu` (= minilm at a 2-core budget, the README
run: top-20 candidates, heads at 10x the backbone learning rate, 500 steps of 2,048 tokens).

Expected runtime: the paper's 50k steps are GPU-days on CPU; on one H100 a few hours.
"""

import ml_collections

from relik_jax.training.reader_train import default_config


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    variants = arg.split(",") if arg else []
    c = default_config()
    c.task = "el"
    c.dataset = "aida"
    c.train_windows = ""
    c.dev_windows = ""
    c.test_windows = ""
    c.window_size = 32
    c.window_stride = 16
    c.use_dataset_words = True
    c.init = "pretrained"
    c.backbone = "microsoft/deberta-v3-base"  # a local HF folder (no hub access)
    c.num_candidates = 100
    c.candidates_per_forward = 100
    c.use_nme = True
    c.max_length = 1024
    c.learning_rate = 1e-5
    c.layer_lr_decay = 0.9
    c.weight_decay = 0.01
    c.num_steps = 50_000
    c.warmup_steps = 5_000
    c.token_batch_size = 2048
    c.shuffle_candidates = 0.5
    c.random_drop_gold_candidates = 0.05
    c.eval_every = 2000
    c.checkpoint_every = 2000
    c.select_metric = "f1"
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
