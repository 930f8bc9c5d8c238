"""Jitted inference over NNX modules: `nnx.split` once, plain `jax.jit` over a function that `nnx.merge`s.

This avoids `nnx.jit`'s per-call graph traversal. The weights travel as a flat list of arrays (flattened once):
NNX's Variable pytree nodes flatten in Python, which cost ~1 ms per call on a large reader. Each distinct padded
input shape compiles once; `num_compiles` counts traces so callers (and tests) can check the bound set by their
padding buckets.

With a `mesh` (engine/sharding.py) the weights are replicated over its devices and a call runs data-parallel:
inputs placed row-sharded (`sharding.shard_rows`) keep XLA's partitioning on the batch axis, numpy inputs are
placed by XLA; outputs stay on the mesh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx
from jax.sharding import Mesh

from relik_jax.engine.sharding import replicate


class CompiledForward:
    """`CompiledForward(model)(*arrays)` == `model(*arrays)`, jitted; `fn(model, *args)` customises the call."""

    def __init__(self, model: nnx.Module, fn: Callable[..., Any] | None = None, *, static_argnums: tuple = (),
                 mesh: Mesh | None = None):
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
