"""Reader training speed: our steps/s against relik 1.0.7's on the CoNLL04 `:cpu` config, on the same CPU.

    python benchmarks/train_speed.py                          # 4 rounds of 25 steps per side after 10 warm-up steps
    python benchmarks/train_speed.py --rounds 6 --block 20 --out benchmarks/results/train_speed.json
    python benchmarks/train_speed.py --no-reference           # ours only
    python benchmarks/train_speed.py --no-reference --profile # + where ours spends a step (host vs device, by source)

Ours: the parts `train.py --config configs/conll04.py:cpu` trains with (`reader_train.training_setup`: MiniLM
backbone + fresh heads, AdamW with layer-wise decay, the batch stream with its prefetch thread). The reference: the
study's training of relik 1.0.7's own model, heads, losses, optimizer groups and `RelikREDataset` rows on the same
batch plan (`benchmarks/studies/conll04_parity/reference_train_conll04.py`), served step by step by
`benchmarks/reference/train_speed_reference.py` under the reference venv (torch threads = `--threads`).

Both sides run the same steps of the same plan (same examples per step, each side's own augmentation draws):
`--warmup` steps first, then `--rounds` rounds of `--block` steps, ours then the reference's, alternating (never
both at once: on a shared machine a change of load hits both alike; the load average is printed beside each
block). A step's time is its wall time: batch from the stream + forward, backward and update, waited for
(`block_until_ready` on ours); its CPU seconds (all threads of the process) are reported beside it, a measure
that a busy machine disturbs less than wall time, and its minor page faults (memory touched for the first time:
XLA:CPU's per-call temporary buffer, unless `engine/host_memory.reuse_freed_memory` keeps it mapped;
`RELIK_JAX_KEEP_HOST_MEMORY=0` measures without). Ours compiles once per batch shape: a step with a new shape is
counted as compile time (that step's time minus the median step) and left out of the medians. Writes `--out`.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "studies" / "conll04_parity"))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.reference.reference_run import venv_python  # noqa: E402
from benchmarks.xla_trace import profile_by_source  # noqa: E402
from relik_jax import paths  # noqa: E402
from relik_jax.engine.host_memory import reuse_freed_memory  # noqa: E402
from relik_jax.training.reader_batching import batch_shape  # noqa: E402
from relik_jax.training.reader_train import training_setup  # noqa: E402

REFERENCE = ROOT / "benchmarks" / "reference" / "train_speed_reference.py"
RESULTS = ROOT / "benchmarks" / "results"


def log(msg: str) -> None:
    print(f"[train_speed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load() -> float:
    return os.getloadavg()[0]


class Ours:
    """Our training loop, one step at a time (as reader_train.train_reader runs it)."""

    def __init__(self, config: Any) -> None:
        t = time.perf_counter()
        self.setup = training_setup(config)
        self.setup_s = time.perf_counter() - t
        self.shapes: set[tuple] = set()

    def steps(self, n: int) -> dict[str, list]:
        out: dict[str, list] = {"step_s": [], "cpu_s": [], "faults": [], "new_shape": [], "loss": []}
        for _ in range(n):
            t, c, f = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            batch = next(self.setup.stream)
            key = batch_shape(batch)
            metrics = self.setup.trainer.train_step(batch)
            jax.block_until_ready(metrics)
            out["step_s"].append(time.perf_counter() - t)
            out["cpu_s"].append(time.process_time() - c)
            out["faults"].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)
            out["new_shape"].append(key not in self.shapes)
            out["loss"].append(float(metrics["loss"]))
            self.shapes.add(key)
        return out


def profile_ours(ours: Ours, steps: int) -> dict[str, Any]:
    """Host vs device over `steps` steps (cProfile: time waiting for batches, dispatching, waiting for the device),
    then the device step of the last batch by source line (benchmarks/xla_trace.py)."""
    prof = cProfile.Profile()
    host, total = [], []
    batch: dict[str, Any] = {}
    prof.enable()
    for _ in range(steps):
        t = time.perf_counter()
        batch = next(ours.setup.stream)
        host.append(time.perf_counter() - t)
        jax.block_until_ready(ours.setup.trainer.train_step(batch))
        total.append(time.perf_counter() - t)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("cumulative").print_stats(15)
    trainer = ours.setup.trainer
    rows = profile_by_source(lambda: jax.block_until_ready(trainer.train_step(batch)),
                             trainer.lowered(batch).compile().as_text())
    by_source = [{"source": k, "ms": round(ms, 2), "share": round(share, 4)} for k, ms, share in rows[:30]]
    print(f"ours, {steps} steps: waiting for the next batch {1e3 * statistics.fmean(host):.1f} ms/step of "
          f"{1e3 * statistics.fmean(total):.0f} ms/step; device step of a {batch['input_ids'].shape} batch by source "
          "(XLA thunk time; shares, overlapping on several cores):")
    for r in by_source[:20]:
        print(f"  {100 * r['share']:5.1f}%  {r['source']}")
    return {"host_wait_s": statistics.fmean(host), "step_s": statistics.fmean(total), "cprofile": buf.getvalue(),
            "batch_shape": list(batch["input_ids"].shape), "device_by_source": by_source}


class Reference:
    """train_speed_reference.py under the reference venv (see its docstring)."""

    def __init__(self, export: Path, threads: int, cores: set[int] | None = None) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}
        env.pop("PYTHONPATH", None)
        env.pop("XLA_FLAGS", None)
        self.proc = subprocess.Popen([str(venv_python()), str(REFERENCE), str(export), "--threads", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the reference process exited (code {self.proc.wait()}); its stderr is above")
        return json.loads(line)

    def steps(self, n: int) -> dict[str, list]:
        self.proc.stdin.write(json.dumps({"steps": n}) + "\n")
        self.proc.stdin.flush()
        r = self._read()
        return {"step_s": [h + s for h, s in zip(r["host_s"], r["step_s"], strict=True)], "cpu_s": r["cpu_s"],
                "faults": r["faults"], "loss": r["loss"], "host_s": r["host_s"]}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def export_dir(path: Path | None) -> Path:
    """The companion's export of the CoNLL04 windows (reference_train_conll04_io.py export), made once."""
    out = path or paths.CACHE / "train-speed" / "export"
    if not (out / "our_stream_stats.json").is_file():
        import reference_train_conll04_io as io  # benchmarks/studies/conll04_parity (our venv)

        log(f"exporting the CoNLL04 windows for the reference to {out}")
        io.export(out, 20)
    return out


