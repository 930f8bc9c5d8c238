"""benchmarks/speed.py as the README runs it: its command line parses and reaches its tables (the full run is the
README's main job, too long for a test; `--table` prints the tables of a committed results JSON)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_speed_prints_the_tables_of_a_results_json():
    results = ROOT / "benchmarks" / "results" / "cpu-cpu-reference.json"
    out = subprocess.run([sys.executable, "benchmarks/speed.py", "--table", str(results)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| AIDA | reader |" in out.stdout and "| NYT |" in out.stdout
