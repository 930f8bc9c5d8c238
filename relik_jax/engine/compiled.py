"""Jitted inference over NNX modules: `nnx.split` once, plain `jax.jit` over a function that `nnx.merge`s.

This avoids `nnx.jit`'s per-call graph traversal. Each distinct padded input shape compiles once;
`num_compiles` counts traces so callers (and tests) can check the bound set by their padding buckets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx


class CompiledForward:
    """`CompiledForward(model)(*arrays)` == `model(*arrays)`, jitted; `fn(model, *args)` customises the call."""

    def __init__(self, model: nnx.Module, fn: Callable[..., Any] | None = None, *, static_argnums: tuple = ()):
        self.graphdef, self.state = nnx.split(model)
        self.num_compiles = 0
        call = fn if fn is not None else (lambda m, *a: m(*a))
        graphdef = self.graphdef

        def run(state: nnx.State, *args: Any) -> Any:
            self.num_compiles += 1  # Python side effect: runs only while tracing
            return call(nnx.merge(graphdef, state), *args)

        self._run = jax.jit(run, static_argnums=tuple(i + 1 for i in static_argnums))

    def __call__(self, *args: Any) -> Any:
        return self._run(self.state, *args)

    def update(self, model: nnx.Module) -> None:
        """Take new weights from `model` (same structure) without recompiling."""
        self.state = nnx.state(model)
