"""Triplet decoding's list-based snapping against the reference's dict loops (`_snap`, written as the reference's
`_convert_annotations`), on random sub-token -> word maps with every edge: starts left of the text or in the
candidates, ends past the words or before the text, rows without a word start / end."""

import numpy as np

from relik_jax.reader.decoding import _snap, _snap_lists
from relik_jax.reader.inputs import TextTokens


def test_snap_lists_equals_the_reference_loops():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(0, 12))
        word_start = np.where(rng.random(n) < 0.5, np.arange(n) + 3, -1)
        word_end = np.where(rng.random(n) < 0.5, np.arange(n) + 3, -1)
        zeros = np.zeros(n, np.int64)
        text = TextTokens(np.zeros(n, np.int32), zeros, zeros, word_start, word_end)
        n_tokens = n + 2 + int(rng.integers(0, 5))  # words + [SEP] + candidates + [SEP]
        for s in range(-2, n_tokens + 1):
            for e in range(-2, n_tokens + 1):
                expected = _snap(text, n_tokens, s, e)
                assert _snap_lists(text.word_starts, text.word_ends, n, n_tokens, s, e) == expected, (s, e)
