"""Jitted inference over NNX modules: `nnx.split` once, plain `jax.jit` over a function that `nnx.merge`s.

This avoids `nnx.jit`'s per-call graph traversal. The weights travel as a flat list of arrays (flattened once):
NNX's Variable pytree nodes flatten in Python, which cost ~1 ms per call on a large reader. Each distinct padded
input shape compiles once; `num_compiles` counts traces so callers (and tests) can check the bound set by their
padding buckets.

With a `mesh` (engine/sharding.py) the weights are replicated over its devices and a call runs data-parallel:
inputs placed row-sharded (`sharding.shard_rows`) keep XLA's partitioning on the batch axis, numpy inputs are
placed by XLA; outputs stay on the mesh.

Compiled programs persist across processes in JAX's compilation cache (`compilation_cache`): a reader's warm-up is
mostly XLA compiling its bucketed shapes (~1 s each on 2 CPU cores), paid once per machine instead of once per run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
from flax import nnx
from jax.sharding import Mesh

from relik_jax import paths
from relik_jax.engine.sharding import replicate

CACHE_ENV = "RELIK_JAX_COMPILATION_CACHE"  # unset: ~/.cache/relik-jax/xla; "0": off; else the folder to use


def compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache (idempotent) unless the user configured one or `$CACHE_ENV` is
    "0"; returns the folder in use. Programs that compile in under 0.5 s are not stored."""
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    choice = os.environ.get(CACHE_ENV, "")
    if choice.lower() in ("0", "off", "false", "no"):
        return None
    folder = choice or str(paths.CACHE / "xla")
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return folder


class CompiledForward:
    """`CompiledForward(model)(*arrays)` == `model(*arrays)`, jitted; `fn(model, *args)` customises the call."""

    def __init__(self, model: nnx.Module, fn: Callable[..., Any] | None = None, *, static_argnums: tuple = (),
                 mesh: Mesh | None = None):
        compilation_cache()
        self.graphdef, state = nnx.split(model)
        self.mesh = mesh
        self.leaves, self.treedef = jax.tree.flatten(state)
        self.leaves = self._place(self.leaves)
        self.num_compiles = 0
        call = fn if fn is not None else (lambda m, *a: m(*a))
        graphdef, treedef = self.graphdef, self.treedef

        def run(leaves: list[jax.Array], *args: Any) -> Any:
            self.num_compiles += 1  # Python side effect: runs only while tracing
            return call(nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves)), *args)

        self._run = jax.jit(run, static_argnums=tuple(i + 1 for i in static_argnums))

    def _place(self, leaves: list[jax.Array]) -> list[jax.Array]:
        return leaves if self.mesh is None else replicate(leaves, self.mesh)

    @property
    def state(self) -> nnx.State:
        return jax.tree.unflatten(self.treedef, self.leaves)

    def __call__(self, *args: Any) -> Any:
        return self._run(self.leaves, *args)

    def update(self, model: nnx.Module) -> None:
        """Take new weights from `model` (same structure) without recompiling."""
        leaves, treedef = jax.tree.flatten(nnx.state(model))
        if treedef != self.treedef:
            raise ValueError("CompiledForward.update: the model's structure changed")
        self.leaves = self._place(leaves)
