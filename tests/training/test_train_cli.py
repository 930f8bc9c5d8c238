"""train.py end to end on configs/tiny.py (the default config) with a few steps set by --config.x overrides."""

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_train_cli_tiny_runs_and_writes_metrics_and_checkpoint(tmp_path):
    workdir = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "train.py"), f"--workdir={workdir}", "--config.num_steps=3",
           "--config.eval_every=3", "--config.checkpoint_every=3", "--config.log_every=1", "--config.toy_train=16",
           "--config.toy_eval=4", "--config.token_batch_size=512", "--config.seq_lens=(128,)"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{\n"):])
    assert summary["task"] == "el" and summary["dataset"] == "toy" and summary["steps"] == 3
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    assert any("dev_f1" in r for r in rows)
    assert (workdir / "metrics.png").stat().st_size > 0
    assert (workdir / "checkpoints" / "3").is_dir()
    assert (workdir / "best" / "reader_config.json").is_file()
    results = json.loads((workdir / "results.json").read_text())
    assert set(results["test"]) >= {"precision", "recall", "f1"}
    assert (workdir / "test_predictions.jsonl").read_text().count("\n") == 4
    assert wall < 60 * 3, f"train.py took {wall:.0f}s"  # < 60 s on an idle 2-core machine; slack for shared CPUs
