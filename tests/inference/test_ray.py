"""Corpus annotation on Ray Data (relik_jax/inference/ray_annotate.py, the `[ray]` extra) on a local cluster started
here (2 CPUs, no dashboard): 1,000 documents with 2 actors give the single-process output byte for byte; an actor
killed mid-run loses and duplicates nothing; a re-run after the driver was killed resumes and ends with the same
output; Parquet in and out; `annotate_dataset` over a `ray.data.Dataset`.

The pipeline is the tiny random EL pipeline (tests/inference/tiny_pipeline.py), saved once and loaded by every
actor; the single-process reference is `annotate_file` with the same group size."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from relik_jax.inference.files import ResumeError, annotate_file
from relik_jax.inference.pipeline import Relik

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_pipeline import save_tiny_pipeline  # noqa: E402

try:
    import ray
    import ray.data
except ImportError as err:  # a missing prerequisite fails, saying how to get it
    raise ImportError("tests/inference/test_ray.py needs the [ray] extra: pip install -e '.[ray]'") from err

from relik_jax.inference import ray_annotate  # noqa: E402
from relik_jax.inference.ray_annotate import WORKERS, annotate_corpus, annotate_dataset, read_annotations  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["Barack Obama was born in Honolulu , Hawaii .", "Japan beat Syria in the Asian Cup .",
         "Steve Jobs founded Apple Inc. in California .", "The United States and Japan signed it ."]
N_DOCS, GROUP = 1000, 20


def write_docs(path: Path, n: int, start: int = 0) -> Path:
    with path.open("w") as f:
        for i in range(start, start + n):
            f.write("not json\n" if i == 123 else json.dumps(
                {"id": f"doc-{i}", "text": " ".join(TEXTS[(i + j) % 4] for j in range(i % 4 + 1))}) + "\n")
    return path


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[bytes]]:
    """(pipeline, 1,000 documents with one invalid line, the single-process output lines)."""
    tmp = tmp_path_factory.mktemp("ray")
    pipe = save_tiny_pipeline(tmp / "pipe")
    src = write_docs(tmp / "docs.jsonl", N_DOCS)
    annotate_file(Relik.from_pretrained(pipe), src, tmp / "single.jsonl", group_size=GROUP)
    return pipe, src, (tmp / "single.jsonl").read_bytes().splitlines(keepends=True)


def wait_for_parts(dst: Path, n: int, timeout: float = 300) -> None:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if dst.is_dir() and sum(p.name.startswith("part-") for p in dst.iterdir()) >= n:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{dst}: fewer than {n} parts after {timeout} s")


def test_two_actors_equal_the_single_process_pipeline(cluster, corpus, tmp_path: Path) -> None:
    pipe, src, single = corpus
    report = annotate_corpus(pipe, src, tmp_path / "out", num_actors=2, group_size=GROUP)
    assert (report.groups, report.documents, report.failed) == (N_DOCS // GROUP, N_DOCS, 1)
    assert list(read_annotations(tmp_path / "out")) == single
    assert len(list((tmp_path / "out" / WORKERS).iterdir())) == 2  # two actor processes


def test_killed_actor_loses_and_duplicates_nothing(cluster, corpus, tmp_path: Path) -> None:
    pipe, src, single = corpus
    dst = tmp_path / "out"
    result: dict = {}
    run = threading.Thread(target=lambda: result.update(report=annotate_corpus(pipe, src, dst, num_actors=2,
                                                                               group_size=GROUP)))
    run.start()
    wait_for_parts(dst, 3)
    victim = int(sorted((dst / WORKERS).iterdir(), key=lambda p: p.stat().st_mtime)[0].name)
    os.kill(victim, signal.SIGKILL)  # mid-run: most groups are still to do
    killed_at = sum(p.name.startswith("part-") for p in dst.iterdir())
    run.join(timeout=600)
    assert not run.is_alive() and "report" in result
    assert killed_at < N_DOCS // GROUP
    lines = list(read_annotations(dst))
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == len(set(ids)) == N_DOCS  # 0 lost, 0 duplicated
    assert lines == single
    assert not [p for p in dst.iterdir() if p.name.endswith(".tmp")]


def test_rerun_after_the_driver_is_killed_resumes(cluster, corpus, tmp_path: Path) -> None:
    pipe, src, single = corpus
    dst = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, "-m", "relik_jax.cli", "annotate", str(pipe), str(src), str(dst),
                               "--group-size", str(GROUP), "--num-actors", "2", f"--ray={cluster}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_parts(dst, 3)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    written = sum(p.name.startswith("part-") for p in dst.iterdir())
    assert 3 <= written < N_DOCS // GROUP  # killed mid-run
    report = annotate_corpus(pipe, src, dst, num_actors=2, group_size=GROUP)
    assert report.resumed_groups >= written and report.resumed_groups + report.groups == N_DOCS // GROUP
    assert report.resumed_documents + report.documents == N_DOCS
    assert list(read_annotations(dst)) == single
    again = annotate_corpus(pipe, src, dst, num_actors=1, group_size=GROUP)  # complete: nothing to do
    assert (again.groups, again.resumed_groups) == (0, N_DOCS // GROUP)


def test_parquet_shards_in_and_out(cluster, corpus, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pipe, _, _ = corpus
    shards = tmp_path / "shards"
    shards.mkdir()
    relik = Relik.from_pretrained(pipe)
    expected: list[bytes] = []
    for k in range(2):  # the single-process output of each shard, in shard order
        rows = [json.loads(line) for line in write_docs(tmp_path / f"s{k}.jsonl", 30, 1000 + 30 * k).read_text()
                .splitlines()]
        pq.write_table(pa.Table.from_pylist(rows), shards / f"shard-{k}.parquet")
        annotate_file(relik, shards / f"shard-{k}.parquet", tmp_path / f"single-{k}.jsonl", group_size=GROUP)
        expected += (tmp_path / f"single-{k}.jsonl").read_bytes().splitlines(keepends=True)
    report = annotate_corpus(pipe, shards, tmp_path / "out", num_actors=1, group_size=GROUP, fmt="parquet")
    assert report.groups == 4 and report.documents == 60
    assert sorted(p.name for p in (tmp_path / "out").glob("part-*")) == [
        "part-00000-000000.parquet", "part-00000-000001.parquet", "part-00001-000000.parquet",
        "part-00001-000001.parquet"]
    table = pq.read_table(tmp_path / "out" / "part-00001-000001.parquet")
    assert table.column("id").to_pylist() == [f"doc-{i}" for i in range(1050, 1060)]  # keyed by document id
    assert list(read_annotations(tmp_path / "out")) == expected


def test_annotate_dataset_maps_documents_to_annotations(cluster, corpus) -> None:
    pipe, _, single = corpus
    docs = [json.loads(line) for line in single[:100]]  # the first 100 documents' texts and ids
    ds = ray.data.from_items([{"text": d["text"], "id": d["id"]} for d in docs], override_num_blocks=5)
    rows = annotate_dataset(ds, pipe, num_actors=2, group_size=GROUP).take_all()
    assert sorted(r["id"] for r in rows) == sorted(d["id"] for d in docs)
    # blocks of 20 consecutive documents = the single run's groups: the same batches, the same bytes
    got = {r["id"]: (r["annotation"] + "\n").encode() for r in rows}
    assert [got[d["id"]] for d in docs] == single[:100]


def test_rerun_on_the_output_of_another_input_refuses(cluster, corpus, tmp_path: Path) -> None:
    pipe, src, single = corpus
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "part-00000-000001.jsonl").write_bytes(b"".join(single[:GROUP]))  # group 0's output as group 1's
    with pytest.raises(ResumeError, match="part-00000-000001.jsonl is not the output of documents 20.. of"):
        annotate_corpus(pipe, src, dst, num_actors=1, group_size=GROUP)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"relik-jax\[ray\]"):
        ray_annotate.annotate_corpus("pipe", "in.jsonl", "out")


def test_pipelines_per_gpu():
    # `--gpus-per-actor 0.5`: two pipeline replicas (two host processes) per GPU, on a cluster that reports 2 GPUs
    class FakeRay:
        data = ray.data

        @staticmethod
        def cluster_resources():
            return {"GPU": 2.0, "CPU": 16.0}

    args = ray_annotate._actor_args(FakeRay, None, 0.5)
    assert args["num_gpus"] == 0.5 and args["compute"].min_size == 4
    assert ray_annotate._actor_args(FakeRay, None, None)["num_gpus"] == 1.0
