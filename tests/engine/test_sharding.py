"""Data parallelism over a `jax.sharding.Mesh` (relik_jax/engine/sharding.py): the reader, the question encoder
and the index on 4 CPU devices give what one device gives, on AIDA (EL) and NYT (RE) windows.

The 4-device runs happen in subprocesses (XLA_FLAGS=--xla_force_host_platform_device_count=4: the device count is
fixed when JAX starts), the models are seeded and identical in every process (tests/engine/sharded_run.py).
Discrete outputs (starts, ends, mentions, links, relations) and the decoded spans and triplets must be identical;
logits agree to float32 rounding, not bit for bit: each device runs the batch's rows in a smaller program, and
XLA:CPU picks its kernels by shape (one device running the same rows in batches of 4 instead of 16 differs from
itself by the same ~1e-5).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from relik_jax.engine.buckets import Buckets, plan_batches
from relik_jax.engine.sharding import data_mesh, data_size, process_rows

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(__file__).with_name("sharded_run.py")
ATOL = 1e-4  # logits and probabilities (measured: <= 1.4e-5 on these windows)


def run_devices(tmp_path: Path, devices: int | None) -> dict:
    """sharded_run.py in a fresh process with `devices` CPU devices (None: one device, no mesh)."""
    out = tmp_path / f"out-{devices}.pkl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}  # RE span order follows set order
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices or 1}"
    cmd = [sys.executable, str(RUN), str(out)] + ([] if devices is None else ["--devices", str(devices)])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with out.open("rb") as f:
        return pickle.load(f)


def assert_rows_match(one: list[dict], many: list[dict]) -> None:
    assert len(one) == len(many)
    for i, (a, b) in enumerate(zip(one, many, strict=True)):
        assert a.keys() == b.keys()
        for k in a:
            x, y = np.asarray(a[k]), np.asarray(b[k])
            assert x.shape == y.shape, (i, k, x.shape, y.shape)
            if x.dtype.kind == "f":
                np.testing.assert_allclose(y, x, atol=ATOL, rtol=0, err_msg=f"row {i} {k}")
            else:
                np.testing.assert_array_equal(y, x, err_msg=f"row {i} {k}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    tmp = tmp_path_factory.mktemp("sharding")
    return run_devices(tmp, None), run_devices(tmp, 4)


def test_reader_on_4_devices_matches_one_device(runs: tuple[dict, dict]) -> None:
    one, four = runs
    assert (one["devices"], four["devices"]) == (1, 4)
    # padded batches split evenly: every row count a multiple of the 4 devices
    assert four["aida_batch_rows"] and all(r % 4 == 0 for r in four["aida_batch_rows"] + four["nyt_batch_rows"])
    assert_rows_match(one["aida_forward"], four["aida_forward"])
    assert_rows_match(one["nyt_forward"], four["nyt_forward"])
    # decoded predictions: identical spans and links (AIDA), spans and triplets (NYT)
    assert [s for s, _ in four["aida_spans"]] == [s for s, _ in one["aida_spans"]]
    assert sum(len(s) for s, _ in one["aida_spans"]) > 50  # the comparison covers real predictions
    for (_, p1), (_, p4) in zip(one["aida_spans"], four["aida_spans"], strict=True):
        assert p1.keys() == p4.keys()
        for span in p1:
            assert [t for t, _ in p4[span]] == [t for t, _ in p1[span]]
            np.testing.assert_allclose([p for _, p in p4[span]], [p for _, p in p1[span]], atol=ATOL)
    assert [s for s, _ in four["nyt_triplets"]] == [s for s, _ in one["nyt_triplets"]]
    assert [[t[:3] for t in ts] for _, ts in four["nyt_triplets"]] == [[t[:3] for t in ts] for _, ts in
                                                                        one["nyt_triplets"]]
    assert sum(len(ts) for _, ts in one["nyt_triplets"]) > 20


def test_question_encoding_and_index_on_4_devices(runs: tuple[dict, dict]) -> None:
    one, four = runs
    assert four["index_devices"] == 4
    np.testing.assert_allclose(four["questions"], one["questions"], atol=1e-5, rtol=0)
    assert [[i for i, _ in r] for r in four["retrieved"]] == [[i for i, _ in r] for r in one["retrieved"]]
    np.testing.assert_allclose([[s for _, s in r] for r in four["retrieved"]],
                               [[s for _, s in r] for r in one["retrieved"]], atol=1e-5)


def test_row_multiple_pads_batches_to_the_device_count() -> None:
    lengths = [10] * 7 + [70] * 5 + [200] * 3
    for d in (1, 2, 3, 4):
        bk = Buckets(max_rows=8, row_multiple=d)
        batches = plan_batches(lengths, bk)
        assert sorted(i for b in batches for i in b.indices) == list(range(len(lengths)))
        assert all(b.rows % d == 0 and b.rows >= len(b.indices) for b in batches)
        # the compile bound still covers every batch size the plan can produce
        for length in (64, 128, 256):
            sizes = {bk.batch_rows(n, length) for n in range(1, bk.rows(length) + 1)}
            assert all(s % d == 0 for s in sizes)
            assert len(sizes) <= bk.program_bound(length, triplet=False)["encode"]
    assert Buckets().rows(64) == 32 and Buckets(row_multiple=3).rows(64) == 33
    with pytest.raises(ValueError, match="row_multiple"):
        Buckets(row_multiple=0)


def test_mesh_helpers() -> None:
    mesh = data_mesh(1)
    assert data_size(mesh) == 1 and data_size(None) == 1 and data_mesh(mesh) is mesh
    with pytest.raises(ValueError, match="xla_force_host_platform_device_count"):
        data_mesh(10_000)
    batch = {"ids": np.arange(12).reshape(6, 2), "mask": np.ones((6, 3))}
    parts = [process_rows(batch, p, 3) for p in range(3)]
    np.testing.assert_array_equal(np.concatenate([p["ids"] for p in parts]), batch["ids"])
    with pytest.raises(ValueError, match="does not split"):
        process_rows(batch, 0, 4)
