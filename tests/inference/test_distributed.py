"""Multi-host annotation (relik_jax/engine/distributed.py, `annotate_file(shard=...)`): processes started with
`jax.distributed` each annotate their share of a corpus, and the union of their outputs is the single-process
output, line for line (the same fixed groups, so the same batches). The two-process data-parallel training step
is tested in tests/training/test_data_parallel.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from relik_jax.engine.distributed import ProcessShard, process_shard
from relik_jax.inference.files import annotate_file
from relik_jax.inference.pipeline import Relik

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_pipeline import save_tiny_pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["Barack Obama was born in Honolulu , Hawaii .", "Japan beat Syria in the Asian Cup .",
         "Steve Jobs founded Apple Inc. in California .", "The United States and Japan signed it ."]
GROUP = 8


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[bytes]]:
    """(pipeline folder, 60-document JSONL with one invalid line, the single-process output lines)."""
    tmp = tmp_path_factory.mktemp("distributed")
    pipe = save_tiny_pipeline(tmp / "pipe")
    src = tmp / "docs.jsonl"
    with src.open("w") as f:
        for i in range(60):
            f.write("not json\n" if i == 17 else json.dumps({"id": f"doc-{i}", "text": " ".join(
                TEXTS[(i + j) % 4] for j in range(i % 5 + 1))}) + "\n")
    single = tmp / "single.jsonl"
    annotate_file(Relik.from_pretrained(pipe), src, single, group_size=GROUP)
    return pipe, src, single.read_bytes().splitlines(keepends=True)


def interleave(parts: list[list[bytes]], group: int) -> list[bytes]:
    """Process i's lines hold the groups i, i + n, ...: back to input order."""
    chunks = [[p[k:k + group] for k in range(0, len(p), group)] for p in parts]
    out: list[bytes] = []
    for g in range(sum(len(c) for c in chunks)):
        out += chunks[g % len(parts)][g // len(parts)]
    return out


def test_two_jax_distributed_processes_split_the_corpus(corpus, tmp_path: Path) -> None:
    pipe, src, single = corpus
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    out = tmp_path / "annotated.jsonl"
    procs = [subprocess.Popen([sys.executable, "-m", "relik_jax.cli", "annotate", str(pipe), str(src), str(out),
                               "--group-size", str(GROUP), "--coordinator", f"127.0.0.1:{port}",
                               "--num-processes", "2", "--process-id", str(i)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        logs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    # exit status 1: the invalid line is an error record in process 0's share (group 2), as in one process
    assert [p.returncode for p in procs] == [1, 0], [err[-2000:] for _, err in logs]
    assert "1 of 32 documents failed" in logs[0][1]
    files = [tmp_path / f"annotated.process-0000{i}-of-00002.jsonl" for i in range(2)]
    parts = [f.read_bytes().splitlines(keepends=True) for f in files]
    assert [len(p) for p in parts] == [32, 28]  # groups 0, 2, 4, 6 (8 docs each) and 1, 3, 5, 7 (8, 8, 8, 4)
    assert sorted(parts[0] + parts[1]) == sorted(single)  # the union: nothing lost, nothing twice, same bytes
    assert interleave(parts, GROUP) == single


def test_process_share_resumes(corpus, tmp_path: Path) -> None:
    pipe, src, single = corpus
    relik = Relik.from_pretrained(pipe)
    dst = tmp_path / "p1.jsonl"
    annotate_file(relik, src, dst, group_size=GROUP, shard=ProcessShard(1, 2))
    full = dst.read_bytes()
    dst.write_bytes(full[: len(full) // 2 + 5])  # killed mid-run: a torn last line
    report = annotate_file(relik, src, dst, group_size=GROUP, shard=ProcessShard(1, 2), resume=True)
    assert dst.read_bytes() == full and report.resumed + report.written == 28
    assert full.splitlines(keepends=True) == [line for g in (1, 3, 5, 7) for line in single[g * GROUP:(g + 1) * GROUP]]


def test_process_shard_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAX_PROCESS_ID", raising=False)
    monkeypatch.delenv("JAX_NUM_PROCESSES", raising=False)
    assert process_shard() == ProcessShard(0, 1) and ProcessShard().suffix == ""
    assert process_shard(2, 3) == ProcessShard(2, 3) and ProcessShard(2, 3).suffix == ".process-00002-of-00003"
    monkeypatch.setenv("JAX_PROCESS_ID", "1")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    shard = process_shard()
    assert shard == ProcessShard(1, 4) and [g for g in range(9) if shard.owns(g)] == [1, 5]
    monkeypatch.delenv("JAX_NUM_PROCESSES")
    with pytest.raises(ValueError, match="both"):
        process_shard()
    with pytest.raises(ValueError, match="process id"):
        ProcessShard(2, 2)
