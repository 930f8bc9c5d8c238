"""`benchmarks/train_speed.py` end to end in a tiny run (one warm-up step, one round of two steps per side): both
sides train, alternate, and the JSON holds their step times, compile count and the ratio.

Needs the reference venv (`reference_harness.ensure_reference_venv()` builds it when missing and FAILS with the
reason and the fix when it cannot) and the shared CoNLL04 data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reference_harness import ensure_reference_venv

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_run_writes_both_sides(tmp_path):
    ensure_reference_venv()
    out = tmp_path / "train_speed.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--warmup", "1", "--rounds", "1", "--block",
           "2", "--export", str(tmp_path / "export"), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(out.read_text())
    for side in ("ours", "reference"):
        s = res["sides"][side]
        assert [len(b["step_s"]) for b in s["blocks"]] == [1, 2]
        assert all(0 < x < 100 for b in s["blocks"] for x in b["loss"])  # finite training losses
        assert all(x > 0 for b in s["blocks"] for x in b["step_s"]) and s["median_s"] > 0
        assert all(len(b["faults"]) == len(b["step_s"]) and min(b["faults"]) >= 0 for b in s["blocks"])
    assert res["sides"]["ours"]["compiles"] >= 1  # the first step compiles
    assert res["speedup"] > 0 and "ours / reference" in res["table"]
    assert len(res["loadavg_before"]) == 3
    assert isinstance(res["keep_host_memory"], bool)  # whether engine/host_memory took effect (glibc)
