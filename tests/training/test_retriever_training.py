"""Retriever training: in-batch/hard-negative batches by hand, hard-negative mining, a few real steps."""

import jax
import numpy as np
from flax import nnx

from configs.retriever_aida import get_config
from relik_jax.data.retrieval import RetrievalSample, samples_from_dpr
from relik_jax.models.bert import BertConfig
from relik_jax.retriever.encoder import GoldenRetrieverModel, Retriever, resolve_encoder
from relik_jax.retriever.index import Document
from relik_jax.text.tokenization import load_tokenizer
from relik_jax.training.retriever_train import RetrieverTrainer, make_batches


def _samples() -> list[RetrievalSample]:
    return [
        RetrievalSample("q0", "T", [0, 1]),
        RetrievalSample("q1", "T", [2]),
        RetrievalSample("q2", "T", [1, 3]),
        RetrievalSample("q3", "T", [4]),
    ]


def test_batches_pool_in_batch_and_hard_negatives_with_multi_hot_labels():
    samples = _samples()
    hard = {0: [5, 2], 1: [6]}  # q0's hard negative 2 is q1's gold passage
    batches = list(make_batches(samples, hard, 2, 100, np.random.default_rng(0)))
    seen = sorted(q for b in batches for q in b.questions)
    assert seen == [0, 1, 2, 3] and all(len(b.questions) <= 2 for b in batches)
    for b in batches:
        assert len(set(b.passages)) == len(b.passages)  # de-duplicated pool
        for i, q in enumerate(b.questions):
            wanted = set(samples[q].positives) | set(hard.get(q, []))
            assert wanted <= set(b.passages)
            expected = [int(p in samples[q].positives) for p in b.passages]
            assert b.labels[i].tolist() == expected
    # Pool cap: with 3 passages max, no batch pool exceeds 3 and every question still appears once.
    capped = list(make_batches(samples, hard, 4, 3, np.random.default_rng(1)))
    assert all(len(b.passages) <= 3 for b in capped)
    assert sorted(q for b in capped for q in b.questions) == [0, 1, 2, 3]


def test_samples_from_dpr_matches_kb_titles():
    kb = [Document("Germany", 0), Document("England", 1)]
    rows = [
        {"question": "a", "doc_topic": "X", "positive_ctxs": [{"text": "England"}, {"text": "Mars"}]},
        {"question": "b", "doc_topic": "", "positive_ctxs": [{"text": "Mars"}]},
    ]
    samples, missing = samples_from_dpr(rows, kb)
    assert missing == 2 and len(samples) == 1
    assert samples[0].positives == [1] and samples[0].doc_topic == "X"


def _tiny_trainer(**overrides) -> RetrieverTrainer:
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,  # no dropout: the loss of the repeated batch is deterministic, not a random draw
        attention_probs_dropout_prob=0.0,
    )
    model = GoldenRetrieverModel(cfg, rngs=nnx.Rngs(0))
    retriever = Retriever(
        model, load_tokenizer(resolve_encoder("all-MiniLM-L6-v2")), batch_size=8, passage_batch_size=8
    )
    config = get_config("smoke")
    config.max_steps = 6
    config.mine_every = 3
    config.max_hard_negatives = 2
    config.lr = 1e-3
    config.layer_norm_lr = 1e-2
    config.update(overrides)
    kb = [Document(t, i) for i, t in enumerate(["Germany", "England", "France", "Lamb", "Paris", "EU", "Rome"])]
    train = [
        RetrievalSample(f"news about {kb[i].text} and {kb[(i + 1) % 7].text}", "NEWS", [i, (i + 1) % 7])
        for i in range(7)
    ]
    return RetrieverTrainer(retriever, kb, train, config)


def test_mining_keeps_first_non_gold_passages():
    trainer = _tiny_trainer()
    trainer.mine_hard_negatives()
    assert len(trainer.hard_negatives) == 7
    index = trainer.build_index()
    queries = trainer.retriever.encode_questions([s.question for s in trainer.train], ["NEWS"] * 7)
    _, rows = index.search(queries, 100)
    for i, sample in enumerate(trainer.train):
        expected = [int(r) for r in rows[i] if r not in sample.positives][:2]
        assert trainer.hard_negatives[i] == expected


def test_training_steps_reduce_loss_then_mine_and_update_retriever():
    trainer = _tiny_trainer(mine_every=5)
    before = trainer.retriever.encode_passages(["Germany"], progress=None)
    history = trainer.fit(log=lambda *_: None)
    assert trainer.step == 6 and trainer.hard_negatives  # mined before step 6
    losses = [h["loss"] for h in history]
    # 7 samples < one batch: steps 1-5 see the same questions and passages, so the loss must go down.
    assert np.isfinite(losses).all() and losses[4] < losses[0]
    after = trainer.sync_retriever().encode_passages(["Germany"], progress=None)
    assert np.abs(after - before).max() > 1e-4


def test_fit_checkpoints_and_resumes_at_the_saved_step(tmp_path):
    """`fit(workdir=...)` saves orbax checkpoints (the shared Trainer's); a fresh trainer resumes from the newest
    with the same weights and continues to max_steps."""
    first = _tiny_trainer(max_steps=4, checkpoint_every=2, max_hard_negatives=0)
    first.fit(log=lambda *_: None, workdir=tmp_path)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [2, 4]
    again = _tiny_trainer(max_steps=6, checkpoint_every=2, max_hard_negatives=0)
    assert again.restore_latest(tmp_path) and again.step == 4
    for a, b in zip(jax.tree.leaves(nnx.state(first.model(), nnx.Param)),
                    jax.tree.leaves(nnx.state(again.model(), nnx.Param)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    history = again.fit(log=lambda *_: None, workdir=tmp_path)
    assert again.step == 6 and [h["step"] for h in history] == [5, 6]


def test_real_data_kb_and_samples_name_every_gold_title():
    """AIDA and REBEL-sample DPR samples from the shared data: every window with a linked mention becomes one sample
    whose positives are exactly its gold titles / relations in the KB (the configs' data path, end to end)."""
    from relik_jax.data import corpora as datasets
    from relik_jax.data import windowing
    from relik_jax.data.retrieval import aida_kb_and_samples, relation_kb_and_samples

    config = get_config()
    kb, splits = aida_kb_and_samples(config)
    texts = [d.text for d in kb]
    windows = list(windowing.labelled_windows(datasets.read_aida("testb"), 32, 16, use_dataset_words=True))
    gold = [sorted({lab.strip() for _, _, lab in w["window_labels"]} - {datasets.NME}) for w in windows]
    gold = [g for g in gold if g]
    assert len(splits["testb"]) == len(gold) > 1000
    assert [sorted({texts[p] for p in s.positives}) for s in splits["testb"]] == gold
    assert all(s.doc_topic for s in splits["testb"])  # AIDA queries carry the document's first word
    assert len(splits["train"]) > 5 * len(splits["testb"]) // 2

    config.dataset, config.window_size, config.window_stride = "rebel", 64, 32
    kb, splits = relation_kb_and_samples(config)
    texts = [d.text for d in kb]
    assert splits["train"] and splits["test"]
    docs = list(datasets.read_rebel_sample())
    windows = list(windowing.labelled_windows(docs[int(len(docs) * 0.9):], 64, 32))
    # relations outside the KB (the sample's relation-count list) are not positives
    gold = [sorted({t["relation"].strip() for t in w.get("window_triplet_labels", [])} & set(texts)) for w in windows]
    assert [sorted({texts[p] for p in s.positives}) for s in splits["test"]] == [g for g in gold if g]
