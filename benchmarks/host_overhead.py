"""Host cost per window of the whole pipeline, by stage, and the host-bound ceiling in windows/s.

    python benchmarks/host_overhead.py                       # AIDA EL K=100, NYT RE K=24, REBEL cIE (25 + 20)
    python benchmarks/host_overhead.py --workloads aida --docs 60 --repeats 3

A tiny reader (DeBERTa-v3-style, 1 layer, hidden 32, the MiniLM WordPiece tokenizer with the reader's special
symbols added) makes device work negligible, so what remains is the host's cost per window: words, windows,
retrieval (when `--retrieval`: a tiny BERT retriever over the AIDA KB), sub-word tokenization, row building, batch
padding ("batch"), dispatch, read-back, decoding, merging — read from the pipeline's own `StageTimes`
(relik_jax/engine/timing.py). The random start / end heads are shifted (bias) to predict the gold number of
mentions of the workload (AIDA 3.7 per window, NYT 2.2, REBEL 2.7; `benchmarks/workloads.py` FITTED): an untrained
head would predict about half the tokens as starts and make decoding look far costlier than with a trained reader.

Texts in, annotations out, candidates given per document (real AIDA titles, NYT relation names, REBEL titles and
relations). On a CPU the "device" is the same 2 cores, so host stages timed while the device computes are charged
with its time slices. The stage table therefore comes from null-device passes: one serial pass records every
compiled call's outputs, later passes get them back at once (fresh device arrays: the read-back copies still
happen), so a pass costs host work only; the dispatch of the recorded calls (argument transfer included) is timed
apart, one call at a time on an idle device, and added ("dispatch"). Host-bound ceiling = windows / (null-device
pass wall time + dispatch): the rate at which the host could feed an infinitely fast accelerator, with the batches
the reader uses on one (`Buckets.for_platform("gpu")`: up to 128 short rows per batch). The serial
passes on the real CPU device (`prefetch_chunks=0`) and the pipelined pass (`prefetch_chunks=1`, two batches in
flight, host work of the next chunk in a background thread) are reported beside it. `--processes N` (default 2
here) also measures N pipeline processes feeding one accelerator, as Ray Data runs them with
`num_gpus_per_actor=1/N` (relik_jax.inference.ray_annotate): each takes every N-th document, their null-device
passes start together (a barrier), and the rate is all windows / the slowest process's pass + dispatch. Python
holds one core per process, so this is how a many-core accelerator host goes past one process's ceiling; on this
2-core machine the 2 processes share the cores with nothing else. After the compiling pass the objects alive are
frozen out of Python's full garbage collections, as the CLI, services and Ray actors do
(`relik_jax.engine.host_memory.freeze_loaded_objects`). Compile time (first pass minus a steady pass) is reported
apart. Device-floor rates: windows/s that an
H100 / RTX 4090 could sustain at their bf16 peak on ReLiK-S/B/L rows of the workload's mean length
(relik_jax.engine.flops), the rate the host must keep up with. Writes JSON (+ PNG) to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
import types
from collections import deque
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from tokenizers import AddedToken

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import models  # noqa: E402
from relik_jax.data import corpora  # noqa: E402
from relik_jax.data.retrieval import aida_kb  # noqa: E402
from relik_jax.engine import flops  # noqa: E402
from relik_jax.engine.buckets import Buckets  # noqa: E402
from relik_jax.engine.compiled import CompiledForward  # noqa: E402
from relik_jax.engine.host_memory import freeze_loaded_objects  # noqa: E402
from relik_jax.inference.pipeline import Relik  # noqa: E402
from relik_jax.models.bert import BertConfig  # noqa: E402
from relik_jax.models.deberta import DebertaV2Config  # noqa: E402
from relik_jax.reader.inputs import relation_symbols, span_symbols  # noqa: E402
from relik_jax.reader.model import SPAN_ARCH, TRIPLET_ARCH, ReaderConfig, build_reader  # noqa: E402
from relik_jax.reader.reader import Reader  # noqa: E402
from relik_jax.retriever.encoder import GoldenRetrieverModel, Retriever, resolve_encoder  # noqa: E402
from relik_jax.retriever.index import Document  # noqa: E402
from relik_jax.text.tokenization import load_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HOST_STAGES = ["words", "windows", "retrieval", "tokenize", "rows", "batch", "dispatch", "read-back", "decode", "merge"]
ALL_STAGES = HOST_STAGES
MENTIONS_PER_WINDOW = {"aida": 3.7, "nyt": 2.2, "rebel": 2.7}  # gold mentions per window (workloads.FITTED)
TRIPLETS_PER_WINDOW = 1.2  # NYT test: 1.2 gold triplets per sentence
TARGETS = {"aida": 4000, "nyt": 10000}  # the engine issue's host-bound ceilings (windows/s on this machine)


def tiny_reader(task: str, seed: int = 0, backbone: DebertaV2Config | None = None, linears: int = 32,
                buckets: Buckets | None = None) -> Reader:
    """1 layer, hidden 32 DeBERTa-style reader on the MiniLM WordPiece tokenizer with the symbols added (`backbone`:
    another shape, its vocabulary replaced by the tokenizer's; `linears`: the heads' hidden size)."""
    tok = load_tokenizer(resolve_encoder("all-MiniLM-L6-v2"))
    if task == "el":
        cfg = ReaderConfig(architecture=SPAN_ARCH, additional_special_symbols=101, linears_hidden_size=linears)
        symbols = span_symbols(100)
    else:
        cie = task == "cie"
        cfg = ReaderConfig(architecture=TRIPLET_ARCH, additional_special_symbols=24 if not cie else 20,
                           additional_special_symbols_types=26 if cie else 0, linears_hidden_size=linears,
                           entity_type_loss=cie, add_entity_embedding=cie)
        symbols = relation_symbols(cfg.additional_special_symbols) + (span_symbols(25) if cie else [])
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in symbols])
    if backbone is None:
        backbone = DebertaV2Config(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, intermediate_size=64)
    else:
        backbone = dataclasses.replace(backbone, vocab_size=tok.get_vocab_size())
    model = build_reader(cfg, backbone, rngs=nnx.Rngs(seed))
    model.eval()
    return Reader(cfg, model, tok, {"model_max_length": 1024}, use_nme=True, buckets=buckets)


def tiny_retriever(kb_titles: list[str]) -> Retriever:
    folder = resolve_encoder("all-MiniLM-L6-v2")
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64)
    model = GoldenRetrieverModel(cfg, rngs=nnx.Rngs(0))
    retriever = Retriever(model, load_tokenizer(folder), batch_size=64, passage_batch_size=256)
    retriever.build_index([Document(t, i, {}) for i, t in enumerate(kb_titles)], progress=None)
    return retriever


def workload(name: str, docs: int, seed: int) -> tuple[str, list[str], list | dict, tuple[int, int]]:
    """(task, texts, candidates per document, (window size, stride))."""
    rng = np.random.default_rng(seed)
    if name == "aida":
        texts = [d.text for d in corpora.read_aida("testb")][:docs]
        titles = sorted({m.label for d in corpora.read_aida("train") for m in d.mentions} - {corpora.NME})
        cands = [[titles[i] for i in rng.choice(len(titles), 100, replace=False)] for _ in texts]
        return "el", texts, cands, (32, 16)
    if name == "nyt":
        texts = [d.text for d in corpora.read_nyt("test")][: docs * 20]
        relations = sorted(set(corpora.nyt_relation_names().values()))[:24]
        return "re", texts, {"triplet": relations}, (64, 32)
    if name == "rebel":
        sample = list(corpora.read_rebel_sample())
        texts = [d.text for d in sample][:docs * 4]
        titles = sorted({m.label for d in sample for m in d.mentions})
        relations = sorted({t.relation for d in sample for t in d.triplets})
        span = [[titles[i] for i in rng.choice(len(titles), 25, replace=False)] for _ in texts]
        trip = [[relations[i] for i in rng.choice(len(relations), min(20, len(relations)), replace=False)]
                for _ in texts]
        return "cie", texts, {"span": span, "triplet": trip}, (64, 32)
    raise ValueError(name)


def calibrate(relik: Relik, texts: list[str], candidates, per_window: float) -> dict[str, float]:
    """Shift the start (and binary end) biases so the tiny reader predicts about the gold mention count."""
    reader = relik.reader
    sample = list(relik._chunks(texts[:64], candidates, False, False, False))  # candidates as the pipeline gives
    rows = reader.rows([w for c in sample for w in c.windows][:64])
    length = max(len(r) for r in rows)
    n = len(rows)
    batch = types.SimpleNamespace(
        input_ids=np.zeros((n, length), np.int32), attention_mask=np.zeros((n, length), np.int32),
        token_type_ids=np.zeros((n, length), np.int32), prediction_mask=np.ones((n, length), np.int32))
    for b, r in enumerate(rows):
        batch.input_ids[b, : len(r)] = r.input_ids
        batch.attention_mask[b, : len(r)] = 1
        batch.token_type_ids[b, : len(r)] = r.token_type_ids
        batch.prediction_mask[b, : len(r)] = r.prediction_mask
    text_tokens = float(np.mean([len(r.text) for r in rows]))
    info = models.calibrate_reader(reader, "el" if reader.cfg.is_span else "re", batch, per_window / text_tokens)
    if not reader.cfg.is_span:  # about TRIPLETS_PER_WINDOW decoded triplets per window, as trained
        windows = [w for c in sample for w in c.windows][:64]
        bias = reader.model.re_classifier[4].bias
        base = bias.value

        def triplets_per_window(shift: float) -> float:
            bias.value = base.at[1].add(shift)
            reader.update_model(reader.model)
            return float(np.mean([len(p.triplets) for p in reader.read(windows)]))

        lo, hi = -60.0, 60.0  # more bias, more triplets: bisect to the gold rate
        for _ in range(24):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if triplets_per_window(mid) < TRIPLETS_PER_WINDOW else (lo, mid)
        info["relation_shift"] = hi
        info["triplets_per_window"] = triplets_per_window(hi)
    return info


def floor_rates(task: str, mean_len: float) -> dict[str, dict[str, float]]:
    """Windows/s of ReLiK-S/B/L at the bf16 peak of an H100 and an RTX 4090 (FLOP floor, heads included)."""
    out = {}
    length = int(round(mean_len))
    for size in ("small", "base", "large"):
        cfg = models.reader_config(size, task)
        shape = flops.EncoderShape.of(cfg)
        per_row = flops.encoder_flops(shape, 1, length)
        if task == "el":
            per_row += flops.span_head_flops(cfg.hidden_size, 1, length, 4, 102)
        else:
            per_row += flops.re_head_flops(cfg.hidden_size, 1, length, 3, 24, types=25 if task == "cie" else 0)
        out[f"ReLiK-{size[0].upper()}"] = {gpu: models.GPU_PEAKS[gpu].bf16 / per_row for gpu in ("H100", "RTX 4090")}
    return out


class NullDevice:
    """Stands in for a reader's compiled stages. `mode` "record": call the stage and keep its call and outputs;
    "replay": return the recorded outputs in call order (fresh device arrays made by `arm`) without computing;
    "off": call the stage."""

    def __init__(self, reader: Reader) -> None:
        self.mode = "off"
        self.calls: list[tuple[CompiledForward, tuple]] = []
        self.outputs: list = []
        self.queue: deque = deque()
        for name, stage in list(vars(reader).items()):
            if isinstance(stage, CompiledForward):
                setattr(reader, name, self._wrap(stage))

    def _wrap(self, stage: CompiledForward):
        def call(*args):
            if self.mode == "replay":
                return self.queue.popleft()
            out = stage(*args)
            if self.mode == "record":
                self.calls.append((stage, args))
                self.outputs.append(jax.device_get(out))
            return out

        return type("Null", (), {"__call__": staticmethod(call), "__getattr__": lambda _, n: getattr(stage, n)})()

    def arm(self) -> None:
        """Fresh device copies of the recorded outputs for one replay pass (a read of a fresh array copies)."""
        self.queue = deque(jax.device_put(o) for o in self.outputs)
        jax.block_until_ready(list(self.queue))

    def dispatch_s(self, repeats: int) -> float:
        """Seconds to dispatch every recorded call (inputs as the pipeline passed them), one at a time on an idle
        device: the sum over calls of each call's median over `repeats` (a shared machine's scheduling spikes
        are not the host's cost)."""
        per_call = np.zeros((repeats, len(self.calls)))
        for r in range(repeats):
            for i, (stage, args) in enumerate(self.calls):
                jax.block_until_ready([a for a in args if isinstance(a, jax.Array)])
                t = time.perf_counter()
                out = stage(*args)
                per_call[r, i] = time.perf_counter() - t
                jax.block_until_ready(out)
        return float(np.median(per_call, axis=0).sum())


