"""Static buckets: batching plan, bucket overflow without dropping, bounded compiled programs over 500 windows."""

import time

import numpy as np
import pytest
from reader_helpers import CORPUS, tiny_span_reader, tiny_triplet_reader

from relik_jax.engine.buckets import Buckets, plan_batches
from relik_jax.reader.reader import Reader
from relik_jax.text.windows import Window

WORDS = " ".join(CORPUS[:4]).split(" ")
TITLES = ["Barack Obama", "Honolulu", "Hawaii", "Japan", "Syria", "Steve Jobs", "Apple Inc.", "Cupertino",
          "European Commission", "United States", "Asian Cup", "California"]


def make_window(rng: np.random.Generator, n_words: int, n_cands: int, triplets: bool = False) -> Window:
    start = int(rng.integers(0, len(WORDS) - n_words + 1))
    words = WORDS[start: start + n_words]
    starts, pos = [], 0
    for w in words:
        starts.append(pos)
        pos += len(w) + 1
    cands = [TITLES[int(i)] for i in rng.integers(0, len(TITLES), n_cands)]
    return Window.from_words(words, starts, [s + len(w) for s, w in zip(starts, words, strict=True)],
                             span_candidates=cands, triplet_candidates=["founded by", "born in"] if triplets else None)


def test_pick_and_rows():
    b = Buckets(seq_lens=(64, 128), counts=(4, 8), token_budget=1024, max_rows=32)
    assert [b.seq_len(n) for n in (1, 64, 65, 128, 129, 300)] == [64, 64, 128, 128, 256, 512]
    assert [b.count(n) for n in (0, 4, 5, 9, 17)] == [4, 4, 8, 16, 32]
    assert b.rows(64) == 16 and b.rows(128) == 8 and b.rows(256) == 4 and b.rows(4096) == 1
    assert Buckets.reachable((4, 8), 20) == [4, 8, 16, 32]
    with pytest.raises(ValueError):
        Buckets(seq_lens=(128, 64))


def test_plan_batches_covers_every_row_once():
    b = Buckets(seq_lens=(64, 128, 256), token_budget=512, max_rows=8)
    lengths = [int(x) for x in np.random.default_rng(0).integers(1, 600, 200)]
    batches = plan_batches(lengths, b)
    seen = sorted(i for batch in batches for i in batch.indices)
    assert seen == list(range(200))
    for batch in batches:
        assert all(lengths[i] <= batch.seq_len for i in batch.indices)
        assert len(batch.indices) <= batch.rows <= b.rows(batch.seq_len)
        assert batch.rows & (batch.rows - 1) == 0  # a power of two


def test_partial_batches_split_instead_of_padding_beyond_row_waste():
    lengths = [100] * 11 + [300] * 7  # 11 rows of L 128 (full batch 32), 7 rows of L 320 (full batch 25 -> 16)
    plans = {w: [(b.seq_len, b.rows, len(b.indices)) for b in plan_batches(lengths, Buckets(row_waste=w))]
             for w in (0.0, 0.125, 0.5)}
    assert plans[0.5] == [(128, 16, 11), (320, 8, 7)]  # padded to the next power of two (the old plan)
    assert plans[0.125] == [(128, 8, 8), (128, 2, 2), (128, 1, 1), (320, 8, 7)]  # 1 padded row of 8 is kept
    assert plans[0.0] == [(128, 8, 8), (128, 2, 2), (128, 1, 1), (320, 4, 4), (320, 2, 2), (320, 1, 1)]
    for plan in plans.values():
        assert sum(n for _, _, n in plan) == len(lengths)
        assert all(rows & (rows - 1) == 0 for _, rows, _ in plan)  # only batch sizes program_bound counts
    assert Buckets.for_platform("cpu").row_waste == 0.125 and Buckets.for_platform("gpu").row_waste == 0.5
    with pytest.raises(ValueError, match="row_waste"):
        Buckets(row_waste=0.7)


def test_start_overflow_is_never_dropped():
    """Tiny S / M buckets overflow to larger powers of two: outputs equal those of a roomy configuration."""
    cfg, model, tok = tiny_span_reader(seed=3)
    rng = np.random.default_rng(1)
    windows = [make_window(rng, int(rng.integers(25, 35)), 4) for _ in range(4)]
    one = dict(seq_lens=(128,), text_lens=(64,))
    small = Reader(cfg, model, tok, buckets=Buckets(counts=(2,), **one))
    roomy = Reader(cfg, model, tok, buckets=Buckets(counts=(64,), **one))
    small_preds, roomy_preds = small.read(windows), roomy.read(windows)
    assert max(k[2] for k in small.shapes.seen["ends+heads"]) > 2  # S overflowed the only bucket
    assert sum(len(p.spans) for p in roomy_preds) > 6
    assert [p.spans for p in small_preds] == [p.spans for p in roomy_preds]


