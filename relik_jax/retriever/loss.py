"""Multi-label noise-contrastive estimation loss of the ReLiK retriever (paper Eq. 1, reference §3.4).

For question b and each of its gold passages c:
    log p_bc = s_bc − logaddexp(s_bc, logsumexp_{n ∉ gold(b)} s_bn)
    loss     = −Σ_b Σ_{c ∈ gold(b)} log p_bc / B
Negatives of b are every other passage of the batch pool (other questions' gold passages = in-batch
negatives, plus
the mined hard negatives). Each positive competes only with the negatives, not with b's other positives.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def multi_label_nce_loss(
    scores: jax.Array,
    labels: jax.Array,
    passage_mask: jax.Array | None = None,
    question_mask: jax.Array | None = None,
) -> jax.Array:
    """Mean multi-label NCE loss over (valid) questions.

    scores: [B, P] float, s_bp = q_b · p_p.
    labels: [B, P] {0,1}, 1 where passage p is gold for question b.
    passage_mask: [P] bool, False for padding passages (neither positive nor negative). Default: all valid.
    question_mask: [B] bool, False for padding questions (excluded from sum and count). Default: all valid.
    Returns a float32 scalar.
    """
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"scores and labels must both be [B, P]; got {scores.shape} and {labels.shape}")
    scores = scores.astype(jnp.float32)
    num_q, num_p = scores.shape
    p_valid = jnp.ones((num_p,), bool) if passage_mask is None else passage_mask.astype(bool)
    q_valid = jnp.ones((num_q,), bool) if question_mask is None else question_mask.astype(bool)
    positive = labels.astype(bool) & p_valid[None, :] & q_valid[:, None]
    negative = ~labels.astype(bool) & p_valid[None, :]
    neg_lse = jax.nn.logsumexp(jnp.where(negative, scores, -jnp.inf), axis=-1, keepdims=True)  # [B, 1]
    # A question with no negatives has neg_lse = -inf and logaddexp(s, -inf) = s, i.e. log p = 0.
    log_p = scores - jnp.logaddexp(scores, neg_lse)
    total = -jnp.sum(jnp.where(positive, log_p, 0.0))
    return total / jnp.maximum(jnp.sum(q_valid), 1)
