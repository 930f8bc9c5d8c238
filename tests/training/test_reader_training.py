"""Reader training: label positions on hand-built windows (computed by hand), batch format, augmentation, a few
steps reduce the loss, and resume from a checkpoint continues at the right step."""

import dataclasses
import json

import numpy as np
import pytest
from flax import nnx
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

from configs import default
from configs.tiny import get_config
from relik_jax.engine.buckets import Buckets
from relik_jax.reader.inputs import (
    NME,
    SpanInputConfig,
    TokenizerInfo,
    TripletInputConfig,
    relation_symbols,
    span_symbols,
)
from relik_jax.reader.losses import IGNORE, loss_fn
from relik_jax.reader.model import ReaderConfig, build_reader
from relik_jax.text.windows import Window
from relik_jax.training.reader_batching import collate, epoch_examples
from relik_jax.training.reader_data import aida_splits, load_splits
from relik_jax.training.reader_examples import augment_span, augment_triplet, span_examples, triplet_example
from relik_jax.training.reader_model import TINY_BACKBONES, add_symbols, build_training_reader
from relik_jax.training.reader_train import train_reader
from relik_jax.training.trainer import Trainer, make_optimizer

# "obama" -> ob ##ama: a two-sub-token word, so start and end labels land on different positions.
VOCAB = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "barack", "ob", "##ama", "visited", "paris", "rome", ".", "lives",
         "in", "work", "_", "for", "live"]


def hand_tokenizer(symbols: list[str]) -> Tokenizer:
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    return add_symbols(tok, symbols)


def window(words: list[str], **kw) -> Window:
    starts, pos = [], 0
    for w in words:
        starts.append(pos)
        pos += len(w) + 1
    return Window.from_words(words, starts, [s + len(w) for s, w in zip(starts, words, strict=True)], **kw)


def test_el_labels_by_hand():
    symbols = span_symbols(3)  # --NME--, [E-0], [E-1], [E-2] = ids 17..20
    tok = hand_tokenizer(symbols)
    info = TokenizerInfo.from_tokenizer(tok)
    # "Barack Obama visited Paris ." chars: Barack 0-6, Obama 7-12, visited 13-20, Paris 21-26
    labels = [(0, 12, "Barack_Obama"), (13, 20, "Not_A_Candidate"), (21, 26, "Paris"), (21, 26, "Rome")]
    w = window(["Barack", "Obama", "visited", "Paris", "."], span_candidates=["Paris", "Barack Obama", "Rome"],
               labels=labels)
    (ex,) = span_examples(w, tok, info, SpanInputConfig(tuple(symbols), use_nme=True))
    # row: 0 CLS, 1 barack, 2 ob, 3 ##ama, 4 visited, 5 paris, 6 ., 7 SEP, then the candidates
    # predictable = [NME, Paris, Barack Obama, Rome] as "--NME--", "[E-0] paris", "[E-1] barack ob ##ama",
    # "[E-2] rome", then SEP.
    assert ex.input_ids[:8].tolist() == [1, 4, 5, 6, 7, 8, 10, 2]
    assert ex.mentions == [(1, 3), (4, 4), (5, 5)]
    # Barack Obama = candidate 2 -> 3; the missing title -> NME (index 0) -> 1; Paris = 1 -> 2 ("Rome" on the same
    # span is a second label: ignored)
    assert ex.ed_labels == [3, 1, 2]
    b = collate([ex], 32, 2, Buckets(), info.pad_id, span=True)
    start = b["start_labels"][0]
    assert start[:8].tolist() == [IGNORE, 1, 0, 0, 1, 1, 0, IGNORE]
    assert (start[8:] == IGNORE).all() and (b["start_labels"][1] == IGNORE).all()
    assert b["starts"][0, :3].tolist() == [1, 4, 5] and b["start_valid"][0].tolist()[:4] == [True] * 3 + [False]
    ends = b["end_labels"][0]
    assert ends[0, :8].tolist() == [IGNORE, 0, 0, 1, 0, 0, 0, IGNORE]
    assert ends[1, :8].tolist() == [IGNORE, 0, 0, 0, 1, 0, 0, IGNORE]
    assert ends[2, :8].tolist() == [IGNORE, 0, 0, 0, 0, 1, 0, IGNORE]
    assert (ends[3] == IGNORE).all()
    assert b["mention_start"][0, :3].tolist() == [1, 4, 5] and b["mention_end"][0, :3].tolist() == [3, 4, 5]
    assert b["ed_labels"][0, :4].tolist() == [3, 1, 2, IGNORE]
    # column 0 = CLS, then the 4 symbol positions in input order
    nme = tok.token_to_id(NME)
    sym = [i for i, t in enumerate(ex.input_ids.tolist()) if t >= nme]
    assert b["symbol_pos"][0, :5].tolist() == [0, *sym] and b["symbol_valid"][0].sum() == 5
    # the ed label indexes the column whose symbol introduces the gold candidate
    assert ex.input_ids[b["symbol_pos"][0, 3]] == tok.token_to_id("[E-1]")
    assert tok.decode(ex.input_ids[sym[2] + 1: sym[3]].tolist()) == "barack obama"


