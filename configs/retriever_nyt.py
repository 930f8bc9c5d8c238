"""Relation retriever on NYT (paper Table 3 "RE"): KB = the 24 NYT relation names (REBEL verbalisations, Wikidata
descriptions as `definition` metadata), questions = windows of 64 words (stride 32), gold passages = relations of
the window's triplets. The shared NYT copy has no train split, so `dev` trains and `test` evaluates.

    python train.py --config configs/retriever_nyt.py --workdir runs/retriever_nyt
"""

import ml_collections

from configs import default_retriever


def get_config() -> ml_collections.ConfigDict:
    c = default_retriever.get_config()
    c.dataset = "nyt"
    c.train_split = "dev"
    c.window_size = 64
    c.window_stride = 32
    c.use_topics = False
    c.kb_add_rebel_titles = False
    c.metadata_fields = ["definition"]
    # Table 3 (RE): passage batch 24 for NYT (= all relations), 40k steps, hard negatives with probability 1.
    c.passage_batch_size = 24
    c.max_steps = 40_000
    c.max_hard_negatives = 15
    c.eval_splits = ["test"]
    c.eval_ks = [1, 3, 5, 10]
    return c
