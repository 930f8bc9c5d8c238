"""EL reader on AIDA-CoNLL (paper Table 4: lr 1e-5, layer LR decay 0.9, wd 0.01, 50k steps, warmup 5000, token
batch 2048; windows of 32 words / stride 16; 100 candidates per window + NME).

Candidates come from a retriever run: windowized JSONL files (the reference's §4.3 format: `window_labels`
char spans with titles, `span_candidates` = retrieved titles), e.g. produced by annotating
`datasets.labelled_windows(read_aida(split))` with `Retriever.retrieve` top-100. Point the config at them:

    python train.py --config configs/aida.py --workdir runs/aida-reader \
        --config.backbone=/path/to/deberta-v3-base \
        --config.train_windows=aida_train.jsonl --config.dev_windows=aida_testa.jsonl \
        --config.test_windows=aida_testb.jsonl

Expected runtime: the paper's 50k steps are GPU-days on CPU; on one H100 a few hours.
"""

import ml_collections

from relik_jax.reader_training import default_config


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    c = default_config()
    c.task = "el"
    c.dataset = "windows"
    c.train_windows = ""
    c.dev_windows = ""
    c.test_windows = ""
    c.init = "pretrained"
    c.backbone = "microsoft/deberta-v3-base"  # a local HF folder (no hub access)
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
    if "minilm" in arg.split(","):  # BERT backbone: 512 positions at most
        c.backbone = "all-MiniLM-L6-v2"
        c.max_length = 512
        c.seq_lens = (128, 256, 512)
    return c
