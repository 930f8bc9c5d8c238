"""Train a ReLiK reader (EL / RE / cIE) or retriever from an ml_collections config file.

    python train.py                                             # configs/tiny.py: toy EL, ~2 min on CPU
    python train.py --config configs/conll04.py:cpu --workdir runs/conll04-minilm
    python train.py --config configs/aida.py --workdir runs/aida --config.learning_rate=2e-5
    python train.py --config configs/retriever_aida.py:cpu --workdir runs/retriever

`--config` is `path/to/config.py[:variant]` (the variant string is passed to `get_config`); any field can be
overridden with `--config.<field>=<value>`. The config's `task` picks the trainer: `el`, `re`, `cie`
(relik_jax.training.reader_train.train_reader, defaults in configs/default.py) or `retriever`
(relik_jax.training.retriever_train.train_retriever, defaults in configs/default_retriever.py).
Outputs go to `--workdir` (metrics JSONL + plot, orbax checkpoints for resuming, best model, test results).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
from absl import app, flags, logging
from ml_collections import config_flags

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `configs` and `relik_jax` from this checkout

from relik_jax import paths  # noqa: E402
from relik_jax.training.reader_train import train_reader  # noqa: E402
from relik_jax.training.retriever_train import train_retriever  # noqa: E402

DEFAULT_CONFIG = str(Path(__file__).resolve().parent / "configs" / "tiny.py")
config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Training configuration file (path[:variant]).",
                                lock_config=True)
flags.DEFINE_string("workdir", "runs/tiny", "Directory for checkpoints, metrics and results.")
flags.DEFINE_string("compile_cache", str(paths.CACHE / "xla-cache"),
                    "Persistent XLA compilation cache: a rerun, a resumed run or another run with the same batch "
                    "shapes loads its train steps instead of compiling them ('' = off).")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint operation at INFO
    if FLAGS.compile_cache:
        jax.config.update("jax_compilation_cache_dir", FLAGS.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    config = FLAGS.config
    task = config.task
    if task in ("el", "re", "cie"):
        results = train_reader(config, FLAGS.workdir)
        summary = {k: results[k] for k in ("task", "dataset", "steps", "best_step", "test", "train_seconds",
                                           "steps_per_second", "train_step_compiles")}
    elif task == "retriever":
        results = train_retriever(config, FLAGS.workdir)
        summary = {k: results.get(k) for k in ("before", "after", "train_s")}
    else:
        raise app.UsageError(f"config.task={task!r}: expected el, re, cie or retriever")
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    app.run(main)
