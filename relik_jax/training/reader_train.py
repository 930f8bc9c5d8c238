"""Reader training (EL / RE / cIE): `train_reader(config, workdir)`, configs in configs/ (default.py and variants).

    labelled windows (reader_data) -> augmented examples, static-shape batches (reader_examples, reader_batching)
    -> jitted train step (trainer.Trainer over reader.losses.loss_fn) -> dev evaluation (evaluation.reader_eval)

The dev split is read every `eval_every` steps by an inference `Reader` sharing the trained weights; the best dev
model (`select_metric`, ties: the later one) is kept in `best/` (our reader format) and tested at the end.

`config.devices` (0: one device) makes the step and the evaluation data-parallel over that many local devices
(-1: all): batches padded to a multiple of the device count, split row-wise, gradients reduced by XLA
(training/trainer.py, engine/sharding.py). The loop runs in one process; several hosts train with `Trainer` over
a `jax.distributed` mesh, each process passing its rows of the global batch (`sharding.process_rows`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from tokenizers import Tokenizer

from relik_jax.data.jsonl import write_jsonl
from relik_jax.engine import sharding
from relik_jax.engine.buckets import Buckets, ShapeLog
from relik_jax.engine.executor import prefetch
from relik_jax.engine.host_memory import reuse_freed_memory
from relik_jax.evaluation.reader_eval import (
    THRESHOLDS,
    eval_reader,
    evaluate_thresholds,
    evaluate_windows,
    task_metric,
)
from relik_jax.reader.convert import load_reader, save_reader
from relik_jax.reader.inputs import TokenizerInfo
from relik_jax.reader.losses import loss_fn
from relik_jax.reader.model import ReaderConfig
from relik_jax.reader.reader import Reader
from relik_jax.training.reader_batching import batch_shape, train_batches
from relik_jax.training.reader_data import SPLITS, Splits, load_splits
from relik_jax.training.reader_model import build_training_reader, reader_optimizer
from relik_jax.training.trainer import MetricsLog, Trainer, itstime, to_numpy_metrics


def train_reader(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Train a reader per `config`. Writes into `workdir`: `metrics.jsonl` (+ `metrics.png`), `checkpoints/`
    (orbax, resumable), `best/` (our reader format, best dev `select_metric`), `results.json` (dev/test metrics,
    timings, compile count) and `test_predictions.jsonl`."""
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    log = print if config.get("verbose", True) else (lambda *a, **k: None)
    t_start = time.perf_counter()

    setup = training_setup(config, workdir)
    cfg, trainer, tokenizer, tok_cfg, splits, stream = (setup.cfg, setup.trainer, setup.tokenizer, setup.tok_cfg,
                                                         setup.splits, setup.stream)
    log("data: " + ", ".join(f"{k} {len(v)} windows" for k, v in splits.items()))
    resumed, mesh = setup.resumed, setup.mesh
    metrics_log = MetricsLog(workdir / "metrics.jsonl")
    state_path = workdir / "best_state.json"
    best = json.loads(state_path.read_text()) if resumed and state_path.is_file() else {"step": -1, "value": -1.0}
    if resumed:
        log(f"resumed from step {trainer.step}")
    reader = eval_reader(cfg, trainer.model(), tokenizer, config, devices=mesh)

    shapes = ShapeLog()
    timing = {"eval": 0.0, "first_step": 0.0, "host": 0.0}
    t_train = time.perf_counter()
    start_step = trainer.step
    pending: list[dict] = []  # step metrics not yet read back (reading them blocks on the device)
    while trainer.step < config.num_steps:
        t0 = time.perf_counter()
        batch = next(stream)
        timing["host"] += time.perf_counter() - t0
        shapes.add("train_step", batch_shape(batch))
        pending.append(trainer.train_step(batch))
        step = trainer.step
        if step == start_step + 1:
            jax.block_until_ready(pending[-1])
            timing["first_step"] = time.perf_counter() - t0
        if itstime(step, config.log_every, config.num_steps):
            mean = mean_metrics(pending)
            metrics_log.write(step, **mean, lr_step=step)
            log(f"step {step}: loss {mean['loss']:.4f} " + " ".join(
                f"{k} {v:.4f}" for k, v in mean.items() if k.endswith("_loss")))
            pending = []
        if itstime(step, config.eval_every, config.num_steps):
            t0 = time.perf_counter()
            reader.update_model(trainer.model())
            dev, _ = evaluate_windows(reader, splits["dev"], config.task)
            timing["eval"] += time.perf_counter() - t0
            value = task_metric(dev, config)
            metrics_log.write(step, **{f"dev_{k}": v for k, v in dev.items()})
            log(f"step {step}: dev {config.select_metric} {value:.4f} (best {best['value']:.4f})")
            if value >= best["value"]:  # ties: the later model
                best = {"step": step, "value": value, "dev": dev}
                save_reader(workdir / "best", cfg, trainer.model(), tokenizer, tok_cfg)
                state_path.write_text(json.dumps(best, indent=2))
        if itstime(step, config.checkpoint_every, config.num_steps):
            trainer.save(workdir)
    train_s = time.perf_counter() - t_train
    stream.close()  # stops the prefetch thread
    metrics_log.plot(workdir / "metrics.png")
    if best["step"] < 0:  # no evaluation ran: the final model is the one we keep
        save_reader(workdir / "best", cfg, trainer.model(), tokenizer, tok_cfg)

    test, tuned = ({}, {})
    if config.final_test:
        test, tuned = final_test(config, reader, splits, workdir, tokenizer, tok_cfg, log)
    steps_run = trainer.step - start_step
    loop_s = train_s - timing["eval"] - timing["first_step"]
    results = {"task": config.task, "dataset": config.dataset, "steps": trainer.step, "best_step": best["step"],
               "dev": best.get("dev"), "test": test, "train_seconds": train_s, "eval_seconds": timing["eval"],
               "first_step_seconds": timing["first_step"], "host_batch_seconds": timing["host"],
               "steps_per_second": (steps_run - 1) / loop_s if steps_run > 1 and loop_s > 0 else None,
               "total_seconds": time.perf_counter() - t_start, "steps_this_run": steps_run,
               "train_step_compiles": shapes.counts().get("train_step", 0), "resumed": resumed,
               "eval_compiles": reader.num_compiles, "threshold_tuning": tuned, "config": config.to_dict()}
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    if test:
        log(f"test: {config.select_metric} {test[config.select_metric]:.4f}; results in {workdir / 'results.json'}")
    return results


