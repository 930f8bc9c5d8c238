"""Generic training machinery shared by the reader and the retriever trainers.

- `make_optimizer`: AdamW (or RAdamW) with warmup + linear decay, gradient clipping, no weight decay on biases
  and LayerNorm scales, and optional layer-wise learning-rate decay (Clark et al., 2020, as the paper's Table 4).
- `Trainer`: the functional step (`nnx.split` once; a plain `jax.jit` step over (params, opt_state, rest) with
  donated buffers), orbax checkpoints with resume, a JSONL metrics log and a loss plot.

Data parallelism (`Trainer(..., mesh=4)`, engine/sharding.py): parameters, optimizer state and RNG state are
replicated over the mesh, each batch is split row-wise over its "data" axis, and the step is the same program
over the global batch, so XLA reduces the gradients across devices (and processes under jax.distributed, where
each process passes its own rows of the global batch: `sharding.process_rows`). Checkpoints hold whole arrays;
`restore_latest` places them as the current trainer's arrays are placed, so a run saved on 4 devices resumes on
1 or 2.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from relik_jax.engine import sharding
from relik_jax.extras import missing_extra

_LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.")


def param_depth(key: str, num_layers: int, backbone_prefix: str = "") -> int:
    """ELECTRA-style depth of a parameter: embeddings 0, transformer layer i -> i + 1, heads num_layers + 1."""
    if backbone_prefix and not key.startswith(backbone_prefix):
        return num_layers + 1
    m = _LAYER.search(key)
    if m:
        return int(m.group(1)) + 1
    return 0


def _path_key(path: tuple) -> str:
    return ".".join(str(getattr(p, "key", getattr(p, "idx", getattr(p, "name", p)))) for p in path)


def tree_keys(params: Any) -> Any:
    """A tree like `params` whose leaves are dotted path strings ('encoder.layer.0.attention...kernel').

    An nnx.State flattens each Variable to its `.value`; that last component is dropped, so that names end with
    the parameter's own name ('...LayerNorm.scale', '...bias'), which the weight-decay mask tests."""

    def key(path: tuple, _: Any) -> str:
        k = _path_key(path)
        return k[: -len(".value")] if k.endswith(".value") else k

    return jax.tree_util.tree_map_with_path(key, params)


def linear_warmup_decay(learning_rate: float, warmup_steps: int, total_steps: int) -> optax.Schedule:
    warmup = max(int(warmup_steps), 0)
    decay = max(int(total_steps) - warmup, 1)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, learning_rate, max(warmup, 1)),
         optax.linear_schedule(learning_rate, 0.0, decay)],
        boundaries=[warmup],
    ) if warmup > 0 else optax.linear_schedule(learning_rate, 0.0, decay)


def make_optimizer(params: Any, *, learning_rate: float, total_steps: int, warmup_steps: int = 0,
                   weight_decay: float = 0.01, clip_norm: float | None = 1.0, layer_lr_decay: float | None = None,
                   num_layers: int = 0, backbone_prefix: str = "", optimizer: str = "adamw",
                   lr_multipliers: Callable[[str], float] | None = None) -> optax.GradientTransformation:
    """Optimizer for `params` (an nnx.State of Params or any pytree).

    `layer_lr_decay=d` scales the learning rate of a parameter at depth k by d ** (num_layers + 1 - k).
    `lr_multipliers(key)` adds a per-parameter factor (e.g. 10x for the retriever's pooling LayerNorm).
    """
    keys = tree_keys(params)
    no_decay = jax.tree.map(lambda k: not (k.endswith(("bias", "scale")) or "LayerNorm" in k), keys)
    schedule = linear_warmup_decay(learning_rate, warmup_steps, total_steps)
    if optimizer == "adamw":
        base = optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay, mask=no_decay)
    elif optimizer == "radamw":  # RAdam with decoupled weight decay, as the reference retriever trainer
        base = optax.chain(optax.scale_by_radam(), optax.add_decayed_weights(weight_decay, mask=no_decay),
                           optax.scale_by_learning_rate(schedule))
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}: expected 'adamw' or 'radamw'")
    parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
    parts.append(base)
    mult = jax.tree.map(lambda k: 1.0, keys)
    if layer_lr_decay is not None:
        mult = jax.tree.map(lambda k: layer_lr_decay ** (num_layers + 1 - param_depth(k, num_layers, backbone_prefix)),
                            keys)
    if lr_multipliers is not None:
        mult = jax.tree.map(lambda m, k: m * lr_multipliers(k), mult, keys)
    if any(m != 1.0 for m in jax.tree.leaves(mult)):
        factors = jax.tree.map(jnp.float32, mult)
        parts.append(optax.stateless(lambda updates, _: jax.tree.map(lambda u, f: u * f, updates, factors)))
    return optax.chain(*parts)


