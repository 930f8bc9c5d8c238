"""Retriever fine-tuning on AIDA-CoNLL (paper §4.1.4, Table 3 "EL"): windows of 32 words, stride 16, doc topic
as text pair, closed KB = every title of the AIDA file + the REBEL-sample titles.

    PYTHONPATH=$PWD python -c "from configs.retriever_aida import get_config; \
        from relik_jax.training.retriever_train import train_retriever; train_retriever(get_config(), 'runs/ret')"

`get_config("cpu")` is the short 2-core run reported in the README (MiniLM, small batches, one mining round).
"""

import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "retriever"
    c.dataset = "aida"
    # Starting encoder: a local folder (reference encoder or plain BERT/E5), or "all-MiniLM-L6-v2".
    c.encoder = "all-MiniLM-L6-v2"
    c.window_size = 32
    c.window_stride = 16
    # The paper concatenates the first word of the document (reference `use_topics: True`).
    c.use_topics = True
    c.kb_add_rebel_titles = True
    c.metadata_fields = []
    c.separator = " <def> "
    # Table 3 (EL): query batch 64, passage batch 400, lengths 64, RAdam lr 1e-5 wd 0.01, 5000 steps.
    c.question_batch_size = 64
    c.passage_batch_size = 400
    c.max_question_length = 64
    c.max_passage_length = 64
    c.lr = 1e-5
    # Reference `configure_optimizers`: the fresh pooling LayerNorm learns 10x faster.
    c.layer_norm_lr = 1e-4
    c.weight_decay = 0.01
    c.warmup_steps = 0
    c.max_steps = 5000
    c.grad_clip = 0.0
    # Hard negatives: reference AIDA callback keeps 20 with probability 1.0, refreshed each epoch
    # (mine_every 0).
    c.max_hard_negatives = 20
    c.hard_negative_probability = 1.0
    c.mine_top_k = 100
    c.mine_every = 0
    c.mine_at_start = False
    c.eval_splits = ["testa", "testb"]
    c.eval_ks = [1, 10, 50, 100]
    c.eval_before = True
    c.eval_batch_size = 128
    c.max_train_samples = 0
    c.max_eval_samples = 0
    c.log_every = 10
    c.checkpoint_every = 1000
    c.seed = 0
    if "cpu" in arg.split(","):
        # ~10 min of training on 2 shared CPU cores (one fwd+bwd step ≈ 8 s): one epoch over 1,920 random
        # training windows, hard negatives mined once before training, a larger lr for so few steps.
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
    if "smoke" in arg.split(","):
        c.question_batch_size = 8
        c.passage_batch_size = 24
        c.max_steps = 3
        c.max_train_samples = 64
        c.max_eval_samples = 32
        c.mine_every = 2
        c.max_hard_negatives = 2
        c.log_every = 1
    return c