def run(relik: Relik, texts: list[str], candidates, prefetch: int) -> tuple[float, dict[str, float]]:
    """One pass over the texts: (wall seconds, host seconds per stage). Serial passes (prefetch 0) also keep one
    batch in flight: on a CPU the "device" is the same cores, so overlapped host work would be charged with the
    device's time slices."""
    relik.config.prefetch_chunks = prefetch
    relik.reader.depth = 2 if prefetch else 1
    relik.times.reset()
    t = time.perf_counter()
    for _ in relik.stream(texts, candidates=candidates, keep_candidates=False):
        pass
    return time.perf_counter() - t, relik.times.snapshot()


def null_passes(relik: Relik, texts: list[str], candidates, repeats: int, barrier=None
                ) -> tuple[NullDevice, list[tuple[float, dict[str, float]]], float]:
    """Record one pass, replay `repeats` null-device passes (each after `barrier`, when given: passes of several
    processes start together), time the recorded calls' dispatch: (null device, passes, dispatch seconds)."""
    null = NullDevice(relik.reader)
    null.mode = "record"
    run(relik, texts, candidates, prefetch=0)
    null.mode = "replay"
    passes = []
    for _ in range(repeats):
        null.arm()
        if barrier is not None:
            barrier.wait()
        passes.append(run(relik, texts, candidates, prefetch=0))
        assert not null.queue, "the null-device pass made other calls than the recorded pass"
    null.mode = "off"
    return null, passes, null.dispatch_s(max(repeats, 3))


