"""The shared building blocks: Linear on a 2-D view, torch's GELU form, the cheaper dropout mask."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from relik_jax.models import layers


def test_linear_on_a_2d_view_is_the_dense_layer():
    lin = layers.linear(6, 5, dtype=jnp.float32, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 3, 4, 6))
    want = np.einsum("abcd,de->abce", np.asarray(x, np.float64), np.asarray(lin.kernel.get_value(), np.float64))
    want += np.asarray(lin.bias.get_value(), np.float64)
    got = lin(x)
    assert got.shape == (2, 3, 4, 5)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


def test_gelu_is_the_erf_form():
    x = np.linspace(-8, 8, 1001, dtype=np.float32)
    want = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    np.testing.assert_allclose(np.asarray(layers.gelu(jnp.asarray(x))), want, atol=2e-6)


def test_dropout_keeps_the_rate_scale_and_fresh_draws():
    d = layers.dropout(0.1, rngs=nnx.Rngs(0))
    x = jnp.ones((32, 1024, 64))  # 2M draws: sd of the drop fraction 2.1e-4
    assert d(x) is x  # deterministic (inference) by default
    d.deterministic = False
    a, b = d(x), d(x)
    for y in (a, b):
        assert abs(float(jnp.mean(y == 0)) - 0.1) < 1e-3
        np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, 1 / 0.9], rtol=1e-6)
    # successive calls draw new masks, independent of each other: P(both drop) = 0.01
    assert abs(float(jnp.mean((a == 0) & (b == 0))) - 0.01) < 5e-4
    # broadcast dims share one mask along them
    db = layers.Dropout(0.5, deterministic=False, broadcast_dims=(0,), rngs=nnx.Rngs(1))
    z = np.asarray(db(jnp.ones((4, 256, 32))))
    assert (z == z[:1]).all() and 0.45 < float((z == 0).mean()) < 0.55
