"""Host memory for XLA:CPU buffers: keep freed memory in the process instead of returning it to the kernel; and the
garbage collector: objects loaded once kept out of its full collections.

Why: a compiled XLA:CPU program allocates one temporary buffer per call (481 MB for a CoNLL04 `:cpu` training step
on an [8, 112] batch: `compiled.memory_analysis().temp_size_in_bytes`). glibc's malloc serves a block that large
with a fresh `mmap` and `munmap`s it on free, so every call touches ~117,000 new 4 KiB pages: page faults and
kernel zeroing took ~0.17 s of a 0.6 s single-threaded step (`resource.getrusage().ru_minflt` per step), and the
step ran in 0.40 s without them (benchmarks/train_speed.py). Blocks that large come from the main heap only when
(1) every thread allocates from the main arena (a secondary arena's heap is capped at 64 MiB, so a bigger block is
always mmapped; XLA runs the program on its own threads), (2) the mmap threshold is above the block and (3) freed
memory is not trimmed off the heap's top. Then the next call reuses the same, already-mapped pages.

`freeze_loaded_objects()`: a loaded pipeline process holds ~250k objects that live as long as it does (JAX's and
flax's, the model, the tokenizer tables). Python's cyclic collector walks every one of them in each full collection,
a ~100 ms pause every few thousand windows (NYT host cost per window 0.08 -> 0.18 ms in the passes that hit one).
`gc.freeze()` after loading moves them to a generation it never walks; objects made later are collected as usual.
The cost: a cycle among the frozen objects is never collected, so it is for one-model processes (the CLI, services,
Ray actors), not for a library call that may load model after model.

`reuse_freed_memory()` sets those three glibc `mallopt` parameters. The arena limit only binds threads that have not
allocated yet, so it must run before JAX's CPU backend starts its threads (before the first computation); later it
changes nothing that matters (measured: the same faults per step). Cost: the process keeps its peak heap (freed
memory is reused, not returned). Other C libraries (musl, macOS) are left alone. `RELIK_JAX_KEEP_HOST_MEMORY=0`
turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

ENV = "RELIK_JAX_KEEP_HOST_MEMORY"
# glibc <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
LARGEST = 2**31 - 1  # mallopt takes an int

_done: bool | None = None


def reuse_freed_memory() -> bool:
    """One main heap that keeps what is freed (see the module docstring); idempotent. Returns whether glibc took
    the settings (False: not glibc, turned off by `$RELIK_JAX_KEEP_HOST_MEMORY`, or mallopt refused)."""
    global _done
    if _done is None:
        _done = _apply()
    return _done


def _apply() -> bool:
    if os.environ.get(ENV, "").lower() in ("0", "off", "false", "no"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl and macOS have other mallopt parameters)
    except (OSError, AttributeError, TypeError):
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in
               ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, LARGEST), (M_TRIM_THRESHOLD, LARGEST)))


def freeze_loaded_objects() -> None:
    """Collect, then move every object alive now out of the cyclic collector's generations (`gc.freeze`; see the
    module docstring): call once a one-model process has loaded its pipeline."""
    gc.collect()
    gc.freeze()
