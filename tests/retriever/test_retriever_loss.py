"""Multi-label NCE loss against numbers computed by hand (math module, one term at a time)."""

import math

import jax.numpy as jnp
import numpy as np

from relik_jax.retriever.loss import multi_label_nce_loss

# Pool of 5 passages: p0, p1 gold for q0; p2 gold for q1; p3, p4 mined hard negatives (q0's and q1's).
SCORES = [
    [2.0, 1.0, 0.5, 1.5, -1.0],  # q0
    [0.3, -0.2, 3.0, 0.1, 2.5],  # q1
]
LABELS = [
    [1, 1, 0, 0, 0],
    [0, 0, 1, 0, 0],
]


def _hand_loss() -> float:
    # q0: negatives are p2 (in-batch), p3, p4 (hard negatives); positives p0, p1 each against the negatives
    # only.
    neg0 = math.exp(0.5) + math.exp(1.5) + math.exp(-1.0)
    log_p00 = 2.0 - math.log(math.exp(2.0) + neg0)
    log_p01 = 1.0 - math.log(math.exp(1.0) + neg0)
    # q1: negatives p0, p1 (in-batch), p3, p4.
    neg1 = math.exp(0.3) + math.exp(-0.2) + math.exp(0.1) + math.exp(2.5)
    log_p12 = 3.0 - math.log(math.exp(3.0) + neg1)
    return -(log_p00 + log_p01 + log_p12) / 2  # divided by the number of questions


def test_hand_computed_two_positives_in_batch_and_hard_negatives():
    expected = _hand_loss()
    assert abs(expected - 1.21135) < 1e-4  # by hand: (0.6309 + 1.2210 + 0.5708) / 2
    got = float(multi_label_nce_loss(jnp.array(SCORES), jnp.array(LABELS)))
    assert abs(got - expected) < 1e-6, (got, expected)


def test_padding_masks_do_not_change_the_loss():
    scores = np.full((3, 7), 50.0, np.float32)  # padding scores are huge: they would dominate if not masked
    scores[:2, :5] = SCORES
    labels = np.zeros((3, 7), np.int32)
    labels[:2, :5] = LABELS
    labels[2, 0] = 1  # a padding question with a "positive" must not count
    got = float(
        multi_label_nce_loss(
            jnp.array(scores),
            jnp.array(labels),
            passage_mask=jnp.array([1, 1, 1, 1, 1, 0, 0], bool),
            question_mask=jnp.array([1, 1, 0], bool),
        )
    )
    assert abs(got - _hand_loss()) < 1e-6


def test_question_without_negatives_contributes_zero():
    got = float(multi_label_nce_loss(jnp.array([[1.0, 2.0]]), jnp.array([[1, 1]])))
    assert got == 0.0


def test_shape_mismatch_is_a_clear_error():
    try:
        multi_label_nce_loss(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    except ValueError as e:
        assert "[B, P]" in str(e)
    else:
        raise AssertionError("expected ValueError")
