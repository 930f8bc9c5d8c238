"""evaluate.py on a tiny random reader: runs, prints metrics, writes predictions (one row per window)."""

import json
import subprocess
import sys
from pathlib import Path

from configs.tiny import get_config
from relik_jax.reader.convert import save_reader
from relik_jax.training.reader_model import build_training_reader

ROOT = Path(__file__).resolve().parents[2]


def test_evaluate_reader_writes_predictions(tmp_path):
    config = get_config()
    config.linears_hidden_size = 16
    cfg, model, tok, tok_cfg = build_training_reader(config)
    save_reader(tmp_path / "reader", cfg, model, tok, tok_cfg)
    out = tmp_path / "eval"
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--reader", str(tmp_path / "reader"),
                           "--split", "dev,test", "--out", str(out), "--config.max_dev_windows=3",
                           "--config.max_test_windows=5", "--config.seq_lens=(128,)"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for split, n in (("dev", 3), ("test", 5)):
        rows = [json.loads(line) for line in (out / f"{split}_predictions.jsonl").read_text().splitlines()]
        assert len(rows) == n and all("predicted_spans" in r and "gold_spans" in r for r in rows)
        metrics = json.loads((out / f"{split}_metrics.json").read_text())
        assert 0.0 <= metrics["f1"] <= 1.0 and metrics["tp"] + metrics["fn"] == sum(len(r["gold_spans"]) for r in rows)
    assert "toy (el)" in proc.stdout
