"""Flat mentions and pairs of a batch (host side of `relate_pairs`), checked against a by-hand enumeration."""

import numpy as np

from relik_jax.reader.pairs import flat_pairs


def test_flat_pairs_enumerates_each_rows_pairs_subject_major():
    counts = np.array([2, 0, 3])
    f = flat_pairs(counts, chunk=4)
    assert f.row[:5].tolist() == [0, 0, 2, 2, 2] and f.slot[:5].tolist() == [0, 1, 0, 1, 2]
    want = [(0, 0), (0, 1), (1, 0), (1, 1)] + [(2 + i, 2 + j) for i in range(3) for j in range(3)]
    n = len(want)
    assert list(zip(f.subj[:n].tolist(), f.obj[:n].tolist(), strict=True)) == want
    assert f.valid.sum() == n and len(f.subj) % 4 == 0 and len(f.subj) >= n and len(f.row) >= 5
    probs = np.arange(len(f.subj) * 2, dtype=float).reshape(-1, 2)
    blocks = f.per_row(probs, mentions=False)
    assert [b.shape for b in blocks] == [(2, 2, 2), (0, 0, 2), (3, 3, 2)]
    assert blocks[2][1, 2].tolist() == probs[4 + 1 * 3 + 2].tolist()
    assert [b.tolist() for b in f.per_row(np.arange(8), mentions=True)] == [[0, 1], [], [2, 3, 4]]


def test_no_mentions_gives_only_padding():
    f = flat_pairs(np.array([0, 0]), chunk=512)
    assert not f.valid.any() and len(f.subj) > 0 and len(f.row) > 0
