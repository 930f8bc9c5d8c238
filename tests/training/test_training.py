"""Optimizer schedule, layer-wise LR decay, functional train step and checkpoint resume."""

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from relik_jax.training.trainer import MetricsLog, Trainer, linear_warmup_decay, make_optimizer, param_depth


class Backbone(nnx.Module):
    def __init__(self, rngs):
        self.embeddings = nnx.Linear(3, 3, rngs=rngs)
        self.layer = nnx.List([nnx.Linear(3, 3, rngs=rngs) for _ in range(2)])

    def __call__(self, x):
        x = self.embeddings(x)
        for layer in self.layer:
            x = layer(x)
        return x


class Tiny(nnx.Module):
    def __init__(self, rngs):
        self.transformer_model = Backbone(rngs)
        self.dropout = nnx.Dropout(0.1, deterministic=True, rngs=rngs)  # on in training: RNG state must thread
        self.head = nnx.Linear(3, 1, rngs=rngs)

    def __call__(self, x):
        return self.head(self.dropout(self.transformer_model(x)))[..., 0]


def test_param_depth():
    assert param_depth("embeddings.word_embeddings.embedding", 12) == 0
    assert param_depth("encoder.layer.0.attention.self.query_proj.kernel", 12) == 1
    assert param_depth("transformer_model.encoder.layer.11.output.dense.bias", 12) == 12
    assert param_depth("ed_start_projector.dense.kernel", 12, backbone_prefix="transformer_model.") == 13


def test_schedule_warmup_then_linear_decay():
    s = linear_warmup_decay(1e-4, warmup_steps=10, total_steps=110)
    assert float(s(0)) == 0.0
    np.testing.assert_allclose(float(s(5)), 5e-5, rtol=2e-5)
    np.testing.assert_allclose(float(s(10)), 1e-4, rtol=2e-5)
    np.testing.assert_allclose(float(s(60)), 5e-5, rtol=2e-5)
    np.testing.assert_allclose(float(s(110)), 0.0, atol=1e-12)


def test_layerwise_decay_scales_first_adam_step():
    model = Tiny(nnx.Rngs(0))
    params = nnx.state(model, nnx.Param)
    tx = make_optimizer(params, learning_rate=1.0, total_steps=10**9, weight_decay=0.0, clip_norm=None,
                        layer_lr_decay=0.5, num_layers=2, backbone_prefix="transformer_model.")
    grads = __import__("jax").tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    # Adam's first step is -lr * g/|g| (up to eps), so the update size is exactly the per-depth learning rate:
    # embeddings depth 0 -> 0.5**3, layer.0 -> 0.5**2, layer.1 -> 0.5, head -> 1.
    np.testing.assert_allclose(np.asarray(updates["transformer_model"]["embeddings"]["kernel"]), -0.125, rtol=2e-5)
    np.testing.assert_allclose(np.asarray(updates["transformer_model"]["layer"][0]["kernel"]), -0.25, rtol=2e-5)
    np.testing.assert_allclose(np.asarray(updates["transformer_model"]["layer"][1]["bias"]), -0.5, rtol=2e-5)
    np.testing.assert_allclose(np.asarray(updates["head"]["kernel"]), -1.0, rtol=2e-5)


def test_weight_decay_spares_biases_and_layer_norms():
    """AdamW's decoupled decay (lr * wd * p with a zero gradient) hits kernels only: biases and LayerNorm scales are
    exempt, as in the reference's parameter groups (found by the lockstep test: an nnx.State's leaf paths end in
    '.value', which once hid every bias and head LayerNorm scale from the exemption)."""
    model = Tiny(nnx.Rngs(0))
    model.norm = nnx.LayerNorm(3, rngs=nnx.Rngs(0))
    params = nnx.state(model, nnx.Param)
    tx = make_optimizer(params, learning_rate=1.0, total_steps=10**9, weight_decay=0.1, clip_norm=None)
    zeros = __import__("jax").tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["head"]["kernel"]), -0.1 * np.asarray(params["head"]["kernel"]),
                               rtol=1e-6)
    assert not np.asarray(updates["head"]["bias"]).any()
    assert not np.asarray(updates["norm"]["scale"]).any() and not np.asarray(updates["norm"]["bias"]).any()


def test_train_step_learns_and_resumes(tmp_path):
    x = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5], np.float32)

    def loss_fn(m, batch):
        return jnp.mean((m(batch["x"]) - batch["y"]) ** 2), {}

    def make():
        model = Tiny(nnx.Rngs(0))
        tx = make_optimizer(nnx.state(model, nnx.Param), learning_rate=3e-2, total_steps=200, weight_decay=0.0)
        return Trainer(model, tx, loss_fn)

    trainer = make()
    log = MetricsLog(tmp_path / "metrics.jsonl")
    first = float(trainer.train_step({"x": x, "y": y})["loss"])
    for _ in range(99):
        metrics = trainer.train_step({"x": x, "y": y})
        log.write(trainer.step, loss=metrics["loss"])
    assert float(metrics["loss"]) < 0.3 * first  # dropout keeps the training loss noisy
    assert trainer._step._cache_size() == 1
    trainer.save(tmp_path)
    resumed = make()
    assert resumed.restore_latest(tmp_path) and resumed.step == 100
    np.testing.assert_array_equal(np.asarray(resumed.model()(x)), np.asarray(trainer.model()(x)))
    assert len(log.read()) == 99 and log.plot().is_file()
    assert optax.global_norm(resumed.opt_state) == optax.global_norm(trainer.opt_state)
