"""Speed of ReLiK-JAX on the paper's workloads (ReLiK Table 6: time to annotate each test set, retriever and reader
separately; Table 8: reader time as K shrinks), against device time, the PyTorch reference and the FLOP floor.

    python benchmarks/speed.py                    # default preset: "paper" on an accelerator, "cpu" otherwise
    python benchmarks/speed.py --preset paper     # full test sets, full-depth models (GPU session)
    python benchmarks/speed.py --reference        # also time the relik 1.0.7 PyTorch reference on the same inputs

What is measured, per row: compile time (first pass minus a steady pass), steady-state time of one pass over the
sampled windows (median of repeats, `block_until_ready`), sequences/s and real tokens/s, padding efficiency of
our length buckets, achieved TFLOP/s (executed FLOPs, padding included, from `relik_jax.engine.flops`) and its
fraction of the device peak, peak memory. The full-test-set time is extrapolated from the sample by FLOPs (marked
"est.").
Floors: full-set FLOPs of the full-depth model (heads included) / peak, on this device and on the paper's RTX 4090.

The "cpu" preset is scaled down to finish in minutes on two cores: a few windows per workload and models cut to
`--layers` layers (labelled "base 2/12L"); the full-depth, full-set time is extrapolated by FLOPs.
The reader rows time `relik_jax.reader.reader.Reader` (backbone + heads) with random weights whose start/end biases are
calibrated to the gold mention rate; in a checkout without the reader they time the DeBERTa backbone only.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import models, workloads  # noqa: E402
from relik_jax.engine import flops  # noqa: E402
from relik_jax.engine.compiled import CompiledForward  # noqa: E402
from relik_jax.engine.host_memory import reuse_freed_memory  # noqa: E402
from relik_jax.models.bert import mean_pool  # noqa: E402

# ReLiK paper (final version), RTX 4090, seconds to annotate the whole test split. Table 6: retriever and reader
# (ReLiK_S/B/L) inference; Table 8: reader only, as K (passages given to the reader) shrinks. Table 8's NYT K=24
# column repeats Table 6 except ReLiK_S (10 s there, 8 s in Table 6).
PAPER = {
    ("aida", "retriever", "e5-base", 100): (6, "Table 6"),
    ("nyt", "retriever", "e5-small", 24): (2, "Table 6"),
    ("rebel", "retriever", "e5-base", 25): (5 * 60, "Table 6"),
    ("aida", "reader", "base", 100): (23, "Table 6"),
    ("aida", "reader", "large", 100): (100, "Table 6"),
    ("aida", "reader", "base", 50): (14, "Table 8"),
    ("aida", "reader", "base", 20): (6, "Table 8"),
    ("aida", "reader", "large", 50): (47, "Table 8"),
    ("aida", "reader", "large", 20): (22, "Table 8"),
    ("nyt", "reader", "small", 24): (8, "Table 6"),
    ("nyt", "reader", "base", 24): (14, "Table 6"),
    ("nyt", "reader", "large", 24): (28, "Table 6"),
    ("rebel", "reader", "small", 25): (10 * 60, "Table 6"),
    ("rebel", "reader", "base", 25): (17 * 60, "Table 6"),
    ("rebel", "reader", "large", 25): (36 * 60, "Table 6"),
}
for _size, _times in {"small": (10, 10, 8, 6), "base": (14, 12, 10, 9), "large": (24, 22, 20, 18)}.items():
    for _k, _t in zip((16, 12, 8, 4), _times, strict=True):
        PAPER[("nyt", "reader", _size, _k)] = (_t, "Table 8")
PAPER_KB = 5_900_000  # entities in the paper's Wikipedia index (reference spec §3.3)
REBEL_RELATIONS = 20  # cIE: K = 25 entities + 20 relations (Table 4)


@dataclasses.dataclass
class Preset:
    windows: dict[str, int | None]     # windows timed per workload (None: all we have)
    readers: list[tuple[str, str, int]]  # (workload, size, K) timed in every dtype
    sweep: list[tuple[str, str, int]]  # Table 8 K sweep, first dtype only
    retrievers: dict[str, list[str]]   # workload -> encoders
    layers: int | None                 # depth cut (None: full depth)
    index_size: int
    token_budget: int
    max_batch: int
    multiple: int
    repeats: int
    dtypes: tuple[str, ...]
    single_batch: bool = False         # run each case as one padded batch (one compile; for tiny CPU samples)


PRESETS = {
    # Sized for two shared CPU cores: few windows, 2-layer models, coarse length buckets (compiles dominate).
    "cpu": Preset(windows={"aida": 4, "nyt": 8, "rebel": 4},
                  readers=[("aida", "base", 100), ("nyt", "small", 24), ("rebel", "small", 25)],
                  sweep=[("aida", "base", 20), ("nyt", "small", 4)],
                  retrievers={"aida": ["e5-base"], "nyt": ["e5-small"], "rebel": ["e5-base", "e5-small"]},
                  layers=2, index_size=50_000, token_budget=4096, max_batch=32, multiple=64, repeats=3,
                  dtypes=("fp32", "bf16"), single_batch=True),
    "paper": Preset(windows={"aida": None, "nyt": None, "rebel": 4000},
                    readers=[("aida", "base", 100), ("aida", "large", 100), ("nyt", "small", 24),
                             ("nyt", "base", 24), ("nyt", "large", 24), ("rebel", "small", 25),
                             ("rebel", "base", 25), ("rebel", "large", 25)],
                    sweep=[(w, s, k) for w, s, ks in (("aida", "base", (50, 20)), ("aida", "large", (50, 20)),
                                                      ("nyt", "small", (16, 12, 8, 4)),
                                                      ("nyt", "base", (16, 12, 8, 4)),
                                                      ("nyt", "large", (16, 12, 8, 4))) for k in ks],
                    retrievers={"aida": ["e5-base"], "nyt": ["e5-small"], "rebel": ["e5-base", "e5-small"]},
                    layers=None, index_size=PAPER_KB, token_budget=16384, max_batch=128, multiple=64, repeats=3,
                    dtypes=("bf16", "fp32")),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def peak_memory(device: jax.Device) -> tuple[int, str]:
    """Peak device memory (bytes) where the runtime reports it, else this process's peak RSS."""
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 - CPU backends raise or return None depending on the version
        stats = {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device peak_bytes_in_use"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process peak RSS"


def timed_passes(run, inputs: list, repeats: int) -> tuple[float, list[float]]:
    """(first pass incl. compiles, [steady passes]) over all batches, blocking once at the end of each pass."""
    def one() -> float:
        t = time.perf_counter()
        jax.block_until_ready([run(*x) for x in inputs])
        return time.perf_counter() - t
    first = one()
    return first, [one() for _ in range(repeats)]


def start_rate(rows: list[workloads.Row]) -> float:
    """Gold mentions per text sub-token: what the random heads are calibrated to predict."""
    return sum(r.mentions for r in rows) / max(sum(r.text_len - 2 for r in rows), 1)


def run_batches(rows: list[workloads.Row], task: str, preset: Preset) -> list[workloads.Batch]:
    if preset.single_batch:
        return workloads.single_batch(rows, task, preset.multiple)
    return workloads.bucket_batches(rows, task, preset.token_budget, preset.max_batch, preset.multiple)


def full_set_flops(rows: list[workloads.Row], scale: float, fn) -> float:
    """Sum of fn(length, row) over rows, times `scale` (sample -> full set)."""
    return scale * sum(fn(len(r.ids), r) for r in rows)


def reader_flop_fns(task: str, cfg, k: int):
    shape = flops.EncoderShape.of(cfg)
    h = cfg.hidden_size

    def backbone(n: int, r=None) -> int:
        return flops.encoder_flops(shape, 1, n)

    def heads(n: int, r) -> int:
        if task == "el":
            return flops.span_head_flops(h, 1, n, r.mentions, r.symbols + 1)
        types = r.entity_symbols if task == "cie" else 0
        return flops.re_head_flops(h, 1, n, r.mentions, r.symbols - types, types=types)
    return backbone, heads


def reader_case(w: workloads.Workload, size: str, k: int, dtype: str, preset: Preset, sample: np.ndarray,
                device: jax.Device, peak: models.Peak, cache: dict) -> dict:
    cfg_run = models.reader_config(size, w.task, preset.layers)
    cfg_full = models.reader_config(size, w.task)
    rows = w.rows(k, indices=sample, k_relations=REBEL_RELATIONS)
    batches = run_batches(rows, w.task, preset)
    if models.reader_available():  # the real reader: backbone + heads, its staged jitted forward
        from relik_jax.engine.buckets import Buckets, plan_batches
        from relik_jax.reader.reader import Reader

        rcfg, model = models.random_reader(size, w.task, preset.layers, dtype)
        tokenizer = workloads.reader_tokenizer(w.task)
        # Length buckets every `multiple` tokens (the Reader's default is coarser: 64, 128, 256, 512, ...).
        buckets = Buckets(seq_lens=tuple(range(preset.multiple, 1024 + 1, preset.multiple)),
                          token_budget=preset.token_budget, max_rows=preset.max_batch)
        if not preset.single_batch:  # account for the batches the Reader itself will run
            batches = [workloads.make_batch(rows, list(p.indices), w.task, batch=p.rows, length=p.seq_len)
                       for p in plan_batches([len(r.ids) for r in rows], buckets)]
        reader = Reader(rcfg, model, tokenizer, buckets=buckets, use_nme=w.task != "re")
        calibration = models.calibrate_reader(reader, w.task, batches[0], start_rate(rows))
        # A fresh Reader (new jitted stages) so that the first timed pass pays every compile, as a user would.
        reader = Reader(rcfg, model, tokenizer, buckets=buckets, use_nme=w.task != "re")
        rrows = workloads.reader_rows(rows, w.task)
        if preset.single_batch:
            b0 = batches[0]
            inputs = [(reader, rrows, b0.shape[1], b0.shape[0])]
            run = models.run_batch
        else:
            inputs = [(rrows,)]
            run = reader.forward
        measured = "reader"
    else:  # before relik_jax.reader.model existed: the DeBERTa backbone only
        model = models.random_model(cfg_run, dtype)
        reader = CompiledForward(model, lambda m, ids, mask: m(ids, mask))
        inputs = [(jax.device_put(b.input_ids, device), jax.device_put(b.attention_mask, device)) for b in batches]
        run, measured, calibration = reader, "backbone", None
    first, steady = timed_passes(run, inputs, preset.repeats)
    t = statistics.median(steady)
    shape_run = flops.EncoderShape.of(cfg_run)
    executed = sum(flops.encoder_flops(shape_run, *b.shape) for b in batches)
    bb_run, heads_run = reader_flop_fns(w.task, cfg_run, k)
    if measured == "reader":  # heads on the padded length, at the gold mention counts (calibrated random heads)
        executed += sum(heads_run(b.shape[1], rows[i]) for b in batches for i in b.rows)
    bb_full, heads_full = reader_flop_fns(w.task, cfg_full, k)
    all_rows = w.rows(k, k_relations=REBEL_RELATIONS)  # every window we have, for the full-set counts
    all_lengths = [len(r.ids) for r in all_rows]
    if measured == "reader":
        full_plan = [(list(p.indices), p.rows, p.seq_len) for p in plan_batches(all_lengths, buckets)]
    else:
        full_plan = workloads.bucket_plan(all_lengths, preset.token_budget, preset.max_batch, preset.multiple)
    full_eff = workloads.plan_efficiency(all_lengths, full_plan)
    scale = w.full_windows / len(all_rows)
    sample_bb = full_set_flops(rows, 1.0, bb_run)
    full_bb = full_set_flops(all_rows, scale, bb_full)
    full_heads = full_set_flops(all_rows, scale, heads_full)
    real_tokens = sum(len(r.ids) for r in rows)
    p = getattr(peak, dtype)
    mem, mem_kind = peak_memory(device)
    paper = PAPER.get((w.name, "reader", size, k))
    return {
        "workload": w.name, "task": w.task, "part": "reader", "measured": measured,
        "model": size, "layers_run": cfg_run.num_hidden_layers, "layers_full": cfg_full.num_hidden_layers,
        "k": k, "dtype": dtype, "windows_run": len(rows), "windows_full": w.full_windows,
        "batches": len(batches), "shapes": sorted({b.shape for b in batches}), "compiles": reader.num_compiles,
        "compile_s": max(first - t, 0.0), "time_s": t, "time_all_s": steady,
        "seq_per_s": len(rows) / t, "tokens_per_s": real_tokens / t,
        "padding_efficiency": workloads.padding_efficiency(batches, rows), "padding_efficiency_full": full_eff,
        "flops_executed": executed, "tflops": executed / t / 1e12, "peak_fraction": executed / t / p,
        "est_full_s": t * (full_bb + (full_heads if measured == "reader" else 0))
        / (sample_bb + (full_set_flops(rows, 1.0, heads_run) if measured == "reader" else 0)),
        "flops_full": full_bb + full_heads, "flops_full_heads": full_heads, "calibration": calibration,
        "floor_s": (full_bb + full_heads) / p, "floor_4090_s": (full_bb + full_heads) / getattr(models.RTX4090, dtype),
        "paper_s": paper[0] if paper else None, "paper_ref": paper[1] if paper else None,
        "peak_memory_bytes": mem, "peak_memory_kind": mem_kind,
    }


def retriever_case(w: workloads.Workload, encoders: list[str], dtype: str, preset: Preset, sample: np.ndarray,
                   device: jax.Device, peak: models.Peak, cache: dict) -> dict:
    """Query encoding (every encoder) + exhaustive top-100 search over a random index of `index_size` rows."""
    queries = [workloads.Row(np.asarray(w.windows[int(i)].query_ids, np.int32), 0, 0, 0, int(i)) for i in sample]
    all_q = np.array([len(x.query_ids) for x in w.windows])
    scale = w.full_windows / len(w.windows)
    # Queries are short (~45 tokens): finer length buckets.
    q_preset = dataclasses.replace(preset, multiple=16)
    batches = run_batches(queries, "el", q_preset)
    q_lengths = [int(n) for n in all_q]
    full_eff = workloads.plan_efficiency(q_lengths, workloads.bucket_plan(q_lengths, preset.token_budget,
                                                                          preset.max_batch, 16))
    inputs = [(jax.device_put(b.input_ids, device), jax.device_put(b.attention_mask, device)) for b in batches]
    total_t, total_first, est, executed, full_flops, compiles = 0.0, 0.0, 0.0, 0, 0.0, 0
    steady_sum = np.zeros(preset.repeats)
    for enc in encoders:
        cfg_run, cfg_full = models.retriever_config(enc, preset.layers), models.retriever_config(enc)
        key = (enc, preset.layers, dtype)
        if key not in cache:
            cache[key] = models.random_model(cfg_run, dtype)
        fwd = CompiledForward(cache[key], lambda m, ids, mask: mean_pool(m(ids, mask), mask))
        first, steady = timed_passes(fwd, inputs, preset.repeats)
        t = statistics.median(steady)
        s_run, s_full = flops.EncoderShape.of(cfg_run), flops.EncoderShape.of(cfg_full)
        sample_f = sum(flops.encoder_flops(s_run, 1, len(q.ids)) for q in queries)
        full_f = scale * sum(flops.encoder_flops(s_full, 1, int(n)) for n in all_q)
        executed += sum(flops.encoder_flops(s_run, *b.shape) for b in batches)
        total_t, total_first, est, full_flops = total_t + t, total_first + first, est + t * full_f / sample_f, \
            full_flops + full_f
        steady_sum += np.asarray(steady)
        compiles += fwd.num_compiles
    # Search: only the entity index is big (AIDA, REBEL); NYT's 24 relations cost nothing.
    search_t, index_n = 0.0, 0
    if w.task in ("el", "cie"):
        dim = models.RETRIEVERS[encoders[0]][0]
        index_n = preset.index_size
        index_dtype = jnp.bfloat16 if dtype == "bf16" else jnp.float32
        key = ("index", index_n, dim, dtype)
        if key not in cache:  # random unit-scale embeddings, drawn on the device; real ones only change values
            with jax.default_device(device):
                cache[key] = jax.jit(lambda k: jax.random.normal(k, (index_n, dim), index_dtype))(jax.random.key(1))
        index = cache[key]
        search = jax.jit(lambda q, e: jax.lax.top_k((q.astype(e.dtype) @ e.T).astype(jnp.float32), 100))
        q = jax.device_put(jnp.asarray(np.random.default_rng(2).standard_normal((len(queries), dim),
                                                                                 dtype=np.float32)), device)
        first, steady = timed_passes(search, [(q, index)], preset.repeats)
        search_t = statistics.median(steady)
        executed += flops.search_flops(len(queries), index_n, dim)
        full_flops += flops.search_flops(w.full_windows, PAPER_KB, dim)
        est += search_t * (w.full_windows / len(queries)) * (PAPER_KB / index_n)
        steady_sum += np.asarray(steady)
        total_first += first
        del index
    t = total_t + search_t
    p = getattr(peak, dtype)
    paper = PAPER.get((w.name, "retriever", encoders[0], {"el": 100, "re": 24, "cie": 25}[w.task]))
    mem, mem_kind = peak_memory(device)
    return {
        "workload": w.name, "task": w.task, "part": "retriever", "measured": "encode + search",
        "model": "+".join(encoders), "layers_run": cfg_run.num_hidden_layers, "layers_full": cfg_full.num_hidden_layers,
        "k": {"el": 100, "re": 24, "cie": 25}[w.task], "dtype": dtype, "windows_run": len(queries),
        "windows_full": w.full_windows,
        "batches": len(batches), "shapes": sorted({b.shape for b in batches}), "compiles": compiles,
        "compile_s": max(total_first - t, 0.0), "time_s": t, "time_all_s": steady_sum.tolist(),
        "search_s": search_t, "index_size": index_n, "index_size_full": PAPER_KB if index_n else 0,
        "seq_per_s": len(queries) / t, "tokens_per_s": sum(len(q.ids) for q in queries) / t,
        "padding_efficiency": workloads.padding_efficiency(batches, queries), "padding_efficiency_full": full_eff,
        "flops_executed": executed, "tflops": executed / t / 1e12, "peak_fraction": executed / t / p,
        "est_full_s": est, "flops_full": full_flops, "flops_full_heads": 0,
        "floor_s": full_flops / p, "floor_4090_s": full_flops / getattr(models.RTX4090, dtype),
        "paper_s": paper[0] if paper else None, "paper_ref": paper[1] if paper else None,
        "peak_memory_bytes": mem, "peak_memory_kind": mem_kind,
    }


def environment(device: jax.Device, peak: models.Peak) -> dict:
    import flax

    def version(mod: str) -> str | None:
        try:
            return __import__(mod).__version__
        except Exception:  # noqa: BLE001
            return None
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        commit = None
    cpu = None
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), None)
    except OSError:
        pass
    return {
        "device": str(device), "platform": device.platform, "device_kind": device.device_kind,
        "cpu": cpu, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
        "peak_flops": dataclasses.asdict(peak), "python": platform.python_version(), "jax": jax.__version__,
        "jaxlib": version("jaxlib"), "flax": flax.__version__, "numpy": np.__version__, "git_commit": commit,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def fmt_s(x: float | None, est: bool = False) -> str:
    if x is None:
        return "—"
    s = f"{x:.3g}" if x < 100 else f"{x:,.0f}"
    return f"{s}{' est.' if est else ''}"


def label(r: dict) -> str:
    depth = f" {r['layers_run']}/{r['layers_full']}L" if r["layers_run"] != r["layers_full"] else ""
    return f"{r['model']}{depth}"


def ref_time(r: dict) -> float | None:
    """The reference's time for what the row measured: its full reader for reader rows, else its backbone."""
    ref = r.get("reference")
    if not ref:
        return None
    return ref.get("reader_time_s") if r["measured"] == "reader" else ref["time_s"]


def markdown_table(results: list[dict]) -> str:
    head = ["workload", "part", "model", "K", "dtype", "windows run/full", "compile s", "time s (run)", "seq/s",
            "tok/s", "peak mem GiB", "pad eff run/full", "TFLOP/s", "% peak", "full set s (ours)", "floor s (here)",
            "paper 4090 s", "floor 4090 s", "ref s (run)", "ours/ref"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        measured = r["part"] if r["part"] == "retriever" or r["measured"] == "reader" else f"reader ({r['measured']})"
        cells = [
            r["workload"].upper() if r["workload"] != "rebel" else "REBEL", measured, label(r), str(r["k"]),
            r["dtype"], f"{r['windows_run']}/{r['windows_full']:,}", f"{r['compile_s']:.1f}", f"{r['time_s']:.3g}",
            f"{r['seq_per_s']:.3g}", f"{r['tokens_per_s']:,.0f}", f"{r['peak_memory_bytes'] / 2**30:.1f}",
            f"{r['padding_efficiency']:.2f}/{r['padding_efficiency_full']:.2f}",
            f"{r['tflops']:.3g}",
            f"{100 * r['peak_fraction']:.0f}%",
            fmt_s(r["est_full_s"], est=r["windows_run"] < r["windows_full"] or r["layers_run"] != r["layers_full"]),
            fmt_s(r["floor_s"]), fmt_s(r["paper_s"]) + (f" ({r['paper_ref']})" if r["paper_s"] else ""),
            fmt_s(r["floor_4090_s"]), fmt_s(ref_time(r)), f"{r['time_s'] / ref_time(r):.2f}" if ref_time(r) else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results if r.get("main")]
    names = [f"{r['workload'].upper()} {r['part']} {label(r)} K={r['k']} {r['dtype']}" for r in rows]
    series = [("ours (full set, est. from run)", "est_full_s", "tab:blue"),
              ("reference (full set, est.)", "ref_est_full_s", "tab:orange"),
              ("paper, RTX 4090", "paper_s", "tab:green"),
              ("FLOP floor here", "floor_s", "tab:gray"),
              ("FLOP floor RTX 4090", "floor_4090_s", "tab:olive")]
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(rows) * len(series) / 2 + 2))
    height = 0.8 / len(series)
    for j, (name, key, color) in enumerate(series):
        ys = [i + j * height for i in range(len(rows))]
        vals = [(r.get(key) or (r.get("reference") or {}).get(key) or np.nan) for r in rows]
        ax.barh(ys, vals, height=height, label=name, color=color)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("seconds to annotate the full test set (log scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), help="default: paper on GPU/TPU, cpu otherwise")
    ap.add_argument("--reference", action="store_true",
                    help="also time the relik 1.0.7 PyTorch reader on the same inputs (needs the reference venv)")
    ap.add_argument("--layers", type=int, help="cut every model to this many layers (0: full depth)")
    ap.add_argument("--windows", type=int, help="windows per workload (default: the preset's)")
    ap.add_argument("--only", help="comma-separated workloads (aida,nyt,rebel)")
    ap.add_argument("--dtypes", help="comma-separated compute dtypes (fp32,bf16)")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--no-sweep", action="store_true", help="skip the Table 8 K sweep")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--table", type=Path, help="only print the tables of a results JSON written earlier")
    args = ap.parse_args(argv)
    reuse_freed_memory()  # as the CLI does (engine/host_memory.py)
    if args.table:
        saved = json.loads(args.table.read_text())
        print(markdown_table(saved["results"]))
        if saved.get("reference_note"):
            print(saved["reference_note"])
        return 0

    t_start = time.perf_counter()
    device = jax.devices()[0]
    preset_name = args.preset or ("cpu" if device.platform == "cpu" else "paper")
    preset = dataclasses.replace(PRESETS[preset_name])
    if args.layers is not None:
        preset.layers = args.layers or None
    if args.windows:
        preset.windows = {k: args.windows for k in preset.windows}
    if args.dtypes:
        preset.dtypes = tuple(args.dtypes.split(","))
    if args.repeats:
        preset.repeats = args.repeats
    if args.no_sweep:
        preset.sweep = []
    only = set(args.only.split(",")) if args.only else set(workloads.FULL_WINDOWS)
    if device.platform == "cpu" and preset.index_size > 1_000_000:
        preset.index_size = 1_000_000  # 5.9M x 768 fp32 is 18 GB: scale the search instead
    log(f"device {device.device_kind} ({device.platform}); preset {preset_name}; layers "
        f"{preset.layers or 'full'}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    peak = models.device_peak(device)
    log(f"peak FLOP/s: bf16 {peak.bf16 / 1e12:.3g} T, fp32 {peak.fp32 / 1e12:.3g} T ({peak.source})")

    tok = workloads.load_tokenizer()
    wls = {}
    for name in ("aida", "nyt", "rebel"):
        if name in only:
            wls[name] = workloads.build(name, tok)
            log(f"{name}: {len(wls[name].windows)} windows ({wls[name].source}); full set "
                f"{wls[name].full_windows:,}")
    samples = {}
    for name, w in wls.items():
        n = preset.windows.get(name) or len(w.windows)
        n = min(n, len(w.windows))
        samples[name] = np.sort(np.random.default_rng(0).choice(len(w.windows), n, replace=False))

    results, cache = [], {}
    for name, encs in preset.retrievers.items():
        if name not in wls:
            continue
        for dtype in preset.dtypes:
            log(f"retriever {name} {'+'.join(encs)} {dtype}")
            r = retriever_case(wls[name], encs, dtype, preset, samples[name], device, peak, cache)
            r["main"] = True
            results.append(r)
    cache = {}
    for i, (name, size, k) in enumerate(preset.readers + preset.sweep):
        if name not in wls:
            continue
        main_row = i < len(preset.readers)
        for dtype in preset.dtypes if main_row else preset.dtypes[:1]:
            log(f"reader {name} {size} K={k} {dtype}")
            r = reader_case(wls[name], size, k, dtype, preset, samples[name], device, peak, cache)
            r["main"] = main_row
            log(f"  {r['time_s']:.3f} s for {r['windows_run']} windows, compile {r['compile_s']:.1f} s, "
                f"{r['tflops']:.3g} TFLOP/s")
            results.append(r)
    cache.clear()

    ref_note = None
    if args.reference:
        from benchmarks.reference import reference_run

        ref_note = reference_run.compare(results, wls, samples, preset, device, log)

    env = environment(device, peak)
    env["wall_s"] = time.perf_counter() - t_start
    out = {"preset": preset_name, "preset_config": dataclasses.asdict(preset), "environment": env,
           "workloads": {n: {"source": w.source, "windows": len(w.windows), "full_windows": w.full_windows}
                         for n, w in wls.items()},
           "paper": {"|".join(map(str, k)): v for k, v in PAPER.items()}, "results": results,
           "reference_note": ref_note}
    args.out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", device.device_kind.lower()).strip("-") or device.platform
    tag = f"{slug}-{preset_name}" + ("-reference" if args.reference else "")
    (args.out / f"{tag}.json").write_text(json.dumps(out, indent=1, default=str))
    try:
        plot(results, args.out / f"{tag}.png", f"ReLiK-JAX speed, {device.device_kind}, preset {preset_name}")
    except Exception as e:  # noqa: BLE001 - a plotting problem must not lose the numbers
        log(f"plot failed: {e!r}")
    load = os.getloadavg()[0]
    print()
    print(f"## Speed ({device.device_kind}, preset `{preset_name}`, {env['date']}, load average {load:.1f} on "
          f"{os.cpu_count()} CPUs)")
    print()
    print(markdown_table(results))
    print()
    print(notes(preset, preset_name, wls, peak, any(r.get("measured") == "reader" for r in results)))
    if ref_note:
        print(ref_note)
    log(f"wrote {args.out / tag}.json and .png in {env['wall_s']:.0f} s")
    return 0


def notes(preset: Preset, name: str, wls: dict, peak: models.Peak, reader: bool) -> str:
    lines = [
        f"- time s (run): median of {preset.repeats} passes over the windows run, device time "
        "(`block_until_ready`), inputs already on the device; compile s = first pass minus a steady pass.",
        "- pad eff run/full: real / computed tokens in the batches run, and for our length buckets over the full "
        f"set (token budget {preset.token_budget}, batch <= {preset.max_batch}, lengths rounded up to "
        f"{preset.multiple})" + ("; the run itself is one padded batch per row of the table (one compile)."
                                  if preset.single_batch else "."),
        ("- reader: `relik_jax.reader.reader.Reader` staged forward (DeBERTa-v3 backbone + span/triplet heads, with "
         "its two host syncs for the start/mention buckets and the copy of the outputs to the host), random weights "
         "whose start/end biases are shifted to predict about the gold number of mentions."
         if reader else
         "- reader (backbone): DeBERTa-v3 backbone forward only, random weights; the heads are counted in the FLOPs "
         "and floors but not timed (relik_jax.reader.model not in this checkout).")
        + " Retriever: query encoding (mean pool) + exact top-100 inner-product search.",
        "- full set s (ours): run time scaled by FLOPs to the full test set and the full-depth model (est.); "
        f"floors: full-set FLOPs (heads included) / peak ({peak.source}; RTX 4090: 165 TFLOP/s bf16, 82.6 fp32).",
        f"- retriever search: random index of {preset.index_size:,} rows, scaled linearly to the paper's "
        f"{PAPER_KB:,}-entity KB.",
        "- paper: ReLiK (ACL 2024) Table 6/8, RTX 4090, PyTorch, whole pipeline step (incl. pre/post-processing).",
        "- peak mem: device `peak_bytes_in_use` where the runtime reports it, else the process's peak RSS so far "
        "(monotone over the run).",
    ]
    if preset.layers:
        lines.append(f"- depth cut: models run with {preset.layers} layers (e.g. `base 2/12L`), full depth "
                     "extrapolated by FLOPs.")
    for n, w in wls.items():
        lines.append(f"- {n}: {w.source}; full set {w.full_windows:,} windows"
                     + (" (REBEL test set: 175K sentences, extrapolated)" if n == "rebel" else ""))
    if name == "cpu":
        lines.append("- CPU timings are noisy when the machine is shared (see the load average above).")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
