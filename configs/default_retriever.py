"""The retriever trainer's default config: every option of `relik_jax.training.retriever_train.train_retriever`
with its default, the paper's EL retriever (§4.1.4, Table 3 "EL") on AIDA-CoNLL: windows of 32 words, stride 16,
doc topic as text pair, closed KB = every title of the AIDA file + the REBEL-sample titles. The other retriever
configs import it and override fields:

    python train.py --config configs/default_retriever.py --workdir runs/retriever
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """Every retriever-training option with its default."""
    c = ml_collections.ConfigDict()
    c.task = "retriever"
    c.dataset = "aida"  # aida | nyt | rebel
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
    # Hard negatives: the reference's AIDA callback keeps 20 with probability 1.0, refreshed each epoch
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
    return c
