"""benchmarks/speed.py as the README runs it: its command line parses and reaches its tables (the full run is the
README's main job, too long for a test; `--table` prints the tables of a committed results JSON)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_speed_prints_the_tables_of_a_results_json():
    results = ROOT / "benchmarks" / "results" / "cpu-cpu-reference.json"
    out = subprocess.run([sys.executable, "benchmarks/speed.py", "--table", str(results)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| AIDA | reader |" in out.stdout and "| NYT |" in out.stdout


@pytest.mark.parametrize("preset", ["cpu", "paper"])
def test_speed_runs_end_to_end_on_a_small_cut(tmp_path, preset):
    """The README's main job (preset "cpu": one padded batch per row) and the GPU script's (preset "paper": the
    Reader's own batches), cut down to one workload, 2 windows, 1 layer: the JSON has the timed reader row."""
    out = subprocess.run([sys.executable, "benchmarks/speed.py", "--preset", preset, "--only", "nyt", "--windows", "2",
                          "--layers", "1", "--no-sweep", "--repeats", "1", "--dtypes", "fp32", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    written = list(tmp_path.glob("*.json"))
    assert len(written) == 1
    rows = json.loads(written[0].read_text())["results"]
    reader = [r for r in rows if r["part"] == "reader"]
    assert reader and all(r["measured"] == "reader" and r["time_s"] > 0 for r in reader)