def test_el_labels_without_nme_drop_missing_titles():
    symbols = span_symbols(3)
    tok = hand_tokenizer(symbols)
    w = window(["Barack", "Obama", "visited", "Paris", "."], span_candidates=["Paris"])
    lw = dataclasses.replace(w, labels=[(0, 12, "Barack Obama"), (21, 26, "Paris")])
    (ex,) = span_examples(lw, tok, TokenizerInfo.from_tokenizer(tok), SpanInputConfig(tuple(symbols), use_nme=False))
    assert ex.mentions == [(5, 5)] and ex.ed_labels == [1]


def test_re_and_cie_labels_by_hand():
    rels = relation_symbols(2)
    types = span_symbols(2)  # NME, [E-0], [E-1]
    tok = hand_tokenizer(rels + types)
    info = TokenizerInfo.from_tokenizer(tok)
    # "Obama lives in Paris ." -> 0 CLS, 1 ob, 2 ##ama, 3 lives, 4 in, 5 paris, 6 ., 7 SEP
    w = window(["Obama", "lives", "in", "Paris", "."], triplet_candidates=["Work_For", "Live_In"],
               span_candidates=["Loc", "Peop"])
    lw = dataclasses.replace(w, word_labels=[(3, 4, "Loc"), (0, 1, "Peop")],
                             word_triplet_labels=[((0, 1, "Peop"), "Live_In", (3, 4, "Loc"))])
    ex = triplet_example(lw, tok, info, TripletInputConfig(tuple(rels), tuple(types), use_nme=True))
    assert ex.input_ids[:8].tolist() == [1, 5, 6, 11, 12, 8, 10, 2]
    assert ex.mentions == [(1, 2), (5, 5)]
    expected = np.zeros((2, 2, 2), np.int8)
    expected[0, 1, 1] = 1  # Obama -Live_In-> Paris
    np.testing.assert_array_equal(ex.relation_labels, expected)
    # entity candidates [NME, Loc, Peop]: Obama = Peop (2), Paris = Loc (1)
    np.testing.assert_array_equal(ex.type_labels, [[0, 0, 1], [0, 1, 0]])
    b = collate([ex], 32, 1, Buckets(), info.pad_id, span=False, typed=True)
    assert b["start_labels"][0, :8].tolist() == [IGNORE, 1, 0, 0, 0, 1, 0, IGNORE]
    # RE end labels are -100 before their start
    assert b["end_labels"][0, 0, :8].tolist() == [IGNORE, 0, 1, 0, 0, 0, 0, IGNORE]
    assert b["end_labels"][0, 1, :8].tolist() == [IGNORE] * 5 + [1, 0, IGNORE]
    rl = b["relation_labels"][0]
    assert rl[:2, :2, :2].tolist() == expected.tolist() and (rl[2:] == IGNORE).all() and (rl[:, :, 2:] == IGNORE).all()
    assert ex.input_ids[b["rel_pos"][0, :2]].tolist() == [tok.token_to_id(r) for r in rels]
    assert ex.input_ids[b["type_pos"][0, :3]].tolist() == [tok.token_to_id(t) for t in types]


