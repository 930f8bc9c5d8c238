"""End-to-end speed of our pipeline against relik 1.0.7's `Relik`, text in, spans / triplets out, identical outputs.

    python benchmarks/e2e.py                          # el, re, re13, cie, el-full; 3 repeats after a warm-up
    python benchmarks/e2e.py --workloads re,cie --repeats 5
    python benchmarks/e2e.py --full                   # every workload with a full-depth reader, fewer documents
    python benchmarks/e2e.py --quick                  # smoke run: 2 one-window documents each, 1 repeat
    python benchmarks/e2e.py --reuse-reference        # time only ours; the reference's results of an identical
                                                      # earlier job (inputs, repeats, scripts) come from the cache
    python benchmarks/e2e.py --workloads el --profile # + cProfile of one more pass of ours (top functions)

Both sides run the SAME reader folders, written by the reference package (`reference/e2e_readers.py`: random-init
DeBERTa-v3-style readers with a trained spm tokenizer, heads calibrated to the gold mention rate; built once,
cached under ~/.cache/relik-jax/e2e/), on the same texts with the same candidates (given, no retriever):
- reference: `reference/e2e_reference.py`, a process under the reference venv that serves timed calls of
  `relik.inference.annotator.Relik(reader=..., task=..., window_size=..., window_stride=..., top_k=...)`
  `(texts, candidates=...)` (torch threads = `--threads`, default all cores);
- ours: only the public API, `Reader.from_folder(folder)` + `Relik(reader, None, task=..., window_size=...,
  window_stride=...)`, then `relik(texts, candidates=...)`.
Per workload: a warm-up call of each side (ours compiles there: its time is the compile cost), then `--repeats`
timed calls, alternating reference and ours call by call (never both at once: on a shared machine a change of
load hits both alike). Wall time (`time.perf_counter`; median and min–max) and CPU seconds of all the process's
threads (`time.process_time`). Under load (other jobs on the cores) the reference's OpenMP threads lose much more
than ours (measured: 2 torch threads 5.6× slower than 1 at load average ~6 on 2 cores), so only a run on an idle
machine gives a fair ratio: the report shows the 1-minute load average before every call.
Outputs of the last call are compared per document: spans (start, end, label) and triplets (subject / object
boundaries, relation, confidence rounded to 2; labels are left out because of a reference quirk, see
tests/parity/test_pipeline_parity.py). The reference keeps EL spans whose end precedes their start; if our `Relik`
has a `raw_output` option it is used, else spans with end <= start (and triplets on them) are left out on both
sides, and the report says which.

`RELIK_E2E_FLUSH_DENORMAL=1` makes the reference flush subnormal floats to zero (`torch.set_flush_denormal`), as
XLA:CPU does: torch on CPU computes with subnormals by default, which on the cIE reader (random init) cost the
reference 59 -> 34 CPU s per call (measured under load 5); the default keeps torch's default.

Writes `--out` (default benchmarks/results/e2e.json: machine, load averages, versions, reader builds and their
calibration, per workload times, predicted-span counts, comparison) and a chart beside it (.png).

Workloads: `benchmarks/e2e_workloads.py` (also printed by --help).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import hashlib
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks import e2e_workloads  # noqa: E402
from benchmarks.e2e_workloads import (  # noqa: E402
    DEFAULT_WORKLOADS,
    FULL,
    WORKLOADS,
    Corpora,
    reader_spec,
    workload_inputs,
)
from benchmarks.reference.reference_run import venv_python  # noqa: E402
from relik_jax import paths  # noqa: E402
from relik_jax.engine.host_memory import reuse_freed_memory  # noqa: E402
from relik_jax.inference.pipeline import Relik  # noqa: E402
from relik_jax.reader.reader import Reader  # noqa: E402

REFERENCE = ROOT / "benchmarks" / "reference"
RESULTS = ROOT / "benchmarks" / "results"


def log(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- reference
class ReferenceProcess:
    """e2e_reference.py under the reference venv, serving one timed call per request (see its docstring)."""

    def __init__(self, job: dict[str, Any], work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        job_path = work / "job.json"
        job_path.write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "PYTHONNOUSERSITE": "1"}
        env.pop("PYTHONPATH", None)  # keep our checkout's packages out of the reference interpreter
        self.proc = subprocess.Popen([str(venv_python()), str(REFERENCE / "e2e_reference.py"), str(job_path)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.ready = self._read()  # after the reader folders are built (minutes, once) or found in the cache

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the reference process exited (code {self.proc.wait()}); its stderr is above")
        return json.loads(line)

    def run(self, name: str) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps({"run": name}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def reference_cache(job: dict[str, Any]) -> Path:
    """Where the reference results of exactly this job (inputs, repeats, scripts) are kept for --reuse-reference."""
    key = hashlib.sha256(json.dumps(job, sort_keys=True).encode())
    for script in ("e2e_reference.py", "e2e_readers.py"):
        key.update((REFERENCE / script).read_bytes())
    return paths.CACHE / "e2e" / "reference-results" / f"{key.hexdigest()[:16]}.json"


# --------------------------------------------------------------------------------------------------- ours
def output_view(out: Any) -> dict[str, Any]:
    return {
        "spans": [[s.start, s.end, s.label] for s in out.spans],
        "triplets": [{"subject": [t.subject.start, t.subject.end, t.subject.label], "label": t.label,
                      "object": [t.object.start, t.object.end, t.object.label], "confidence": float(t.confidence)}
                     for t in out.triplets],
    }


class OurPipeline:
    """Our side through the public API only: `Reader.from_folder` + `Relik(reader, None, ...)`; `raw_output=True`
    when this checkout's `Relik` has it (keeps EL spans whose end precedes their start, as the reference)."""

    def __init__(self, wl: dict[str, Any], folder: Path, spec: dict[str, Any]) -> None:
        t = time.perf_counter()
        reader = Reader.from_folder(folder / "reader", **({"use_nme": True} if spec.get("use_nme") else {}))
        self.load_s = time.perf_counter() - t
        kwargs = dict(task=wl["task"], window_size=wl["window_size"], window_stride=wl["window_stride"],
                      top_k=wl["top_k"])
        try:
            self.relik, self.raw = Relik(reader, None, raw_output=True, **kwargs), True
        except TypeError as e:  # this checkout has no raw output
            if "raw_output" not in str(e):
                raise
            self.relik, self.raw = Relik(reader, None, **kwargs), False
        self.texts, self.candidates = wl["texts"], wl["candidates"]

    def run(self) -> dict[str, Any]:
        t, c = time.perf_counter(), time.process_time()
        outs = self.relik(self.texts, candidates=self.candidates)
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
        return {"seconds": seconds, "cpu_s": cpu, "outputs": [output_view(o) for o in outs]}


