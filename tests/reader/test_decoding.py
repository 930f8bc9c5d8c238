"""Decoding's list-based snapping (`_snap`) against the reference's dict loops (`_convert_annotations`, written out
below), on random sub-token -> word maps with every edge: starts left of the text or in the candidates, ends past the
words or before the text, rows without a word start / end."""

import numpy as np

from relik_jax.reader.decoding import _snap
from relik_jax.reader.inputs import TextTokens


def reference_snap(text: TextTokens, n_tokens: int, s: int, e: int) -> tuple[int, int] | None:
    while s not in text.token2word_start:
        s -= 1
        if s < 0:
            break
    while e not in text.token2word_end:
        e += 1
        if e >= n_tokens:
            break
    if s < 0 or e >= n_tokens:
        return None
    return text.token2word_start[s], text.token2word_end[e]


def test_snap_equals_the_reference_loops():
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
                assert _snap(text, n_tokens, s, e) == reference_snap(text, n_tokens, s, e), (s, e)
