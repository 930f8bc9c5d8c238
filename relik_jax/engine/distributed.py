"""Multi-host runs with `jax.distributed`: one process per host (or per accelerator group), all started with the
same coordinator address, process count and each its own process id.

    from relik_jax.engine import distributed
    distributed.initialize()            # from flags, else JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID,
                                        # else JAX's cluster detection (SLURM, Open MPI, Cloud TPU, ...)
    mesh = sharding.data_mesh()         # then spans every process's devices

After `initialize`, `jax.devices()` lists every process's devices and a data-parallel step over
`sharding.data_mesh()` reduces its gradients across hosts (on CPU over Gloo). Corpus annotation needs no
collectives: each process annotates its share of the documents (`ProcessShard`, inference/files.py).
"""

from __future__ import annotations

import dataclasses
import os

import jax

__all__ = ["ProcessShard", "initialize", "process_shard"]

ENV = {"coordinator": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}


@dataclasses.dataclass(frozen=True)
class ProcessShard:
    """Process `index` of `count`: it owns the document groups g with g % count == index."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"process {self.index} of {self.count}: need 0 <= process id < process count")

    def owns(self, group: int) -> bool:
        return group % self.count == self.index

    @property
    def suffix(self) -> str:
        """'' for a single process, else '.process-00001-of-00002' (the part of an output file name)."""
        return "" if self.count == 1 else f".process-{self.index:05d}-of-{self.count:05d}"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r}: expected an integer") from None


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> ProcessShard:
    """Start `jax.distributed` (once; a second call returns the running shard) and return this process's shard.

    Each argument left None comes from its environment variable (`ENV`); what is still missing is left to JAX's
    cluster auto-detection, which raises when it finds no cluster. Call before any other JAX work."""
    if jax.distributed.is_initialized():
        return ProcessShard(jax.process_index(), jax.process_count())
    coordinator = coordinator or os.environ.get(ENV["coordinator"]) or None
    num_processes = num_processes if num_processes is not None else _env_int(ENV["num_processes"])
    process_id = process_id if process_id is not None else _env_int(ENV["process_id"])
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    return ProcessShard(jax.process_index(), jax.process_count())


def process_shard(process_id: int | None = None, num_processes: int | None = None) -> ProcessShard:
    """This process's shard without starting `jax.distributed`: from the arguments, else the environment, else the
    running `jax.distributed` (if any), else the whole input (0 of 1)."""
    count = num_processes if num_processes is not None else _env_int(ENV["num_processes"])
    index = process_id if process_id is not None else _env_int(ENV["process_id"])
    if count is None and index is None and jax.distributed.is_initialized():
        return ProcessShard(jax.process_index(), jax.process_count())
    if (count is None) != (index is None):
        raise ValueError("give both the process id and the process count (or neither)")
    return ProcessShard(index or 0, count or 1)