def test_augmentation_seeded_and_gold_forced():
    w = window(["a"], span_candidates=[f"c{i}" for i in range(10)], triplet_candidates=["r0", "r1", "r2", "r3"])
    lw = dataclasses.replace(w, labels=[(0, 1, "c1"), (0, 1, "c2")],
                             word_triplet_labels=[((0, 1, "x"), "gold", (0, 1, "y"))])
    a = augment_span(lw, np.random.default_rng(3), 1.0, 0.0)
    assert a == augment_span(lw, np.random.default_rng(3), 1.0, 0.0)
    assert a[0] != w.span_candidates and sorted(a[0]) == w.span_candidates  # shuffled
    # dropping: with 3 distinct gold titles, 0..1 of the shuffled labels' titles become NME and leave the candidates
    lw3 = dataclasses.replace(w, labels=[(0, 1, "c1"), (0, 1, "c2"), (0, 1, "c3")])
    for seed in range(20):
        cands, labels = augment_span(lw3, np.random.default_rng(seed), 0.0, 1.0)
        dropped = {t for *_, t in lw3.labels} - {t for *_, t in labels}
        assert len(dropped) <= 1 and not dropped & set(cands) and len(cands) == 10 - len(dropped)
        assert [t for *_, t in labels].count(NME) == len(dropped)
    trip, _ = augment_triplet(lw, np.random.default_rng(0), 4, 0.0, 0.0)
    assert trip == ["r0", "r1", "r2", "gold"]  # replaces the last non-gold candidate, order kept
    flipped, _ = augment_triplet(lw, np.random.default_rng(0), 4, 0.0, 1.0)
    assert sorted(flipped) == sorted(trip) and "gold" in flipped


def tiny_config(**overrides):
    c = get_config()
    c.update(dict(toy_train=24, toy_eval=6, num_steps=4, eval_every=0, checkpoint_every=2, log_every=1,
                  token_batch_size=512, seq_lens=(128,), verbose=False, final_test=False))
    c.update(overrides)
    return c


def test_few_steps_reduce_the_loss():
    from relik_jax.data import toy as toy_data
    from relik_jax.models.backbones import backbone_config_from_dict
    c = tiny_config()
    tok = toy_data.toy_tokenizer()
    cfg = ReaderConfig(architecture="RelikReaderSpanModel", additional_special_symbols=c.candidates_per_forward + 1,
                       linears_hidden_size=32)
    add_symbols(tok, span_symbols(c.candidates_per_forward))
    bb = dict(TINY_BACKBONES["tiny-bert"], vocab_size=tok.get_vocab_size())
    model = build_reader(cfg, backbone_config_from_dict(bb), rngs=nnx.Rngs(0))
    info = TokenizerInfo.from_tokenizer(tok)
    windows = load_splits(c)["train"][:8]
    exs = epoch_examples(windows, cfg, c, tok, info, None)
    batch = collate(exs, 128, 8, Buckets(seq_lens=(128,)), info.pad_id, span=True)
    tx = make_optimizer(nnx.state(model, nnx.Param), learning_rate=3e-3, total_steps=100, warmup_steps=0)
    trainer = Trainer(model, tx, loss_fn)
    losses = [float(trainer.train_step(batch)["loss"]) for _ in range(12)]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.6 * losses[0], losses


def test_resume_continues_at_the_right_step(tmp_path):
    r1 = train_reader(tiny_config(), tmp_path)
    assert r1["steps"] == 4 and r1["steps_this_run"] == 4 and not r1["resumed"]
    r2 = train_reader(tiny_config(num_steps=6), tmp_path)
    assert r2["resumed"] and r2["steps"] == 6 and r2["steps_this_run"] == 2
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "best" / "reader_config.json").is_file()
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 6
    assert r2["train_step_compiles"] == 1  # one L bucket, floored S/M/C: one train-step shape