def time_workload(wl: dict[str, Any], ours: OurPipeline, ref: ReferenceProcess | None,
                  repeats: int) -> dict[str, dict[str, Any]]:
    """A warm-up call of each side, then `repeats` timed calls, alternating reference / ours (never at once)."""
    sides: dict[str, Callable[[], dict[str, Any]]] = {"ours": ours.run}
    if ref is not None:
        sides = {"reference": lambda: ref.run(wl["name"]), **sides}
    calls: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for r in range(repeats + 1):
        for side, run in sides.items():
            load = os.getloadavg()[0]
            res = run()
            res["loadavg_1m"] = load
            calls[side].append(res)
            log(f"{side} {wl['name']}: {'warm-up' if r == 0 else f'repeat {r}/{repeats}'} {res['seconds']:.2f} s "
                f"(CPU {res['cpu_s']:.2f} s, load {load:.2f})")
    out = {}
    for side, cs in calls.items():
        timed = cs[1:]
        out[side] = {
            "load_s": ours.load_s if side == "ours" else cs[0]["load_s"],
            "warmup_s": cs[0]["seconds"], "warmup_cpu_s": cs[0]["cpu_s"],
            "times_s": [c["seconds"] for c in timed], "cpu_s": [c["cpu_s"] for c in timed],
            "loadavg_1m": [c["loadavg_1m"] for c in cs],
            "repeat_outputs_identical": all(c["outputs"] == cs[0]["outputs"] for c in timed),
            "outputs": timed[-1]["outputs"],
        }
    out["ours"]["raw_output"] = ours.raw
    return out


