"""Relation retriever on the REBEL sample (cIE-style RE): KB = REBEL's 230 relation labels with Wikidata
descriptions; the 1,000-abstract sample has no split, so its last 10% is held out for evaluation.

    python train.py --config configs/retriever_rebel.py --workdir runs/retriever_rebel
"""

import ml_collections

from configs import default_retriever


def get_config() -> ml_collections.ConfigDict:
    c = default_retriever.get_config()
    c.dataset = "rebel"
    c.window_size = 64
    c.window_stride = 32
    c.use_topics = False
    c.kb_add_rebel_titles = False
    c.metadata_fields = ["definition"]
    c.max_steps = 40_000
    c.max_hard_negatives = 15
    c.eval_splits = ["test"]
    c.eval_ks = [1, 10, 20, 50]
    return c
