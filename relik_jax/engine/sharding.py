"""Data parallelism with `jax.sharding`: one `Mesh` axis, "data", over which batches are split row-wise while
parameters are replicated (the maxtext / flax-examples pattern: plain `jax.jit`, `NamedSharding`s, XLA inserts
the collectives, e.g. the gradient all-reduce of a training step).

    mesh = data_mesh(4)                       # the first 4 devices; data_mesh() = every device; None = no mesh
    params = replicate(params, mesh)          # a full copy on every device of the mesh
    batch = shard_batch(batch, mesh)          # {name: [B, ...]} -> rows split over "data" (B % data_size == 0)

Multi-host (`jax.distributed`, see engine/distributed.py): a mesh over `jax.devices()` spans every process;
`shard_batch` then takes each process's *local* rows (its slice of the global batch) and assembles the global
array (`jax.make_array_from_process_local_data`). Row counts of padded batches are multiples of `data_size(mesh)`
(`Buckets.row_multiple`), so every device gets the same number of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA = "data"

__all__ = ["DATA", "batch_sharding", "data_mesh", "data_size", "local_devices", "process_rows", "replicate",
           "replicated", "shard_batch", "shard_rows"]


def data_mesh(devices: Mesh | int | Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis ("data") mesh: a Mesh is returned as is (it must have a "data" axis); an int takes the first n
    of this process's devices (`jax.local_devices()`); a sequence of devices, those; None, every device (all
    processes' under jax.distributed)."""
    if isinstance(devices, Mesh):
        if DATA not in devices.axis_names:
            raise ValueError(f"a data-parallel mesh needs a {DATA!r} axis, got axes {devices.axis_names}")
        return devices
    if devices is None:
        chosen = jax.devices()
    elif isinstance(devices, int):
        local = jax.local_devices()
        if not 1 <= devices <= len(local):
            raise ValueError(f"devices={devices}: this process has {len(local)} device(s) ({local[0].platform}); "
                             "on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N")
        chosen = local[:devices]
    else:
        chosen = list(devices)
        if not chosen:
            raise ValueError("devices: an empty list")
    return Mesh(np.array(chosen), (DATA,))


def local_devices(mesh: Mesh) -> list[jax.Device]:
    """The devices of `mesh` this process drives (all of them without jax.distributed)."""
    return [d for d in mesh.devices.flat if d.process_index == jax.process_index()]


def data_size(mesh: Mesh | None) -> int:
    """Devices along the data axis (1 without a mesh): padded batch rows are multiples of it."""
    return 1 if mesh is None else int(mesh.shape[DATA])


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (row) dimension split over "data", the others whole."""
    return NamedSharding(mesh, PartitionSpec(DATA))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every leaf copied whole onto every device of `mesh` (parameters, optimizer state). Under jax.distributed
    each process passes the same values (e.g. the same seed or checkpoint) and places its local copies."""
    sharding = replicated(mesh)
    if not mesh.is_multi_process:
        return jax.device_put(tree, sharding)

    def put(x: Any) -> Any:  # from this process's host copy (a typed PRNG key travels as its key data)
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = jax.make_array_from_process_local_data(sharding, np.asarray(jax.random.key_data(x)))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(put, tree)


def shard_rows(x: Any, mesh: Mesh) -> jax.Array:
    """One array, rows split over "data"; `x` holds this process's rows (all of them with one process)."""
    return jax.make_array_from_process_local_data(batch_sharding(mesh), np.asarray(x))


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Every leaf of a batch pytree (all [B, ...]) split row-wise over "data" (`shard_rows`)."""
    return jax.tree.map(lambda x: shard_rows(x, mesh), batch)


def process_rows(batch: Any, process_id: int | None = None, num_processes: int | None = None) -> Any:
    """This process's contiguous slice of a global batch (every leaf [B, ...], B divisible by the process count),
    the rows `shard_batch` expects from it: rows [p·B/n, (p+1)·B/n) (the order of the mesh's devices)."""
    p = jax.process_index() if process_id is None else process_id
    n = jax.process_count() if num_processes is None else num_processes

    def cut(x: Any) -> Any:
        rows = x.shape[0]
        if rows % n:
            raise ValueError(f"a global batch of {rows} rows does not split over {n} processes")
        return x[p * rows // n: (p + 1) * rows // n]

    return jax.tree.map(cut, batch)
