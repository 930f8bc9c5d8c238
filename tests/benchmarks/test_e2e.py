"""`benchmarks/e2e.py`, our pipeline against relik 1.0.7's `Relik`, end to end in --quick mode (the first two
one-window documents of EL / RE / cIE, one repeat), and its output comparison rules.

Needs the reference venv: `reference_harness.ensure_reference_venv()` builds it when missing and FAILS with the
reason and the fix when it cannot (never skips). The reader folders are cached under ~/.cache/relik-jax/e2e
(built once by the reference package, a few minutes on 2 cores; later runs take well under a minute).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from reference_harness import ensure_reference_venv

from benchmarks import e2e

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 1800  # generous: the first run builds three reader folders with the reference package


def test_quick_run_end_to_end(tmp_path):
    python = ensure_reference_venv()
    out = tmp_path / "e2e.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "e2e.py"), "--quick", "--workloads", "el,re,cie", "--docs", "2",
           "--repeats", "1", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S,
                          env={**os.environ, "RELIK_REFERENCE_VENV": str(python.parents[1])})
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    res = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 0
    assert res["reference_versions"]["relik"] == "1.0.7"
    assert set(res["workloads"]) == {"el", "re", "cie"}
    for name, row in res["workloads"].items():
        assert row["documents"] == 2 and row["windows"] == 2, name
        for side in ("ours", "reference"):
            assert len(row[side]["times_s"]) == 1 and row[side]["median_s"] > 0, (name, side)
            assert row[side]["warmup_s"] > 0 and row[side]["repeat_outputs_identical"], (name, side)
        assert row["ratio"] > 0
        assert row["outputs"]["identical"], f"{name}: outputs differ from the reference: {row['outputs']}"
    assert res["workloads"]["el"]["reference_predicted"]["spans"] > 0  # calibrated heads predict something
    assert "relik-jax vs relik 1.0.7" in res["table"]


def _view(spans, triplets=()):
    return {"spans": [list(s) for s in spans],
            "triplets": [{"subject": list(s), "label": r, "object": list(o), "confidence": c}
                         for s, r, o, c in triplets]}


def test_compare_rules():
    ref = [_view([(0, 5, "A"), (9, 3, "B")], [((0, 5, "A"), "r", (6, 8, "C"), 0.914)]),
           _view([(1, 2, "X")])]
    # triplet labels of the subject / object are not compared (reference quirk); confidence to 2 decimals
    ours = [_view([(0, 5, "A")], [((0, 5, "Z"), "r", (6, 8, "C"), 0.9138)]), _view([(1, 2, "X")])]
    res = e2e.compare(ours, ref, raw=False)  # the reference's inverted EL span (9, 3) is left out
    assert res["identical"] and res["compared_spans"] == 2 and res["compared_triplets"] == 1
    res = e2e.compare(ours, ref, raw=True)
    assert not res["identical"] and res["differing_docs"] == [0]
    assert res["examples"][0]["missing_spans"] == [(9, 3, "B")]
    wrong = [_view([(0, 5, "A")], [((0, 5, "A"), "r", (6, 8, "C"), 0.93)]), _view([(1, 2, "Y")])]
    assert e2e.compare(wrong, ref, raw=False)["differing_docs"] == [0, 1]
    assert not e2e.compare(ours[:1], ref, raw=False)["identical"]
