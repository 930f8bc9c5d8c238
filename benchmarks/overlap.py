"""Overlap: the whole pipeline (text in, annotations out) against the device forward alone on the same batches.

    python benchmarks/overlap.py                         # NYT RE K=24 and AIDA EL K=100, ReLiK-S shape, 2 layers
    python benchmarks/overlap.py --workloads nyt --docs 20 --layers 6 --repeats 5

Readers: DeBERTa-v3-small-shaped (hidden 768, 12 heads, FFN 3072; `--layers` of its 6, default 2 as the CPU speed
preset; heads 512 wide), random weights with the start / end / relation biases calibrated to the gold mention rate
(as `host_overhead.py`), on the MiniLM WordPiece tokenizer with the reader's symbols. Per workload:
1. one pipeline pass compiles every program and records each compiled call with its (padded) inputs;
2. then, alternating, `--repeats` times: the pipeline (`Relik.stream` over the texts: words, windows, rows, padding,
   the staged forward with its count read-backs, decoding, merging; host work of the next chunk in a thread) and a
   replay of the recorded compiled calls alone (inputs already on the device, dispatched back to back, one
   `block_until_ready` at the end): the device forward with no host work at all.
The ratio pipeline / forward is what the host adds on top of the device (target <= 1.10). On a CPU the "device" is
the same 2 cores the host work runs on, so host work cannot hide behind device work as it does on a GPU: the ratio
here is an upper bound of the GPU's. Writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import host_overhead as ho  # noqa: E402
from benchmarks import models  # noqa: E402
from relik_jax.engine.compiled import CompiledForward  # noqa: E402
from relik_jax.inference.pipeline import Relik  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class Recorder:
    """Wraps a reader's compiled stages: records each call's inputs (moved to the device) while `on`."""

    def __init__(self, reader) -> None:
        self.calls: list[tuple[CompiledForward, tuple]] = []
        self.on = False
        for name, stage in list(vars(reader).items()):
            if isinstance(stage, CompiledForward):
                setattr(reader, name, self._wrap(stage))

    def _wrap(self, stage: CompiledForward):
        def call(*args):  # stands in for the stage (attributes such as num_compiles still read through)
            if self.on:
                self.calls.append((stage, tuple(jax.device_put(a) if hasattr(a, "shape") else a for a in args)))
            return stage(*args)

        wrapper = type("Recorded", (), {"__call__": staticmethod(call),
                                        "__getattr__": lambda _, name: getattr(stage, name)})
        return wrapper()

    def replay(self) -> float:
        jax.block_until_ready([a for _, args in self.calls for a in args if hasattr(a, "shape")])
        t = time.perf_counter()
        outs = [stage(*args) for stage, args in self.calls]
        jax.block_until_ready(outs)
        return time.perf_counter() - t


def measure(name: str, docs: int, layers: int, repeats: int) -> dict:
    task, texts, candidates, (size, stride) = ho.workload(name, docs, 0)
    backbone = models.reader_config("small", "el" if task == "el" else "re", layers)
    reader = ho.tiny_reader(task, 0, backbone=backbone, linears=512)
    relik = Relik(reader, None, task="span" if task == "el" else "triplet", top_k=100, window_size=size,
                  window_stride=stride)
    calibration = ho.calibrate(relik, texts, candidates, ho.MENTIONS_PER_WINDOW[name])
    recorder = Recorder(reader)
    t = time.perf_counter()
    recorder.on = True
    ho.run(relik, texts, candidates, prefetch=1)  # compiles; records the calls
    recorder.on = False
    first = time.perf_counter() - t
    pipeline, forward = [], []
    for _ in range(repeats):
        pipeline.append(ho.run(relik, texts, candidates, prefetch=1)[0])
        forward.append(recorder.replay())
    n_windows = ho.count_windows(relik, texts)
    p, f = statistics.median(pipeline), statistics.median(forward)
    return {"workload": name, "task": task, "documents": len(texts), "windows": n_windows, "layers": layers,
            "compiled_calls": len(recorder.calls), "programs": reader.num_compiles, "first_pass_s": first,
            "pipeline_s": pipeline, "forward_s": forward, "pipeline_median_s": p, "forward_median_s": f,
            "ratio": p / f, "calibration": calibration}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="nyt,aida")
    ap.add_argument("--docs", type=int, default=3, help="AIDA documents (NYT: 20x sentences)")
    ap.add_argument("--layers", type=int, default=2, help="backbone layers (ReLiK-S has 6)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "overlap.json")
    args = ap.parse_args(argv)
    load = [os.getloadavg()[0]]
    results = [measure(w, args.docs, args.layers, args.repeats) for w in args.workloads.split(",")]
    load.append(os.getloadavg()[0])
    print(f"\nOverlap on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}, "
          f"load average {load[0]:.2f} before / {load[1]:.2f} after")
    print("| workload | windows | layers | pipeline s (median) | device forward alone s | pipeline / forward |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['workload']} | {r['windows']} | {r['layers']} | {r['pipeline_median_s']:.2f} | "
              f"{r['forward_median_s']:.2f} | {r['ratio']:.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"load_average": load, "cpus": os.cpu_count(), "jax": jax.__version__,
                                    "results": results}, indent=1))
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
