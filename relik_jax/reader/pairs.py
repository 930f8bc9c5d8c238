"""Host side of the relation stage: real mentions flattened across a batch, and the (subject, object) pairs of
each row (`TripletReader.relate_pairs` scores only these).

Rows b = 0..B-1 have M_b mentions; flat mention n = (row, slot) in row order; row b's pairs are its M_b² (i, j)
pairs, i-major, so `re_probs[offset_b : offset_b + M_b²].reshape(M_b, M_b, R)` is that row's [subject, object,
relation] block. N and P are padded to buckets (powers of two; P a multiple of the pair chunk) to bound the number of
compiled programs. Shapes: counts [B] -> row/slot [N], subj/obj/valid [P].
"""

from __future__ import annotations

import dataclasses

import numpy as np

from relik_jax.engine.buckets import pow2_at_least

__all__ = ["FlatPairs", "flat_pairs"]


@dataclasses.dataclass(frozen=True)
class FlatPairs:
    counts: np.ndarray  # [B] mentions per row
    row: np.ndarray  # [N] int32
    slot: np.ndarray  # [N] int32
    subj: np.ndarray  # [P] int32, flat mention index
    obj: np.ndarray  # [P] int32
    valid: np.ndarray  # [P] bool

    def per_row(self, values: np.ndarray, mentions: bool) -> list[np.ndarray]:
        """Split flat outputs back into rows: per mention ([N, ...] -> [M_b, ...]) or per pair ([P, R...] ->
        [M_b, M_b, R...])."""
        out, start = [], 0
        for m in self.counts.tolist():
            size = m if mentions else m * m
            block = values[start:start + size]
            out.append(block if mentions else block.reshape(m, m, *values.shape[1:]))
            start += size
        return out


def flat_pairs(counts: np.ndarray, chunk: int) -> FlatPairs:
    """Flat mentions and pairs of a batch whose rows have `counts` mentions (vectorized, no per-pair Python)."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    n_bucket = pow2_at_least(total, 8)
    rows = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts  # first flat index of each row
    slots = np.arange(total) - starts[rows]
    squares = counts * counts
    n_pairs = int(squares.sum())
    pair_row = np.repeat(np.arange(len(counts)), squares)
    k = np.arange(n_pairs) - (np.cumsum(squares) - squares)[pair_row]  # index within the row's M_b² block
    m = counts[pair_row]
    subj = starts[pair_row] + k // np.maximum(m, 1)
    obj = starts[pair_row] + k % np.maximum(m, 1)
    p_bucket = pow2_at_least(n_pairs, min(chunk, 64))
    p_bucket = -(-p_bucket // min(chunk, p_bucket)) * min(chunk, p_bucket)

    def pad(a: np.ndarray, n: int) -> np.ndarray:
        out = np.zeros(n, np.int32)
        out[: len(a)] = a
        return out

    return FlatPairs(counts, pad(rows, n_bucket), pad(slots, n_bucket), pad(subj, p_bucket), pad(obj, p_bucket),
                     np.arange(p_bucket) < n_pairs)
