"""Data-parallel training (`Trainer(mesh=...)`, relik_jax/engine/sharding.py): one step of a toy EL reader over 4
CPU devices, and over 2 processes with `jax.distributed`, gives the one-device loss and update; a checkpoint
written on 4 devices restores on 1 and on 2.

Each configuration runs in its own subprocess (tests/training/data_parallel_run.py): the device count is fixed
when JAX starts. The update is compared as one vector over all parameters (relative error <= 3e-5: Adam's first
step divides each element by its own |g| + eps, so elements whose gradient is small carry the batch-split rounding
(different matmul shapes per device) into the update at ~1e-5; loss and gradient norm agree within 1e-5); per tensor,
those that carry a real share of the update (>= 1e-3 of its norm) agree within 1e-4: a few parameters have a
gradient that is zero in exact arithmetic (the attention key biases: a softmax does not see them) and move by
rounding noise only, which Adam's first step (g / (|g| + eps)) scales up to a sizeable relative difference.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(__file__).with_name("data_parallel_run.py")


def env(devices: int = 1) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT),
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def run(out: Path, *args: str, devices: int = 1) -> dict:
    proc = subprocess.run([sys.executable, str(RUN), *args], env=env(devices), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with out.open("rb") as f:
        return pickle.load(f)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_same_step(one: dict, other: dict) -> None:
    for k in one["before"]:  # the same model in every process
        np.testing.assert_array_equal(other["before"][k], one["before"][k])
    for m1, m2 in zip(one["metrics"], other["metrics"], strict=True):
        for k in ("loss", "grad_norm", "ned_start_loss", "ned_end_loss", "ed_loss"):
            assert abs(m2[k] - m1[k]) <= 1e-5 * abs(m1[k]), (k, m1[k], m2[k])
    d1 = {k: one["after"][k] - one["before"][k] for k in one["before"]}
    d2 = {k: other["after"][k] - other["before"][k] for k in one["before"]}
    total = np.sqrt(sum(float((d ** 2).sum()) for d in d1.values()))
    diff = np.sqrt(sum(float(((d2[k] - d1[k]) ** 2).sum()) for k in d1))
    assert total > 0 and diff <= 3e-5 * total, diff / total
    for k, d in d1.items():
        norm = np.linalg.norm(d)
        if norm >= 1e-3 * total:
            assert np.linalg.norm(d2[k] - d) <= 1e-4 * norm, (k, np.linalg.norm(d2[k] - d) / norm)


@pytest.fixture(scope="module")
def one_device(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("dp") / "one.pkl"
    return run(out, "step", str(out), "--steps", "1")


def test_step_on_4_devices_equals_one_device_and_restores_on_1_and_2(one_device: dict, tmp_path: Path) -> None:
    four = run(tmp_path / "four.pkl", "step", str(tmp_path / "four.pkl"), "--steps", "1", "--devices", "4",
               "--save", str(tmp_path / "ckpt"), devices=4)
    assert (one_device["devices"], four["devices"]) == (1, 4)
    assert_same_step(one_device, four)
    for n in (1, 2):
        args = ["restore", str(tmp_path / f"r{n}.pkl"), "--workdir", str(tmp_path / "ckpt")]
        restored = run(tmp_path / f"r{n}.pkl", *args, *(["--devices", str(n)] if n > 1 else []), devices=n)
        assert restored["devices"] == n and restored["step"] == 1
        assert restored["placed"] == [n]  # every array on the new device count
        for k, v in four["after"].items():
            np.testing.assert_array_equal(restored["after"][k], v)


def test_two_processes_with_jax_distributed_equal_one_process(one_device: dict, tmp_path: Path) -> None:
    out = tmp_path / "two.pkl"
    port = free_port()
    procs = [subprocess.Popen([sys.executable, str(RUN), "step", str(out), "--steps", "1", "--coordinator",
                               f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
                              env=env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    try:
        logs = [p.communicate(timeout=900) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in logs]
    with out.open("rb") as f:
        two = pickle.load(f)
    assert (two["processes"], two["devices"]) == (2, 2)
    assert_same_step(one_device, two)


TRAIN = """
import json, sys
from configs.default import get_config
from relik_jax.training.reader_train import train_reader
c = get_config()
c.update(dict(toy_train=24, toy_eval=6, num_steps=3, eval_every=3, checkpoint_every=0, log_every=1,
              token_batch_size=512, seq_lens=(128, 256), verbose=False, final_test=False, devices=int(sys.argv[2])))
r = train_reader(c, sys.argv[1])
print(json.dumps({"dev": r["dev"], "compiles": r["train_step_compiles"]}))
"""


def test_train_reader_with_config_devices(tmp_path: Path) -> None:
    """`train.py --config.devices=2`: the reader training loop (steps and dev evaluation) on 2 devices logs the
    losses and dev metrics of the one-device loop."""
    runs = {}
    for n in (0, 2):
        proc = subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path / f"w{n}"), str(n)], env=env(max(n, 1)),
                              capture_output=True, text=True, timeout=900, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        log = [json.loads(line) for line in (tmp_path / f"w{n}" / "metrics.jsonl").read_text().splitlines()]
        runs[n] = ({r["step"]: r["loss"] for r in log if "loss" in r}, json.loads(proc.stdout.splitlines()[-1]))
    (one, one_out), (two, two_out) = runs[0], runs[2]
    assert sorted(one) == sorted(two) == [1, 2, 3]
    for step, loss in one.items():
        assert abs(two[step] - loss) <= 1e-5 * abs(loss), (step, loss, two[step])
    assert two_out["dev"] == pytest.approx(one_out["dev"], abs=1e-6)
