"""benchmarks/host_overhead.py: document sharding for pipeline processes, and its command line on a small cut
(one NYT document group, 1 repeat, 2 processes) writes the stage table and the multi-process ceiling."""

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.host_overhead import shard

ROOT = Path(__file__).resolve().parents[2]


def test_shard_keeps_documents_with_their_candidates():
    texts = ["a", "b", "c", "d", "e"]
    per_doc = [[t.upper()] for t in texts]
    assert shard(texts, per_doc, 1, 2) == (["b", "d"], [["B"], ["D"]])
    assert shard(texts, {"span": per_doc, "triplet": ["r1", "r2"]}, 0, 2) == (
        ["a", "c", "e"], {"span": [["A"], ["C"], ["E"]], "triplet": ["r1", "r2"]})
    together = sorted(t for r in range(3) for t in shard(texts, None, r, 3)[0])
    assert together == texts


def test_host_overhead_command_line(tmp_path):
    out = tmp_path / "host.json"
    run = subprocess.run([sys.executable, "benchmarks/host_overhead.py", "--workloads", "nyt", "--docs", "1",
                          "--repeats", "1", "--processes", "2", "--out", str(out)], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "host-bound ceiling, 2 processes" in run.stdout
    (result,) = json.loads(out.read_text())["results"]
    multi = result["multi_process"]
    assert multi["windows"] == result["windows"] and len(multi["windows_per_process"]) == 2
    assert multi["host_bound_windows_per_s"] > 0
