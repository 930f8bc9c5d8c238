"""Benchmark workload rules: the reference's windowing and inference batching (relik-reference.md §1.5, §1.6),
our length buckets, and the reader input layout and masks (§1.3). Expected values are worked out by hand."""

import numpy as np

from benchmarks import workloads as W


def test_split_windows_matches_reference_example():
    # §1.6: n=40, size 32, stride 16 -> [0, 32), [8, 40) (the last window is shifted left to be full).
    assert W.split_windows(40, 32, 16) == [(0, 32), (8, 40)]
    assert W.split_windows(10, 32, 16) == [(0, 10)]
    assert W.split_windows(64, 32, 16) == [(0, 32), (16, 48), (32, 64)]


def _rows(lengths, symbols=3):
    return [W.Row(np.arange(n, dtype=np.int32) + 5, 4, symbols, 1, i) for i, n in enumerate(lengths)]


def test_reference_batches_greedy_token_budget():
    # Flush before adding a row when max_len * (len(batch) + 1) >= 2048, or at 32 rows, or when symbols change.
    rows = _rows([500, 500, 500, 600, 100])
    # 500*2 < 2048, 500*3 < 2048, then 600*4 >= 2048 -> flush [0,1,2]; then [3, 4] (600*2 < 2048).
    assert [b.rows for b in W.reference_batches(rows, "el")] == [[0, 1, 2], [3, 4]]
    mixed = _rows([10, 10]) + _rows([10], symbols=4)
    assert [b.rows for b in W.reference_batches(mixed, "el")] == [[0, 1], [2]]
    assert len(W.reference_batches(_rows([10] * 40), "el")) == 2  # 32 + 8


def test_bucket_plan_powers_of_two_without_padding_rows():
    lengths = [100] * 13 + [130] * 3
    plan = W.bucket_plan(lengths, token_budget=1024, max_batch=64, multiple=64)
    # L=128 bucket: cap = 1024 // 128 = 8 -> 8 + 4 + 1; L=192 bucket: 3 rows -> 2 + 1.
    assert [(len(m), b, n) for m, b, n in plan] == [(8, 8, 128), (4, 4, 128), (1, 1, 128), (2, 2, 192), (1, 1, 192)]
    assert sorted(i for m, _, _ in plan for i in m) == list(range(16))
    assert abs(W.plan_efficiency(lengths, plan) - (13 * 100 + 3 * 130) / (13 * 128 + 3 * 192)) < 1e-12


def test_el_row_layout_and_masks():
    w = W.Workload("aida", "el", [W.Window([7, 8, 9], [101, 7, 102], 1)], 1, [[20, 21], [22]], [[30]], "test")
    (row,) = w.rows(k=2, seed=0)
    ids = row.ids.tolist()
    # [CLS] text [SEP] --NME-- [E-0] title [E-1] title [SEP]
    assert ids[:5] == [W.CLS, 7, 8, 9, W.SEP] and ids[5] == 128001 and ids[-1] == W.SEP
    assert ids[6] == 128002 and 128003 in ids and len(ids) == 5 + 1 + 2 + 3 + 1  # titles [20, 21] and [22]
    b = W.make_batch([row], [0], "el", batch=2, length=len(ids) + 3)
    assert b.input_ids.shape == (2, len(ids) + 3)
    assert (b.input_ids[1] == b.input_ids[0]).all()  # padding rows repeat the last real row
    assert b.prediction_mask[0, :5].tolist() == [1, 0, 0, 0, 1]  # only text sub-words are predictable
    assert b.prediction_mask[0, -3:].tolist() == [1, 1, 1]  # padding positions: 1
    assert b.special_symbols_mask[0].sum() == 1 + 1 + 2  # CLS + NME + K symbols
    assert b.token_type_ids[0, :5].sum() == 0 and b.token_type_ids[0, 5:len(ids)].all()


def test_cie_row_splits_entity_and_relation_symbols():
    w = W.Workload("rebel", "cie", [W.Window([7, 8], [101, 7, 102], 1)], 1, [[20], [21], [22]],
                   [[30], [31], [32]], "test")
    (row,) = w.rows(k=2, seed=0, k_relations=3)
    b = W.make_batch([row], [0], "cie")
    assert b.special_symbols_mask_entities[0].sum() == 3  # NME + 2 entities
    assert b.special_symbols_mask[0].sum() == 3  # 3 relations
    first_rel = int(np.flatnonzero(b.special_symbols_mask[0])[0])
    assert int(np.flatnonzero(b.special_symbols_mask_entities[0])[-1]) < first_rel