def test_compiled_programs_bounded_over_500_windows():
    cfg, model, tok = tiny_span_reader(seed=0)
    buckets = Buckets(seq_lens=(128, 256), text_lens=(64,), counts=(64,), token_budget=4096, max_rows=32)
    reader = Reader(cfg, model, tok, buckets=buckets)
    rng = np.random.default_rng(0)
    windows = [make_window(rng, int(rng.integers(1, 50)), int(rng.integers(0, 12))) for _ in range(500)]
    t0 = time.perf_counter()
    preds = reader.read(windows)
    seconds = time.perf_counter() - t0
    assert len(preds) == 500
    lengths = [len(r) for r in reader.rows(windows)]
    bound = buckets.program_bound(max(lengths), triplet=False)
    used = reader.shapes.counts()
    print(f"500 windows, {len(lengths)} rows (lengths {min(lengths)}..{max(lengths)}) in {seconds:.1f} s: "
          f"{reader.num_compiles} compiled programs {used}; bound {bound}")
    assert reader.num_compiles == used["total"]  # one compilation per distinct static shape, never more
    for stage in ("encode", "ends", "heads", "ends+heads"):
        assert used.get(stage, 0) <= bound[stage]
    assert reader.num_compiles <= bound["total"]
    again = reader.read(windows[:100])  # other batch sizes may add programs, each still compiled once
    assert reader.num_compiles == reader.shapes.counts()["total"] <= bound["total"]
    assert [p.spans for p in again] == [p.spans for p in preds[:100]]


def test_triplet_reader_runs_with_bounded_programs():
    cfg, model, tok = tiny_triplet_reader(seed=0, types=6, n_relations=4)
    reader = Reader(cfg, model, tok, use_nme=True, buckets=Buckets(seq_lens=(128,), text_lens=(16,), counts=(64,)))
    rng = np.random.default_rng(2)
    windows = [make_window(rng, int(rng.integers(1, 7)), int(rng.integers(1, 5)), triplets=True)
               for _ in range(6)]
    preds = reader.read(windows)
    assert len(preds) == 6 and sum(len(p.spans) for p in preds) > 0
    assert reader.num_compiles == reader.shapes.counts()["total"]


def test_untrained_triplet_reader_scores_a_bounded_number_of_mentions():
    """A reader whose start/end heads fire everywhere (an untrained model) predicts ~n^2/2 mentions per row, and the
    pairwise relation cells grow as M^2 (the reference runs out of memory there): only the first `max_mentions` get
    relation scores, with a warning; rows within the cap read exactly as without it."""
    cfg, model, tok = tiny_triplet_reader(seed=0, n_relations=4)
    rng = np.random.default_rng(4)
    normal = [make_window(rng, 4, 0, triplets=True) for _ in range(3)]
    roomy = Reader(cfg, model, tok, relation_threshold=0.3, max_mentions=10_000)
    capped = Reader(cfg, model, tok, relation_threshold=0.3, max_mentions=64)
    expected = roomy.read(normal)
    assert max(k[4] for k in roomy.shapes.seen["heads"]) <= 64  # these rows stay within the cap
    assert [(p.spans, p.triplets) for p in capped.read(normal)] == [(p.spans, p.triplets) for p in expected]
    # make every token a start and every later token an end
    bias = np.array(model.ned_start_classifier[4].bias.get_value())
    bias[1] = 1e4
    model.ned_start_classifier[4].bias.set_value(bias)
    model.ned_end_classifier.dense_1.bias.set_value(model.ned_end_classifier.dense_1.bias.get_value() + 1e4)
    capped.update_model(model)
    with pytest.warns(UserWarning, match="relations are scored among its first 64"):
        preds = capped.read([make_window(rng, 40, 0, triplets=True)])
    assert max(k[4] for k in capped.shapes.seen["heads"]) == 64
    assert 0 < len({s for t in preds[0].triplets for s in (t[0], t[2])}) <= 64


def test_platform_defaults_batch_short_rows_wider_on_accelerators() -> None:
    cpu, gpu = Buckets.for_platform("cpu"), Buckets.for_platform("gpu")
    assert cpu == Buckets(row_waste=0.125) and Buckets.for_platform("tpu") == gpu
    assert [cpu.rows(n) for n in (64, 128, 256, 1024)] == [32, 32, 32, 8]
    assert [gpu.rows(n) for n in (64, 128, 256, 1024)] == [128, 64, 32, 8]  # the token budget still bounds them