def profile_pass(relik: Relik, texts: list[str], cands: Any, path: Path) -> dict[str, Any]:
    """cProfile of one more (warm) pass; prints and returns the top functions by total and cumulative time."""
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.runcall(relik, texts, candidates=cands)
    seconds = time.perf_counter() - t
    path.parent.mkdir(parents=True, exist_ok=True)
    prof.dump_stats(str(path))
    out = {"seconds": seconds, "file": str(path)}
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(25)
        out[key] = buf.getvalue()
        print(f"--- cProfile of {path.stem}, sorted by {key} ({seconds:.2f} s) ---\n{out[key]}", file=sys.stderr)
    return out


# ------------------------------------------------------------------------------------------------ compare
def _drop_inverted(view: dict[str, Any]) -> dict[str, Any]:
    ok = [s for s in view["spans"] if s[1] > s[0]]
    trip = [t for t in view["triplets"] if t["subject"][1] > t["subject"][0] and t["object"][1] > t["object"][0]]
    return {"spans": ok, "triplets": trip}


def compare(ours: list[dict[str, Any]], ref: list[dict[str, Any]], raw: bool) -> dict[str, Any]:
    """Per document: spans (start, end, label) and triplets (boundaries, relation, confidence to 2 decimals)."""
    if len(ours) != len(ref):
        return {"identical": False, "differing_docs": list(range(max(len(ours), len(ref)))),
                "note": f"{len(ours)} outputs vs {len(ref)} reference outputs"}
    differing, examples = [], []
    n_spans = n_triplets = 0
    for doc, (o, r) in enumerate(zip(ours, ref, strict=True)):
        if not raw:
            o, r = _drop_inverted(o), _drop_inverted(r)
        so, sr = {tuple(s) for s in o["spans"]}, {tuple(s) for s in r["spans"]}

        def trips(v: dict[str, Any]) -> set[tuple]:
            return {(tuple(t["subject"][:2]), t["label"], tuple(t["object"][:2]), round(t["confidence"], 2))
                    for t in v["triplets"]}

        to, tr = trips(o), trips(r)
        n_spans += len(sr)
        n_triplets += len(tr)
        if so != sr or to != tr:
            differing.append(doc)
            if len(examples) < 3:
                examples.append({"doc": doc, "missing_spans": sorted(sr - so)[:3], "extra_spans": sorted(so - sr)[:3],
                                 "missing_triplets": sorted(tr - to, key=str)[:3],
                                 "extra_triplets": sorted(to - tr, key=str)[:3]})
    return {"identical": not differing, "differing_docs": differing, "examples": examples,
            "compared_spans": n_spans, "compared_triplets": n_triplets,
            "compared": "all spans (raw output)" if raw else "spans with end > start only (no raw_output option)"}