@dataclasses.dataclass
class TrainingSetup:
    """What a reader training run steps through: the model's config, its `Trainer` (restored from the workdir's
    latest checkpoint when there is one), tokenizer, splits and the endless stream of training batches (prepared
    `config.prefetch` batches ahead in a background thread, at the trainer's step); `mesh`: the data-parallel mesh
    of `config.devices` (None: one device)."""

    cfg: ReaderConfig
    trainer: Trainer
    tokenizer: Tokenizer
    tok_cfg: dict[str, Any]
    splits: Splits
    stream: Iterator[dict[str, np.ndarray]]
    resumed: bool
    mesh: Any = None


def training_setup(config: ml_collections.ConfigDict, workdir: str | Path | None = None) -> TrainingSetup:
    """Model, optimizer, data and batch stream of `config` (train.py's; benchmarks/train_speed.py times them)."""
    reuse_freed_memory()  # before JAX's CPU backend starts: each step's temporary buffer reuses mapped pages
    cfg, model, tokenizer, tok_cfg = build_training_reader(config)
    info = dataclasses.replace(TokenizerInfo.from_tokenizer(tokenizer), model_max_length=config.max_length)
    splits = limit_splits(load_splits(config), config)
    mesh = training_mesh(config)
    buckets = Buckets(seq_lens=tuple(config.seq_lens), token_budget=config.token_batch_size, max_rows=config.max_rows,
                      row_multiple=sharding.data_size(mesh))
    trainer = Trainer(model, reader_optimizer(config, model), loss_fn, mesh=mesh)
    resumed = trainer.restore_latest(workdir) if workdir is not None else False
    stream = train_batches(splits["train"], cfg, config, tokenizer, info, buckets)
    for _ in range(trainer.step):  # replay the data stream to the resumed position (host work only)
        next(stream)
    # the host builds batch n+1 (examples, collation) while the device runs step n
    stream = prefetch(stream, depth=int(config.get("prefetch", 2)))
    return TrainingSetup(cfg, trainer, tokenizer, tok_cfg, splits, stream, resumed, mesh)


def training_mesh(config: ml_collections.ConfigDict) -> Any:
    """The data-parallel mesh of `config.devices` (0 / missing: None, one device; -1: every local device)."""
    n = int(config.get("devices", 0) or 0)
    if n == 0:
        return None
    if jax.process_count() > 1:
        raise NotImplementedError("train_reader runs in one process; across hosts use Trainer(mesh=...) with "
                                  "sharding.process_rows (tests/training/data_parallel_run.py)")
    return sharding.data_mesh(jax.local_devices() if n < 0 else n)


def limit_splits(splits: Splits, config: ml_collections.ConfigDict) -> Splits:
    """The first `max_<split>_windows` windows of each split (0 = all)."""
    return {s: ws[: config.get(f"max_{s}_windows", 0) or None] if s in SPLITS else ws for s, ws in splits.items()}


def mean_metrics(outputs: list[dict[str, Any]]) -> dict[str, float]:
    """Mean of each scalar metric over the steps since the last log (reads the device values back)."""
    vals = [to_numpy_metrics(o) for o in outputs]
    return {k: float(np.mean([v[k] for v in vals])) for k in vals[-1]}


def final_test(config: ml_collections.ConfigDict, reader: Reader, splits: Splits, workdir: Path,
               tokenizer: Tokenizer, tok_cfg: dict[str, Any], log: Callable[..., None]
               ) -> tuple[dict[str, float], dict[str, Any]]:
    """Test the best model (after picking the dev-optimal relation threshold when `tune_threshold`; it is stored in
    the best reader's config). Writes `test_predictions.jsonl`; returns (test metrics, threshold tuning)."""
    best_cfg, best_model, _, _ = load_reader(workdir / "best")
    reader.update_model(best_model)
    tuned: dict[str, Any] = {}
    if config.task != "el" and config.get("tune_threshold", False):
        grid = evaluate_thresholds(reader, splits["dev"], THRESHOLDS)
        t = max(grid, key=lambda k: (task_metric(grid[k], config), k))
        tuned = {"threshold": t, "dev": grid[t], "grid": {str(k): v[config.select_metric] for k, v in grid.items()}}
        log(f"dev-optimal relation threshold {t} ({config.select_metric} {task_metric(grid[t], config):.4f})")
        reader.threshold = t
        save_reader(workdir / "best", dataclasses.replace(best_cfg, threshold=t), best_model, tokenizer, tok_cfg)
    test, rows = evaluate_windows(reader, splits["test"], config.task)
    write_jsonl(rows, workdir / "test_predictions.jsonl")
    return test, tuned