def summary(steps: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(steps), "p10_s": float(np.percentile(steps, 10)),
            "p90_s": float(np.percentile(steps, 90)), "mean_s": statistics.fmean(steps), "steps": len(steps),
            "steps_per_s": 1.0 / statistics.median(steps)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--warmup", type=int, default=10, help="untimed steps per side first")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--block", type=int, default=25, help="steps per side per round")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="threads of both sides: torch's; 1 pins both processes to one core and runs XLA "
                        "single-threaded (on a busy machine this compares the two computations with less noise)")
    p.add_argument("--export", type=Path, default=None, help="the companion's export folder (default: cached)")
    p.add_argument("--no-reference", action="store_true")
    p.add_argument("--profile", action="store_true", help="then profile 10 more steps of ours (host vs device, "
                   "device time by source line)")
    p.add_argument("--config", default="cpu", help="variant of configs/conll04.py")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field of ours (repeatable), e.g. --set train_pad_multiple=0")
    p.add_argument("--out", type=Path, default=RESULTS / "train_speed.json")
    a = p.parse_args(argv)
    from configs import conll04

    one_core = None
    if a.threads == 1:  # both sides pinned to one core; XLA reads the flags when its CPU backend starts (below)
        one_core = {min(os.sched_getaffinity(0))}
        os.sched_setaffinity(0, one_core)
        os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), "--xla_cpu_multi_thread_eigen=false",
                                            "intra_op_parallelism_threads=1"]).strip()
    load_before = os.getloadavg()
    keep_memory = reuse_freed_memory()  # as training_setup does; here before anything starts JAX's CPU backend
    config = conll04.get_config(a.config)
    for item in a.set:
        key, value = item.split("=", 1)
        config[key] = type(config[key])(value)
    config.num_steps = max(config.num_steps, a.warmup + a.rounds * a.block)
    ours = Ours(config)
    log(f"ours ready ({ours.setup_s:.1f} s)")
    ref = None if a.no_reference else Reference(export_dir(a.export), a.threads, one_core)
    if ref:
        log(f"reference ready ({ref.ready['setup_s']:.1f} s, {ref.ready['threads']} torch threads)")
    sides: dict[str, Any] = {"ours": ours, **({"reference": ref} if ref else {})}
    runs: dict[str, list[dict]] = {s: [] for s in sides}
    try:
        for r in range(a.rounds + 1):
            n = a.warmup if r == 0 else a.block
            for side, impl in sides.items():
                la = load()
                t = time.perf_counter()
                res = impl.steps(n)
                res.update(round=r, loadavg_1m=la, wall_s=time.perf_counter() - t)
                runs[side].append(res)
                log(f"{side} {'warm-up' if r == 0 else f'round {r}/{a.rounds}'}: {n} steps in {res['wall_s']:.1f} s "
                    f"(median {statistics.median(res['step_s']):.3f} s/step, load {la:.2f})")
        profile = profile_ours(ours, 10) if a.profile else None
    finally:
        ours.setup.stream.close()
        if ref:
            ref.close()
    result: dict[str, Any] = {}
    for side, rs in runs.items():
        timed = [(s, c, rs_i.get("new_shape", [False] * len(rs_i["step_s"]))[k])
                 for rs_i in rs[1:] for k, (s, c) in enumerate(zip(rs_i["step_s"], rs_i["cpu_s"], strict=True))]
        # steps that compiled a new shape are left out (all of them only if every timed step was one: tiny runs)
        steady = [s for s, _, new in timed if not new] or [s for s, _, _ in timed]
        steady_cpu = [c for _, c, new in timed if not new] or [c for _, c, _ in timed]
        faults = [f for rs_i in rs[1:] for f, new in zip(rs_i["faults"], rs_i.get("new_shape", [False] * len(
            rs_i["faults"])), strict=True) if not new]
        med = statistics.median(steady)
        compiles = [s - med for rs_i in rs for s, new in zip(rs_i["step_s"], rs_i.get("new_shape", []), strict=False)
                    if new]
        result[side] = {**summary(steady), "cpu_median_s": statistics.median(steady_cpu),
                        "faults_median": statistics.median(faults) if faults else None,
                        "compiles": len(compiles), "compile_s": float(sum(compiles)),
                        "warmup_s": rs[0]["wall_s"], "blocks": rs}
    ratio = result["reference"]["median_s"] / result["ours"]["median_s"] if ref else None
    meta = {"created": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(["train_speed.py", *(argv if argv is not None else sys.argv[1:])]),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "config": f"configs/conll04.py:{a.config}", "overrides": a.set,
            "threads": a.threads, "keep_host_memory": keep_memory,
            "reference_threads": ref.ready["threads"] if ref else None,
            "reference_versions": ref.ready["versions"] if ref else None,
            "jax": jax.__version__, "warmup": a.warmup, "rounds": a.rounds, "block": a.block}
    lines = [f"Reader training, CoNLL04 :{a.config} (MiniLM, 1024-token batches); {os.cpu_count()} cores, "
             f"{a.threads} thread(s) per side, "
             f"load avg {load_before[0]:.2f} before, {meta['loadavg_after'][0]:.2f} after",
             f"{'side':<10} {'s/step median':>14} {'p10-p90':>15} {'steps/s':>8} {'CPU s/step':>11} "
             f"{'faults/step':>12} {'timed':>6} {'compiles':>9} {'compile s':>10}"]
    for side, res in result.items():
        lines.append(f"{side:<10} {res['median_s']:>14.3f} {res['p10_s']:>7.3f}-{res['p90_s']:<7.3f} "
                     f"{res['steps_per_s']:>8.2f} {res['cpu_median_s']:>11.3f} {res['faults_median'] or 0:>12.0f} "
                     f"{res['steps']:>6} {res['compiles']:>9} "
                     f"{res['compile_s']:>10.1f}")
    if ratio:
        lines.append(f"ours / reference steps/s: {ratio:.2f}x (medians; per-block loads "
                     f"{[round(b['loadavg_1m'], 2) for b in runs['ours'][1:]]} / "
                     f"{[round(b['loadavg_1m'], 2) for b in runs['reference'][1:]]})")
    table = "\n".join(lines)
    print(table)
    out = {**meta, "table": table, "speedup": ratio, "sides": result, "profile": profile}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    log(f"wrote {a.out}")
    return out


if __name__ == "__main__":
    main()