# ------------------------------------------------------------------------------------------------- report
def summary(side: dict[str, Any]) -> dict[str, float]:
    times = side["times_s"]
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "median_cpu_s": statistics.median(side["cpu_s"])}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "flax", "numpy", "tokenizers"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    try:
        out["relik_jax_commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                                 capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return out


def print_table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"End to end: relik-jax vs relik {meta['reference_versions'].get('relik', '?')} "
                        f"({meta['cpu']}, {meta['cores']} cores; load avg before {meta['loadavg_before'][0]:.2f}, "
                        f"after {meta['loadavg_after'][0]:.2f})")
    for col, just in [("workload", "left"), ("windows", "right"), ("ours s (median, min–max)", "right"),
                      ("reference s", "right"), ("ours / ref", "right"), ("CPU s ours / ref", "right"),
                      ("warm-up s ours / ref", "right"),
                      ("outputs identical", "left")]:
        table.add_column(col, justify=just)
    for r in rows:
        o, f = r["ours"], r["reference"]
        c = r["outputs"]
        same = "yes" if c["identical"] else f"no: {len(c['differing_docs'])}/{r['documents']} docs differ"
        table.add_row(r["workload"], str(r["windows"]),
                      f"{o['median_s']:.2f} ({o['min_s']:.2f}–{o['max_s']:.2f})",
                      f"{f['median_s']:.2f} ({f['min_s']:.2f}–{f['max_s']:.2f})",
                      f"{r['ratio']:.2f}×", f"{o['median_cpu_s']:.1f} / {f['median_cpu_s']:.1f}",
                      f"{o['warmup_s']:.1f} / {f['warmup_s']:.1f}", same)
    console = Console(record=True, width=160)
    console.print(table)
    return console.export_text()


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Left: seconds per pass of both sides (log scale, median with min–max); right: ours / reference, with the
    2× target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(rows))
    labels = [f"{r['workload']}\n{r['windows']} win." for r in rows]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(2.2 * len(rows) + 4, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for dx, side, color, name in ((-0.2, "ours", "tab:blue", "relik-jax"),
                                  (0.2, "reference", "tab:orange", "relik 1.0.7 (PyTorch)")):
        med = np.array([r[side]["median_s"] for r in rows])
        err = np.array([[m - r[side]["min_s"], r[side]["max_s"] - m] for m, r in zip(med, rows, strict=True)]).T
        ax.bar(x + dx, med, 0.4, yerr=err, capsize=3, color=color, label=name)
    ax.set_yscale("log")
    ax.set_xticks(x, labels)
    ax.set_ylabel("seconds per pass (median, min–max)")
    ax.legend(fontsize=8)
    ratios = [r["ratio"] for r in rows]
    ax2.bar(x, ratios, 0.5, color=["tab:green" if q <= 0.5 else "tab:red" if q > 1 else "tab:gray" for q in ratios])
    ax2.axhline(1.0, color="black", lw=0.8)
    ax2.axhline(0.5, color="tab:green", lw=0.8, ls="--", label="2× faster")
    for i, q in enumerate(ratios):
        ax2.text(i, q, f"{q:.2f}×", ha="center", va="bottom", fontsize=8)
    ax2.set_xticks(x, labels)
    ax2.set_ylabel("ours / reference (wall, median)")
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=e2e_workloads.__doc__.split("\n\n", 1)[1])
    p.add_argument("--workloads", default=None,
                   help=f"comma-separated, from {list(WORKLOADS)}, each also as NAME{FULL} (full-depth reader) "
                        f"(default {DEFAULT_WORKLOADS}; --quick: el,re,cie)")
    p.add_argument("--full", action="store_true",
                   help=f"every workload with the full-depth reader (12 layers, hidden 768) on fewer documents "
                        f"(NAME -> NAME{FULL})")
    p.add_argument("--repeats", type=int, default=None, help="timed passes after the warm-up (default 3, --quick 1)")
    p.add_argument("--docs", type=int, default=None, help="documents per workload (default: the issue's sizes)")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/e2e.json; "
                                                          "--quick: e2e-quick.json); the chart goes beside it")
    p.add_argument("--quick", action="store_true", help="smoke run: the first 2 one-window documents per workload, "
                                                        "1 repeat")
    p.add_argument("--reuse-reference", action="store_true",
                   help="reuse cached reference results of an identical job (same inputs and scripts)")
    p.add_argument("--profile", action="store_true", help="cProfile one more pass of ours per workload")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of the reference")
    args = p.parse_args(argv)
    args.workloads = [w for w in (args.workloads or ("el,re,cie" if args.quick else DEFAULT_WORKLOADS)).split(",")
                      if w]
    if args.full:
        args.workloads = list(dict.fromkeys(w if w.endswith(FULL) else w + FULL for w in args.workloads))
    unknown = [w for w in args.workloads if w.removesuffix(FULL) not in WORKLOADS]
    if unknown:
        p.error(f"unknown workloads {unknown}: choose from {list(WORKLOADS)}")
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.docs = args.docs or (2 if args.quick else None)
    args.out = args.out or RESULTS / ("e2e-quick.json" if args.quick else "e2e.json")
    return args


