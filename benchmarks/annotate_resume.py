"""Crash test of `relik-jax annotate --resume`: kill -9 at random points, resume, compare with an uninterrupted run.

A tiny random pipeline (tests/inference/tiny_pipeline.py; model time is milliseconds per document) annotates a JSONL
of GERBIL documents (KORE50, RSS-500, Reuters-128, OKE 2015, cycled to --docs) with some lines of invalid UTF-8 and
some with a lone surrogate escape. One run goes uninterrupted; another is started with --resume, killed with SIGKILL
when its output has grown to a random line count (plus a random 0-50 ms), --kills times, then resumed to the end.
The final outputs must be byte-identical; the invalid lines must be error records, every other line an annotation.

    PYTHONPATH=$PWD python benchmarks/annotate_resume.py --docs 2000 --kills 10 --workdir /tmp/annotate-resume
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "inference"))

from relik_jax.evaluation.gerbil.datasets import load_gerbil_dataset  # noqa: E402

DATASETS = ("kore50", "rss-500", "reuters-128", "oke-2015")


def write_input(path: Path, n: int) -> dict[str, int]:
    """n JSONL documents; every 250th line invalid UTF-8, every 333rd a lone surrogate. Returns the bad counts."""
    texts = [d.text for name in DATASETS for d in load_gerbil_dataset(name).documents]
    bad = {"invalid_utf8": 0, "lone_surrogate": 0}
    with path.open("wb") as f:
        for i in range(n):
            line = json.dumps({"text": texts[i % len(texts)], "id": f"d{i}"}).encode()
            kind = "invalid_utf8" if i % 250 == 249 else "lone_surrogate" if i % 333 == 332 else None
            if kind:
                bad[kind] += 1
                poison = b"\xff" if kind == "invalid_utf8" else b"\\ud800"  # a raw byte / a JSON escape
                line = line.replace(b'"text": "', b'"text": "' + poison, 1)
            f.write(line + b"\n")
    return bad


def annotate_cmd(pipeline: Path, src: Path, dst: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "relik_jax.cli", "annotate", str(pipeline), str(src), str(dst), "--group-size", "64"]
    return cmd + (["--resume"] if resume else [])


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def run(docs: int, kills: int, workdir: Path, seed: int = 0) -> dict:
    from tiny_pipeline import save_tiny_pipeline

    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    pipeline = workdir / "pipeline"
    if not (pipeline / "relik.json").exists():
        save_tiny_pipeline(pipeline)
    src, full, resumed = workdir / "input.jsonl", workdir / "uninterrupted.jsonl", workdir / "resumed.jsonl"
    bad = write_input(src, docs)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for out in (full, resumed):
        out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    first = subprocess.run(annotate_cmd(pipeline, src, full, False), env=env, capture_output=True, text=True)
    uninterrupted_s = time.perf_counter() - t0
    log = []
    targets = sorted(rng.sample(range(1, docs), kills))  # kill once the output has this many lines (+0-50 ms)
    for k, target in enumerate(targets):
        before = count_lines(resumed)
        proc = subprocess.Popen(annotate_cmd(pipeline, src, resumed, True), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None and count_lines(resumed) < target:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        size = resumed.stat().st_size if resumed.exists() else 0
        torn = size > 0 and not resumed.read_bytes().endswith(b"\n")
        log.append({"kill": k + 1, "target_lines": target, "lines_before": before,
                    "lines_at_kill": count_lines(resumed), "torn_tail": torn, "exit": proc.returncode})
    last = subprocess.run(annotate_cmd(pipeline, src, resumed, True), env=env, capture_output=True, text=True)
    rows = [json.loads(line) for line in resumed.read_text(encoding="utf-8").splitlines()]
    errors = [r for r in rows if "error" in r]
    return {
        "docs": docs, "kills": kills, "kill_log": log,
        "uninterrupted_exit": first.returncode, "final_exit": last.returncode,
        "uninterrupted_s": round(uninterrupted_s, 1),
        "identical": full.read_bytes() == resumed.read_bytes(),
        "lines": len(rows), "ids_in_order": [r["id"] for r in rows] == [f"d{i}" for i in range(docs)],
        "valid_annotated": sum("spans" in r for r in rows),
        "error_records": len(errors), "bad_inputs": bad,
        "error_examples": [e["error"] for e in errors[:2]],
        "final_stderr": last.stderr.strip().splitlines()[-2:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/annotate-resume"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args(argv)
    report = run(args.docs, args.kills, args.workdir, args.seed)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    ok = (report["identical"] and report["ids_in_order"] and report["lines"] == args.docs
          and report["error_records"] == sum(report["bad_inputs"].values())
          and report["valid_annotated"] == args.docs - report["error_records"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