class MetricsLog:
    """Appends one JSON object per line; `plot()` draws the loss curve(s) with matplotlib."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, step: int, **metrics: float) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"step": int(step), "time": time.time(),
                                **{k: float(v) for k, v in metrics.items()}}) + "\n")

    def read(self) -> list[dict[str, float]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def plot(self, out: str | Path | None = None, keys: Iterable[str] = ("loss",)) -> Path | None:
        """Draw the curves to `out` (default: the log's path with .png); without matplotlib, warn and skip (the
        JSONL log holds the same numbers)."""
        try:
            import matplotlib
        except ImportError:
            warnings.warn(str(missing_extra("matplotlib", "plot", "the metrics plot")), stacklevel=2)
            return None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.read()
        out = Path(out) if out else self.path.with_suffix(".png")
        fig, ax = plt.subplots(figsize=(6, 4))
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=key)
        ax.set_xlabel("step")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out, dpi=100)
        plt.close(fig)
        return out


class Trainer:
    """Functional training loop state for an NNX model.

    `loss_fn(model, batch) -> (loss, aux_dict)` is traced once per batch shape (batches come padded to buckets).
    `mesh`: None (one device) or the data-parallel devices (an int, devices or a Mesh with a "data" axis); batch
    rows must then be a multiple of the device count (`Buckets(row_multiple=...)`).
    """

    def __init__(self, model: nnx.Module, tx: optax.GradientTransformation,
                 loss_fn: Callable[[nnx.Module, dict[str, Any]], tuple[jax.Array, dict[str, jax.Array]]],
                 *, mesh: Any = None):
        self.graphdef, self.params, self.rest = nnx.split(model, nnx.Param, ...)
        self.mesh = None if mesh is None else sharding.data_mesh(mesh)
        self.tx = tx
        self.opt_state = tx.init(self.params)
        if self.mesh is not None:
            self.params, self.opt_state, self.rest = sharding.replicate((self.params, self.opt_state, self.rest),
                                                                         self.mesh)
        self.step = 0
        graphdef = self.graphdef

        def train_step(params, opt_state, rest, batch):
            # Merge at the jit level: dropout advances its RNG counters (in `rest`) inside the grad trace, which
            # must own them; nnx.value_and_grad differentiates w.r.t. the Params only.
            model = nnx.merge(graphdef, params, rest)
            model.train()
            (loss, aux), grads = nnx.value_and_grad(lambda m: loss_fn(m, batch), has_aux=True)(model)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            new_rest = nnx.state(model, nnx.Not(nnx.Param))
            return params, opt_state, new_rest, {"loss": loss, "grad_norm": optax.global_norm(grads), **aux}

        if self.mesh is None:
            self._step = jax.jit(train_step, donate_argnums=(0, 1, 2))
        else:  # state replicated in and out; the batch split row-wise; XLA all-reduces the gradients
            repl = sharding.replicated(self.mesh)
            self._step = jax.jit(train_step, donate_argnums=(0, 1, 2),
                                 in_shardings=(repl, repl, repl, sharding.batch_sharding(self.mesh)),
                                 out_shardings=repl)

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One optimizer step on `batch` ({name: [B, ...]}; with a multi-process mesh, this process's rows)."""
        if self.mesh is not None:
            batch = sharding.shard_batch(batch, self.mesh)
        self.params, self.opt_state, self.rest, metrics = self._step(self.params, self.opt_state, self.rest, batch)
        self.step += 1
        return metrics

    def lowered(self, batch: dict[str, Any]) -> jax.stages.Lowered:
        """The train step lowered for `batch`'s shapes (`.compile().as_text()`: the optimized HLO, for profiling)."""
        return self._step.lower(self.params, self.opt_state, self.rest, batch)

    def model(self) -> nnx.Module:
        """The current model (eval mode), sharing the trained arrays."""
        m = nnx.merge(self.graphdef, self.params, self.rest)
        m.eval()
        return m

    # -- checkpoints ------------------------------------------------------------------------------------------
    def _manager(self, workdir: str | Path, max_to_keep: int = 2):
        import orbax.checkpoint as ocp

        return ocp.CheckpointManager(Path(workdir).absolute() / "checkpoints",
                                     options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

    def save(self, workdir: str | Path) -> None:
        import orbax.checkpoint as ocp

        with self._manager(workdir) as mngr:
            mngr.save(self.step, args=ocp.args.StandardSave(
                {"params": self.params, "opt_state": self.opt_state, "step": self.step}))
            mngr.wait_until_finished()

    def restore_latest(self, workdir: str | Path) -> bool:
        """Resume from the newest checkpoint in `workdir`, if any. Returns whether one was found."""
        import orbax.checkpoint as ocp

        with self._manager(workdir) as mngr:
            step = mngr.latest_step()
            if step is None:
                return False
            target = {"params": self.params, "opt_state": self.opt_state, "step": self.step}
            restored = mngr.restore(step, args=ocp.args.StandardRestore(target))
        self.params, self.opt_state, self.step = restored["params"], restored["opt_state"], int(restored["step"])
        return True


def batches_forever(make_epoch: Callable[[int], Iterator[Any]]) -> Iterator[tuple[int, Any]]:
    """(epoch, batch) pairs, re-creating the epoch iterator (e.g. reshuffled) each time it runs out."""
    epoch = 0
    while True:
        empty = True
        for batch in make_epoch(epoch):
            empty = False
            yield epoch, batch
        if empty:
            raise ValueError("the training data produced no batches")
        epoch += 1


def to_numpy_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(np.asarray(v)) for k, v in metrics.items() if np.asarray(v).ndim == 0}


def itstime(step: int, every: int, total_steps: int) -> bool:
    """Whether a periodic action (log, evaluation, checkpoint) runs after `step`: every `every` steps and at the last
    one (big_vision's `itstime`); never when `every` is 0."""
    return bool(every) and (step % every == 0 or step == total_steps)
