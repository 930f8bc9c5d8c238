"""FLOP counts of ReLiK's forward passes (encoders, reader heads, retrieval search), from closed formulas.

Convention: one multiply-add = 2 FLOPs; only matrix products are counted (projections, attention scores and
context, the DeBERTa position terms, head MLPs, the RE Hadamard product). Element-wise work (softmax, LayerNorm,
GELU, bias adds, gathers) is left out: it is memory-bound and a few percent of the total. The counts are the work
the *algorithm* needs, so `flops / peak` is a floor on the device time ("FLOP floor").

Per encoder layer on a [B, L] batch with hidden H, FFN F (all heads together):
    Q, K, V, output projections    4 * 2*B*L*H*H
    scores Q.K^T and probs.V        2 * 2*B*L*L*H
    FFN                             2 * 2*B*L*H*F
DeBERTa-v2/v3 adds, with P relative-embedding rows in use (P = 2L-1 up to L = 129, then log buckets; see
`deberta_relative_rows`):
    position keys/queries           2 * 2*P*H*H      (key_proj / query_proj of the P rows, once per layer)
    c2p and p2c                     2 * 2*B*L*P*H    (Q.pos_K^T and K.pos_Q^T; gathered to [L, L] afterwards)
Reader heads (reference §2.3/2.4; D = linears_hidden_size = 512; S mentions/entities per row, N starts per row):
see `span_head_flops` and `re_head_flops`. The XLNet-style end pooler `dense_0([h_j; h_s])` is counted factored,
`W_a h_j + W_b h_s` (one [H, H] product per token plus one per start), which is what an efficient reader computes.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from relik_jax.models.deberta import relative_positions

LINEARS_HIDDEN = 512  # `linears_hidden_size` of every hub reader


def linear_flops(rows: int, din: int, dout: int) -> int:
    """A [rows, din] x [din, dout] product."""
    return 2 * rows * din * dout


def mlp_flops(rows: int, dims: tuple[int, ...]) -> int:
    """A stack of linears din -> ... -> dout applied to `rows` vectors."""
    return sum(linear_flops(rows, a, b) for a, b in zip(dims[:-1], dims[1:], strict=False))


@dataclasses.dataclass(frozen=True)
class EncoderShape:
    """What the FLOP count of an encoder depends on (a BertConfig / DebertaV2Config has these fields)."""

    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    deberta: bool = False
    position_buckets: int = 256
    max_relative: int = 512

    @classmethod
    def of(cls, config) -> EncoderShape:
        """From a `BertConfig` or `DebertaV2Config`."""
        deberta = hasattr(config, "pos_att_type")
        return cls(config.hidden_size, config.num_hidden_layers, config.intermediate_size, deberta,
                   getattr(config, "position_buckets", 256), getattr(config, "max_relative", 512))


@functools.lru_cache(maxsize=256)
def deberta_relative_rows(length: int, position_buckets: int = 256, max_relative: int = 512) -> int:
    """P: how many relative-embedding rows a length-L DeBERTa forward uses (distinct clipped buckets of i - j)."""

    rel = relative_positions(length, position_buckets, max_relative)
    span = position_buckets if position_buckets > 0 else max_relative
    idx = np.clip(rel + span, 0, 2 * span - 1)
    return int(idx.max() - idx.min() + 1)


def encoder_layer_flops(shape: EncoderShape, batch: int, length: int) -> int:
    """One transformer layer on a [batch, length] padded batch."""
    h, f, bl = shape.hidden_size, shape.intermediate_size, batch * length
    total = 4 * linear_flops(bl, h, h) + 2 * (2 * bl * length * h) + linear_flops(bl, h, f) + linear_flops(bl, f, h)
    if shape.deberta:
        p = deberta_relative_rows(length, shape.position_buckets, shape.max_relative)
        total += 2 * linear_flops(p, h, h) + 2 * (2 * bl * p * h)
    return total


def encoder_flops(shape: EncoderShape, batch: int, length: int) -> int:
    """The whole encoder (embedding lookups are free) on a [batch, length] padded batch."""
    return shape.num_hidden_layers * encoder_layer_flops(shape, batch, length)


def span_head_flops(hidden: int, rows: int, length: int, mentions: int, candidates: int,
                    d: int = LINEARS_HIDDEN) -> int:
    """EL reader heads (`RelikReaderSpanModel`) on `rows` rows of `length` tokens.

    mentions: predicted starts (= mentions, one end each) per row; candidates: symbol columns per row (CLS + NME +
    K entity symbols).
    """
    tokens = rows * length
    start = mlp_flops(tokens, (hidden, d, 2))                            # ned_start_classifier
    end = (linear_flops(tokens, hidden, hidden) + linear_flops(rows * mentions, hidden, hidden)  # dense_0, factored
           + linear_flops(rows * mentions * length, hidden, 1))         # dense_1 for every (start, position)
    projected = rows * (mentions + candidates)
    ed = 2 * mlp_flops(projected, (hidden, d, d))                       # ed_start/ed_end projectors
    ed += 2 * rows * mentions * candidates * (2 * d)                    # [S, 2D] x [2D, C] per row
    return start + end + ed


def re_head_flops(hidden: int, rows: int, length: int, entities: int, relations: int, *, types: int = 0,
                  starts: int | None = None, d: int = LINEARS_HIDDEN) -> int:
    """RE / cIE reader heads (`RelikReaderREModel`) on `rows` rows of `length` tokens.

    entities: predicted spans S per row; relations: relation symbols R; types: entity symbols T (cIE, with
    `entity_type_loss` and `add_entity_embedding`; 0 for plain RE); starts: predicted starts (default S).
    """
    starts = entities if starts is None else starts
    tokens, s = rows * length, entities
    start = mlp_flops(tokens, (hidden, d, 2))
    end = (linear_flops(tokens, hidden, hidden) + linear_flops(rows * starts, hidden, hidden)
           + linear_flops(rows * starts * length, hidden, 2))           # PoolerEndLogitsBi
    k = 3 if types else 2
    typing = 0
    if types:
        typing = (mlp_flops(rows * s, (2 * hidden, d, d)) + mlp_flops(rows * (types + relations), (hidden, d, d))
                  + 2 * rows * s * (types + relations) * d                  # entity x symbol logits
                  + 2 * rows * s * types * hidden)                         # sigmoid-weighted type embedding
    projector = mlp_flops(rows * s, (k * hidden, k * d, 2 * d))          # re_projector -> subject | object
    relation = mlp_flops(rows * relations, (hidden, d, d))                # re_relation_projector
    pairs = rows * s * s * relations
    hadamard = 2 * pairs * d                                             # subj * obj * rel
    classifier = mlp_flops(pairs, (d, d, 2))                             # re_classifier on every (i, j, r)
    return start + end + typing + projector + relation + hadamard + classifier


def search_flops(queries: int, passages: int, dim: int) -> int:
    """Exhaustive inner-product search: [Q, d] x [d, N] (top-k selection not counted)."""
    return linear_flops(queries, dim, passages)
