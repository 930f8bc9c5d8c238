"""Reference side of `benchmarks/train_speed.py`: relik 1.0.7's reader training steps, timed one by one.

Runs ONLY under the reference venv; never imports relik_jax:

    <venv-reference>/bin/python benchmarks/reference/train_speed_reference.py EXPORT_DIR [--threads 2]

The training is the study's (`benchmarks/studies/conll04_parity/reference_train_conll04.py`: its `setup` builds
relik 1.0.7's `RelikReaderREModel` on all-MiniLM-L6-v2 with the heads, losses and LayerWiseLRDecayOptimizer
parameter groups under torch AdamW; `train_data` is its own `RelikREDataset` stream with flips, on our batch plan;
`train_step` is one optimisation step), from the companion's `export` in EXPORT_DIR. After setup it answers one
JSON line `{"ready": true, "setup_s", "threads", "versions"}`, then serves commands, one JSON line each on stdin:
- `{"steps": K}`: the next K steps; answers `{"host_s": [...], "step_s": [...], "cpu_s": [...], "faults": [...],
  "loss": [...]}` (per step: the batch from the stream, then forward + backward + clipping + AdamW + schedule; CPU
  seconds of all the process's threads and its minor page faults, for both);
- `{"quit": true}`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import resource
import sys
import time
from pathlib import Path

# The answers own the real stdout; relik's log handlers write to sys.stdout (fd 1): send fd 1 to stderr.
PROTOCOL = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "studies" / "conll04_parity"))

import reference_train_conll04 as rt  # noqa: E402  (torch, transformers, relik)
import torch  # noqa: E402


def answer(obj: dict) -> None:
    PROTOCOL.write(json.dumps(obj) + "\n")
    PROTOCOL.flush()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export", type=Path)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    t = time.perf_counter()
    a = rt.arg_parser().parse_args(["--out", str(args.export), "--threads", str(args.threads), "--eval-every", "0"])
    reader, optimizer, scheduler, _ = rt.setup(a)
    stream = rt.train_data(a, reader)
    answer({"ready": True, "setup_s": time.perf_counter() - t, "threads": torch.get_num_threads(),
            "versions": {"torch": torch.__version__, "relik": importlib.metadata.version("relik")}})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("quit"):
            break
        host, step, cpu, faults, loss = [], [], [], [], []
        for _ in range(int(cmd["steps"])):
            t0, c0, f0 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            batch = next(stream)
            t1 = time.perf_counter()
            out, _ = rt.train_step(a, reader, optimizer, scheduler, batch)
            loss.append(float(out["loss"]))  # the step is synchronous on CPU; this only reads the scalar
            host.append(t1 - t0)
            step.append(time.perf_counter() - t1)
            cpu.append(time.process_time() - c0)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
        answer({"host_s": host, "step_s": step, "cpu_s": cpu, "faults": faults, "loss": loss})


if __name__ == "__main__":
    main()