def shard(texts: list[str], candidates, rank: int, n: int) -> tuple[list[str], object]:
    """Documents rank, rank + n, ... and their candidates (per-document lists follow their documents)."""
    def part(c):
        return c[rank::n] if c and isinstance(c[0], (list, tuple)) else c

    cands = {k: part(v) for k, v in candidates.items()} if isinstance(candidates, dict) else part(candidates)
    return texts[rank::n], cands


def _process(name: str, docs: int, repeats: int, seed: int, rank: int, n: int, barrier, results) -> None:
    """One of `n` pipeline processes: the reader `measure` builds, its share of the documents, null passes that
    start with the other processes' (barrier)."""
    try:
        relik, _, texts, candidates, _ = setup(name, docs, seed, retrieval=False)  # calibrated on all the documents
        texts, candidates = shard(texts, candidates, rank, n)
        run(relik, texts, candidates, prefetch=0)  # compiles
        freeze_loaded_objects()
        _, passes, dispatch = null_passes(relik, texts, candidates, repeats, barrier)
        results.put((rank, count_windows(relik, texts), [p[0] for p in passes], dispatch, None))
    except BaseException as e:  # noqa: BLE001 - reported by the parent
        barrier.abort()
        results.put((rank, 0, [], 0.0, repr(e)))