def test_toy_tokenizer_is_the_same_in_every_process():
    """Checkpoints trained on the toy world are reloaded by other processes: the vocabulary must not depend on the
    hash seed (a trained WordPiece breaks frequency ties in hash-map order)."""
    import os
    import subprocess
    import sys

    code = ("import json; from relik_jax.data.toy import toy_tokenizer; "
            "print(json.dumps(sorted(toy_tokenizer().get_vocab().items())))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1 and len(json.loads(outs.pop())) > 100


def test_fresh_heads_start_like_the_reference():
    """head_init='reference': every head Linear ~ U(+-1/sqrt(fan_in)) weights and biases (torch.nn.Linear's default,
    which the reference's heads keep); the backbone is untouched; 'normal' keeps N(0, 0.02) and zero biases."""
    c = default.get_config()
    c.linears_hidden_size = 32
    _, ref_model, _, _ = build_training_reader(c)
    c.head_init = "normal"
    _, normal_model, _, _ = build_training_reader(c)
    heads = 0
    for (path, a), (_, b) in zip(nnx.iter_graph(ref_model), nnx.iter_graph(normal_model), strict=True):
        if not isinstance(a, nnx.Linear):
            continue
        ka, kb = np.asarray(a.kernel.get_value()), np.asarray(b.kernel.get_value())
        if path[0] == "transformer_model":
            np.testing.assert_array_equal(ka, kb)
            continue
        heads += 1
        bound = 1 / np.sqrt(ka.shape[0])
        assert np.abs(ka).max() <= bound and np.abs(ka).max() > 0.9 * bound, path
        assert 0 < np.abs(np.asarray(a.bias.get_value())).max() <= bound, path
        assert np.abs(np.asarray(b.bias.get_value())).max() == 0 and kb.std() < 0.03, path
    assert heads >= 6
    c.head_init = "xavier"
    with pytest.raises(ValueError, match="head_init"):
        build_training_reader(c)


def test_dropout_override():
    """config.dropout: < 0 keeps the model's rates (BERT 0.1, heads 0.1); 0 switches every dropout off, so a
    training-mode forward equals the eval-mode one (the lockstep comparison with the reference relies on it)."""
    def rates(model):
        return {float(n.rate) for _, n in nnx.iter_graph(model) if isinstance(n, nnx.Dropout)}

    c = tiny_config()
    cfg, model, tok, _ = build_training_reader(c)
    assert rates(model) == {0.1}
    c.dropout = 0.0
    cfg, model, tok, _ = build_training_reader(c)
    assert rates(model) == {0.0}
    info = TokenizerInfo.from_tokenizer(tok)
    exs = epoch_examples(load_splits(c)["train"][:4], cfg, c, tok, info, None)
    batch = collate(exs, 128, 4, Buckets(seq_lens=(128,)), info.pad_id, span=True)
    model.eval()
    eval_loss = float(loss_fn(model, batch)[0])
    model.train()
    assert float(loss_fn(model, batch)[0]) == eval_loss
    c.dropout = 0.1
    _, model, _, _ = build_training_reader(c)
    model.train()
    assert float(loss_fn(model, batch)[0]) != eval_loss
    c.dropout = 1.0
    with pytest.raises(ValueError, match="dropout"):
        build_training_reader(c)


def test_reader_init_dropout_follows_the_seed(tmp_path):
    """Training from a saved reader (`config.init="reader"`): the dropout masks follow `config.seed` (loading alone
    would give every seed the same masks); the same seed gives the same masks."""
    from relik_jax.reader.convert import save_reader
    c = tiny_config()
    cfg, model, tok, tok_cfg = build_training_reader(c)
    save_reader(tmp_path / "reader", cfg, model, tok, tok_cfg)
    info = TokenizerInfo.from_tokenizer(tok)
    exs = epoch_examples(load_splits(c)["train"][:4], cfg, c, tok, info, None)
    batch = collate(exs, 128, 4, Buckets(seq_lens=(128,)), info.pad_id, span=True)

    def train_mode_loss(seed: int) -> float:
        _, m, _, _ = build_training_reader(tiny_config(init="reader", backbone=str(tmp_path / "reader"), seed=seed))
        m.train()
        return float(loss_fn(m, batch)[0])

    assert train_mode_loss(1) == train_mode_loss(1)
    assert len({train_mode_loss(s) for s in (0, 1, 2)}) == 3


def test_type_flip_moves_nme_like_the_reference():
    """cIE: the reference inserts NME in front of the type candidates before its flip (a left-to-right pass of
    adjacent swaps, each with p = 1/2), then moves NME back to the front. By hand: the first type stays first unless
    NME and it swap (p 1/2) and NME then does not swap with the second (p 1/2) ... i.e. P(first stays) = 1/2 + 1/4 =
    3/4, P(second first) = 1/4; flipping without NME would give 1/2 and 1/2 (what we did before)."""
    lw = Window.from_words(["x"] * 4, [0, 2, 4, 6], [1, 3, 5, 7], 0, span_candidates=["A", "B", "C", "D"],
                           triplet_candidates=["r0", "r1"])
    rng = np.random.default_rng(0)
    n = 4000
    firsts = [augment_triplet(lw, rng, 2, 0.0, 1.0, span_nme=True)[1][0] for _ in range(n)]
    assert abs(firsts.count("A") / n - 0.75) < 0.03 and abs(firsts.count("B") / n - 0.25) < 0.03
    assert all(sorted(augment_triplet(lw, rng, 2, 0.0, 1.0, span_nme=True)[1]) == ["A", "B", "C", "D"]
               for _ in range(20))
    firsts = [augment_triplet(lw, rng, 2, 0.0, 1.0)[1][0] for _ in range(n)]
    assert abs(firsts.count("A") / n - 0.5) < 0.03


def test_aida_splits_take_the_retriever_top_k_and_cache_them(tmp_path, monkeypatch):
    """configs/aida.py data path on the first AIDA documents of each split: the span candidates are the retriever's
    top-k for the window text + doc topic (the windows' own gold labels untouched), written to the cache once and
    read back identically; without a retriever or a cache the error says what to pass."""
    import itertools

    from configs.aida import get_config as aida_config
    from relik_jax.data import corpora as datasets
    from relik_jax.data import windowing
    from relik_jax.data.retrieval import aida_kb
    from relik_jax.retriever.encoder import Retriever, resolve_encoder

    read = datasets.read_aida
    monkeypatch.setattr(datasets, "read_aida", lambda split: itertools.islice(read(split), 2))
    config = aida_config("cpu")
    config.num_candidates = 5
    config.candidates_cache = str(tmp_path / "cache")
    config.retriever = ""
    with pytest.raises(ValueError, match="config.retriever=ENCODER_FOLDER"):
        aida_splits(config)
    config.retriever = "all-MiniLM-L6-v2"
    first = aida_splits(config)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "aida_testa_top5.jsonl", "aida_testb_top5.jsonl", "aida_train_top5.jsonl"]
    retriever = Retriever.from_pretrained(resolve_encoder("all-MiniLM-L6-v2"))
    retriever.build_index(aida_kb(), progress=None)
    windows = list(windowing.labelled_windows(read("testb"), 32, 16, use_dataset_words=True))[: len(first["test"])]
    expected = retriever.retrieve([w["text"] for w in windows], 5, [w["doc_topic"] for w in windows])
    assert [lw.span_candidates for lw in first["test"]] == [[d.document.text for d in r] for r in expected]
    assert [lw.labels for lw in first["test"]][:3] == [
        [tuple(lab) for lab in w["window_labels"]] for w in windows[:3]]
    config.retriever = ""  # the cache alone is enough now
    again = aida_splits(config)
    for split in ("train", "dev", "test"):
        assert again[split] == first[split]


