"""`relik-jax index build` on the closed AIDA KB: same top-100 as `Retriever.build_index`, and kill -9 + resume.

    PYTHONPATH=$PWD python benchmarks/index_build_aida.py

1. writes the KB (`relik_jax.data.retrieval.aida_kb()`, 6,598 titles) as documents.jsonl;
2. `relik-jax index build --encoder all-MiniLM-L6-v2` (fp16, the default) straight through, timed under
   /usr/bin/time -v;
3. the same command into another folder, killed with SIGKILL once `--kill-after` rows are done, then run again:
   it resumes, and embeddings.pt / documents.jsonl must be byte-identical to step 2;
4. an fp32 build and `Retriever.build_index` (in memory): top-100 for AIDA testb's windows (32 words, stride 16)
   must be the same; the fp16 build's recall@100 against them is reported.
Writes benchmarks/results/index_build_aida.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from relik_jax.data import corpora
from relik_jax.data.retrieval import aida_kb
from relik_jax.data.windowing import labelled_windows
from relik_jax.retriever.encoder import Retriever, resolve_encoder
from relik_jax.retriever.index import DocumentIndex, read_documents, write_documents

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}


def build_command(kb: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "relik_jax.cli", "index", "build", "--encoder", "all-MiniLM-L6-v2",
            "--documents", str(kb), "--out", str(out), "--chunk-rows", "1024", *extra]


def timed(cmd: list[str]) -> dict:
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=ENV)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    seconds = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
    return {"wall_s": seconds, "max_rss_gb": rss / 2**20, "stdout": proc.stdout.strip()}


def killed_then_resumed(cmd: list[str], out: Path, kill_after: int) -> dict:
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / ".build" / "state.json"
    while proc.poll() is None:
        if state.exists() and json.loads(state.read_text() or "{}").get("rows_done", 0) >= kill_after:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    code = proc.wait()
    done = json.loads(state.read_text())["rows_done"] if state.exists() else None
    resumed = timed(cmd)
    return {"killed_returncode": code, "rows_done_when_killed": done, "resume": resumed}


def same_files(a: Path, b: Path) -> bool:
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in ("embeddings.pt", "documents.jsonl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/relik-jax-aida-index"))
    parser.add_argument("--kill-after", type=int, default=2048, help="rows done before the SIGKILL")
    parser.add_argument("--output", type=Path, default=RESULTS / "index_build_aida.json")
    args = parser.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    kb_path = work / "kb.jsonl"
    write_documents(aida_kb(), kb_path)
    kb = read_documents(kb_path)

    for name in ("fp16", "fp16-killed", "fp32"):
        if (work / name).exists():
            subprocess.run(["rm", "-rf", str(work / name)], check=True)
    report: dict = {"num_documents": len(kb), "encoder": "all-MiniLM-L6-v2", "commands": {}}
    report["commands"]["fp16"] = " ".join(build_command(kb_path, work / "fp16"))
    report["fp16_straight"] = timed(build_command(kb_path, work / "fp16"))
    report["fp16_killed"] = killed_then_resumed(build_command(kb_path, work / "fp16-killed"), work / "fp16-killed",
                                                args.kill_after)
    report["fp16_killed"]["identical_to_straight"] = same_files(work / "fp16", work / "fp16-killed")
    report["commands"]["fp32"] = " ".join(build_command(kb_path, work / "fp32", "--dtype", "fp32"))
    report["fp32_straight"] = timed(build_command(kb_path, work / "fp32", "--dtype", "fp32"))

    retriever = Retriever.from_pretrained(resolve_encoder("all-MiniLM-L6-v2"))
    t = time.perf_counter()
    memory = retriever.build_index(kb, progress=None)
    report["build_index_in_memory_s"] = time.perf_counter() - t
    windows = list(labelled_windows(corpora.read_aida("testb"), 32, 16, use_dataset_words=True))
    queries = retriever.encode_questions([w["text"] for w in windows])
    _, truth = memory.search(queries, 100)
    report["queries"] = len(windows)
    for name in ("fp32", "fp16"):
        built = DocumentIndex.load(work / name)
        _, rows = built.search(queries, 100)
        same_rows = (rows == truth).all(axis=1)
        report[f"{name}_top100"] = {
            "identical_rows_fraction": float(same_rows.mean()),
            "recall_at_100_vs_build_index": float(np.mean([len(set(a) & set(b)) / 100 for a, b in
                                                           zip(rows.tolist(), truth.tolist(), strict=True)])),
            "max_abs_vector_diff": float(np.abs(np.asarray(built.embeddings, np.float32) - memory.embeddings).max()),
        }
    print(json.dumps(report, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