def workload_row(wl: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    o = {**summary(ours), **{k: v for k, v in ours.items() if k != "outputs"}}
    f = {**summary(theirs), **{k: v for k, v in theirs.items() if k != "outputs"}}
    ref_out = theirs["outputs"]
    predicted = {"spans": sum(len(v["spans"]) for v in ref_out),
                 "inverted_spans": sum(1 for v in ref_out for s in v["spans"] if s[1] <= s[0]),
                 "triplets": sum(len(v["triplets"]) for v in ref_out)}
    return {"workload": wl["name"], "task": wl["task"], "reader": wl["reader"], "documents": len(wl["texts"]),
            "document_indices": wl["documents"], "windows": wl["windows"], "k": wl["top_k"],
            "gold_mentions": wl["gold_mentions"], "reference_predicted": predicted, "ours": o, "reference": f,
            "ratio": o["median_s"] / f["median_s"], "cpu_ratio": o["median_cpu_s"] / f["median_cpu_s"],
            "outputs": compare(ours["outputs"], ref_out, ours["raw_output"])}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    reuse_freed_memory()  # as the CLI does (engine/host_memory.py)
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    python = venv_python()  # fail early, before reading any data
    corpora = Corpora()
    inputs = [workload_inputs(w, corpora, args.docs, args.quick) for w in args.workloads]
    specs = {wl["reader"]: reader_spec(wl["kind"], wl["full"], corpora) for wl in inputs}
    job = {"readers": specs, "workloads": inputs, "repeats": args.repeats, "threads": args.threads}
    cache = reference_cache(job)
    cached = json.loads(cache.read_text()) if args.reuse_reference and cache.is_file() else None
    names = ", ".join(f"{wl['name']} ({wl['windows']} windows)" for wl in inputs)
    if cached:
        log(f"reference: reusing the results of {cached['created']} ({cache}); timing ours on {names}")
        ref, ready = None, cached["ready"]
    else:
        log(f"reference ({python}): building or loading the readers, then {names}")
        ref = ReferenceProcess(job, paths.CACHE / "e2e" / "work" / args.out.stem)
        ready = ref.ready
    rows, ref_results = [], {}
    try:
        for wl in inputs:
            ours = OurPipeline(wl, Path(ready["readers"][wl["reader"]]["folder"]), specs[wl["reader"]])
            timed = time_workload(wl, ours, ref, args.repeats)
            theirs = ref_results[wl["name"]] = timed.get("reference") or cached["workloads"][wl["name"]]
            if args.profile:
                path = args.out.with_name(f"{args.out.stem}-profile-{wl['name']}.prof")
                timed["ours"]["profile"] = profile_pass(ours.relik, wl["texts"], wl["candidates"], path)
            rows.append(row := workload_row(wl, timed["ours"], theirs))
            log(f"{wl['name']}: ours {row['ours']['median_s']:.2f} s, reference {row['reference']['median_s']:.2f} s, "
                f"ratio {row['ratio']:.2f}, identical outputs: {row['outputs']['identical']}")
            del ours
    finally:
        if ref is not None:
            ref.close()
    created = datetime.datetime.now().isoformat(timespec="seconds")
    if ref is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"created": created, "ready": ready, "workloads": ref_results}))
    meta = {
        "created": created,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "versions": versions(), "reference_versions": ready["versions"], "reference_threads": ready["threads"],
        "reference_reused_from": cached["created"] if cached else None,
        "repeats": args.repeats, "quick": args.quick,
        "readers": {name: r["build"] for name, r in ready["readers"].items()},
    }
    text = print_table(rows, meta)
    meta["wall_s"] = time.perf_counter() - t_start
    out = {**meta, "table": text, "workloads": {r["workload"]: r for r in rows}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    plot(rows, args.out.with_suffix(".png"),
         f"text → spans/triplets, candidates given; {meta['cpu']}, {meta['cores']} cores, "
         f"load {meta['loadavg_before'][0]:.1f}→{meta['loadavg_after'][0]:.1f}")
    log(f"wrote {args.out} and {args.out.with_suffix('.png')} ({meta['wall_s']:.0f} s)")
    return out


if __name__ == "__main__":
    main()