def measure_processes(name: str, docs: int, repeats: int, seed: int, n: int) -> dict:
    """Host-bound ceiling of `n` pipeline processes feeding one accelerator (what Ray Data runs with
    `num_gpus_per_actor=1/n`): each annotates every n-th document; their null-device passes start together, and
    a repeat's rate is all windows / the slowest process's (pass wall + dispatch)."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a process whose JAX runtime has threads
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_process, args=(name, docs, repeats, seed, r, n, barrier, results))
             for r in range(n)]
    for p in procs:
        p.start()
    got = sorted(results.get(timeout=1800) for _ in procs)
    for p in procs:
        p.join()
    errors = [g[4] for g in got if g[4]]
    if errors:
        raise RuntimeError(f"{name}: a host process failed: {errors}")
    windows = sum(g[1] for g in got)
    walls = [max(g[2][i] + g[3] for g in got) for i in range(repeats)]
    wall = statistics.median(walls)
    return {"processes": n, "windows": windows, "windows_per_process": [g[1] for g in got],
            "slowest_pass_s": walls, "host_bound_windows_per_s": windows / wall,
            "host_ms_per_window_per_process": 1e3 * wall * n / windows}


def count_windows(relik: Relik, texts: list[str]) -> int:
    return sum(1 for t in texts for _ in relik.splitter.split_document(t))


def setup(name: str, docs: int, seed: int, retrieval: bool) -> tuple[Relik, str, list[str], object, dict]:
    """The workload's pipeline around a calibrated tiny reader: (pipeline, task, texts, candidates, calibration)."""
    task, texts, candidates, (size, stride) = workload(name, docs, seed)
    reader = tiny_reader(task, seed, buckets=Buckets.for_platform("gpu"))  # the batches an accelerator would get
    retrievers = None
    if retrieval and task == "el":
        retrievers = {"span": tiny_retriever([d.text for d in aida_kb(add_rebel_titles=False)])}
        candidates = None
    relik = Relik(reader, retrievers, task="span" if task == "el" else "triplet", top_k=100, window_size=size,
                  window_stride=stride)
    calibration = calibrate(relik, texts, candidates, MENTIONS_PER_WINDOW[name]) if candidates is not None else {}
    return relik, task, texts, candidates, calibration


