"""engine/host_memory.py: with `reuse_freed_memory()` a compiled program's large temporary buffer reuses mapped pages
across calls (no page faults after the first call); without it each call faults the whole buffer in again."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import json, resource, sys
from relik_jax.engine.host_memory import reuse_freed_memory
took = reuse_freed_memory()  # before the CPU backend starts
import jax, jax.numpy as jnp

@jax.jit
def f(x, w):  # a [2048, 16384] float32 intermediate (128 MiB) between two matmuls: a temporary buffer
    y = jnp.tanh(x @ w)
    return y @ w.T

x, w = jnp.ones((2048, 64)) / 64, jnp.ones((64, 16384)) / 64
temp = f.lower(x, w).compile().memory_analysis().temp_size_in_bytes
faults = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(f(x, w))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"took": took, "temp_pages": temp // 4096, "faults": faults}))
"""


def run(keep: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RELIK_JAX_KEEP_HOST_MEMORY": "1" if keep else "0"}
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_temporary_buffer_pages_are_reused_across_calls() -> None:
    kept, default = run(True), run(False)
    assert kept["took"] and not default["took"]
    pages = kept["temp_pages"]
    assert pages >= 32768, f"the program needs a >= 128 MiB temporary buffer to test this, got {pages} pages"
    # glibc's default: the buffer is mmapped and unmapped per call, so every call faults it in again
    assert min(default["faults"][1:]) > pages // 2, default
    # kept: after the first call, the same pages serve the buffer (most calls: where the heap's free blocks fall
    # depends on the other, small allocations around it, and a call now and then extends the heap)
    assert statistics.median(kept["faults"][1:]) < pages // 20, kept