@pytest.mark.parametrize("variant", ["el", "cie"])
def test_padding_to_the_longest_row_keeps_batches_and_losses(variant):
    """`train_pad_multiple`: the same batch plan, each batch cut from its L bucket to its longest row rounded up;
    the cut columns held only padding, and the loss is the bucket-padded batch's (to float rounding)."""
    from relik_jax.training.reader_batching import train_batches

    c = get_config(variant)
    c.update(dict(toy_train=40, dropout=0.0))
    cfg, model, tok, _ = build_training_reader(c)
    model.eval()
    info = dataclasses.replace(TokenizerInfo.from_tokenizer(tok), model_max_length=c.max_length)
    buckets = Buckets(seq_lens=tuple(c.seq_lens), token_budget=c.token_batch_size, max_rows=c.max_rows)
    train = load_splits(c)["train"]
    full = train_batches(train, cfg, c, tok, info, buckets)
    c_cut = c.copy_and_resolve_references()
    c_cut.train_pad_multiple = 8
    cut = train_batches(train, cfg, c_cut, tok, info, buckets)
    shorter = 0
    for _ in range(8):
        a, b = next(full), next(cut)
        n = b["input_ids"].shape[1]
        assert n % 8 == 0 or n == a["input_ids"].shape[1]
        shorter += n < a["input_ids"].shape[1]
        assert not a["attention_mask"][:, n:].any()  # only padding was cut
        for k, v in b.items():
            want = a[k]
            if k in ("input_ids", "attention_mask", "token_type_ids", "prediction_mask", "start_labels"):
                want = want[:, :n]
            elif k == "end_labels":
                want = want[..., :n]
            np.testing.assert_array_equal(v, want, err_msg=k)
        la, lb = float(loss_fn(model, a)[0]), float(loss_fn(model, b)[0])
        assert abs(la - lb) <= 1e-5 * abs(la), (la, lb)
    assert shorter > 0