def measure(name: str, docs: int, repeats: int, retrieval: bool, seed: int) -> dict:
    relik, task, texts, candidates, calibration = setup(name, docs, seed, retrieval)
    reader = relik.reader
    n_windows = count_windows(relik, texts)
    first, _ = run(relik, texts, candidates, prefetch=0)  # compiles
    freeze_loaded_objects()  # as the CLI, services and Ray actors do once their pipeline is loaded
    serial = [run(relik, texts, candidates, prefetch=0) for _ in range(repeats)]
    wall = statistics.median(s[0] for s in serial)
    serial_stage = {k: statistics.median(s[1].get(k, 0.0) for s in serial) for k in ALL_STAGES + ["device wait"]}
    serial_stage["rows"] = max(serial_stage["rows"] - serial_stage["tokenize"], 0.0)  # "rows" includes "tokenize"
    pipelined = statistics.median(run(relik, texts, candidates, prefetch=1)[0] for _ in range(repeats))
    null, passes, dispatch = null_passes(relik, texts, candidates, repeats)
    null_wall = statistics.median(p[0] for p in passes)
    per_stage = {k: statistics.median(p[1].get(k, 0.0) for p in passes) for k in ALL_STAGES}
    per_stage["rows"] = max(per_stage["rows"] - per_stage["tokenize"], 0.0)
    per_stage["read-back"] = statistics.median(p[1].get("device wait", 0.0) for p in passes)
    per_stage["dispatch"] = dispatch
    host = null_wall + dispatch
    rows = reader.rows(list(relik._chunks(texts[:20], candidates, False, False, False))[0].windows) \
        if candidates is not None else []
    mean_len = float(np.mean([len(r) for r in rows])) if rows else 64.0
    return {
        "workload": name, "task": task, "documents": len(texts), "windows": n_windows,
        "window_size": relik.splitter.window_size, "window_stride": relik.splitter.window_stride,
        "retrieval": any(r is not None for r in relik.retrievers.values()),
        "compile_s": max(first - wall, 0.0), "serial_s": wall, "pipelined_s": pipelined,
        "ms_per_window": {k: 1e3 * v / n_windows for k, v in per_stage.items()},
        "serial_ms_per_window": {k: 1e3 * v / n_windows for k, v in serial_stage.items()},
        "null_device_pass_s": null_wall, "dispatch_s": dispatch, "device_calls": len(null.calls),
        "host_ms_per_window": 1e3 * host / n_windows,
        "host_bound_windows_per_s": n_windows / host if host else float("inf"),
        "pipelined_windows_per_s": n_windows / pipelined,
        "target_windows_per_s": TARGETS.get(name),
        "mean_row_length": mean_len, "device_floor_windows_per_s": floor_rates(task, mean_len),
        "calibration": calibration, "compiles": reader.num_compiles,
    }


def table(results: list[dict]) -> str:
    head = ["stage (ms/window)"] + [r["workload"] for r in results]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in ALL_STAGES:
        lines.append(f"| {k} | " + " | ".join(f"{r['ms_per_window'][k]:.3f}" for r in results) + " |")
    lines.append("| other (pass wall - stages) | " + " | ".join(
        f"{r['host_ms_per_window'] - sum(r['ms_per_window'][k] for k in ALL_STAGES):.3f}" for r in results) + " |")
    lines.append("| **host total** | " + " | ".join(f"**{r['host_ms_per_window']:.3f}**" for r in results) + " |")
    lines.append("| host-bound ceiling (windows/s) | "
                 + " | ".join(f"{r['host_bound_windows_per_s']:,.0f}" for r in results) + " |")
    if all("multi_process" in r for r in results):
        n = results[0]["multi_process"]["processes"]
        lines.append(f"| host-bound ceiling, {n} processes (windows/s) | " + " | ".join(
            f"{r['multi_process']['host_bound_windows_per_s']:,.0f}" for r in results) + " |")
    lines.append("| target (windows/s) | " + " | ".join(f"{r['target_windows_per_s'] or '-'}" for r in results) + " |")
    lines.append("| serial run, CPU device (windows/s) | "
                 + " | ".join(f"{r['windows'] / r['serial_s']:,.0f}" for r in results) + " |")
    lines.append("| pipelined run (windows/s) | "
                 + " | ".join(f"{r['pipelined_windows_per_s']:,.0f}" for r in results) + " |")
    lines.append("| compile s (apart) | " + " | ".join(f"{r['compile_s']:.1f}" for r in results) + " |")
    for model in ("ReLiK-S", "ReLiK-B", "ReLiK-L"):
        for gpu in ("H100", "RTX 4090"):
            lines.append(f"| device floor {model} {gpu} (windows/s) | " + " | ".join(
                f"{r['device_floor_windows_per_s'][model][gpu]:,.0f}" for r in results) + " |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = np.zeros(len(results))
    for k in HOST_STAGES:
        vals = np.array([r["ms_per_window"][k] for r in results])
        ax.bar([r["workload"] for r in results], vals, bottom=bottom, label=k)
        bottom += vals
    for i, r in enumerate(results):
        for model, style in (("ReLiK-B", "--"), ("ReLiK-S", ":")):
            rate = r["device_floor_windows_per_s"][model]["H100"]
            ax.hlines(1e3 / rate, i - 0.4, i + 0.4, colors="k", linestyles=style,
                      label=f"H100 {model} device floor" if i == 0 else None)
    ax.set_ylabel("host ms per window")
    ax.set_title("host cost per window by stage (tiny reader) vs the H100 device time of real readers")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="aida,nyt,rebel")
    ap.add_argument("--docs", type=int, default=60, help="AIDA documents (NYT: 20x sentences, REBEL: 4x)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--retrieval", action="store_true", help="AIDA: retrieve the candidates with a tiny retriever")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1),
                    help="also measure this many pipeline processes sharing the accelerator (1: skip)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "host_overhead.json")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    results = [measure(w, args.docs, args.repeats, args.retrieval, args.seed) for w in args.workloads.split(",")]
    if args.processes > 1 and not args.retrieval:
        for r in results:
            r["multi_process"] = measure_processes(r["workload"], args.docs, args.repeats, args.seed,
                                                   args.processes)
    env = {"device": str(jax.devices()[0]), "cpu_count": os.cpu_count(), "platform": platform.platform(),
           "load_average_before": load_before, "load_average_after": os.getloadavg(), "jax": jax.__version__,
           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    print(f"device {env['device']}, load average before {load_before[0]:.2f}, after {env['load_average_after'][0]:.2f}")
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": env, "results": results}, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
