"""Evaluate a trained reader (or a retriever, or a whole pipeline over GERBIL) and write predictions.

    python evaluate.py --reader runs/conll04-minilm/best --config configs/conll04.py:cpu --split test --out DIR
    python evaluate.py --reader runs/tiny/best --split dev,test --out DIR          # default config: configs/tiny.py
    python evaluate.py --reader runs/tiny/best --config.max_test_windows=50 --out DIR
    python evaluate.py --retriever runs/retriever/encoder --index runs/retriever/index \\
        --config configs/retriever_aida.py --out DIR                                # recall@K
    python evaluate.py --gerbil --pipeline path/to/relik-pipeline [--datasets kore50,rss-500]

`--config` is `path/to/config.py[:variant]` as in train.py (it describes the data); any field can be overridden
with `--config.<field>=<value>`. Measures: EL strong-match InKB micro P/R/F1 (NME excluded) per document; RE micro
P/R/F1 on boundaries (subject/object spans + relation) and strict (entity labels too); cIE as strict RE; retriever
recall@K. One table per dataset split (rich); `<out>/<split>_metrics.json` and `<out>/<split>_predictions.jsonl`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `configs` and `relik_jax` from this checkout

from relik_jax.data.jsonl import write_jsonl  # noqa: E402
from relik_jax.data.retrieval import aida_kb_and_samples, relation_kb_and_samples  # noqa: E402
from relik_jax.evaluation.gerbil.run import DEFAULT_DATASETS, evaluate_gerbil  # noqa: E402
from relik_jax.evaluation.reader_eval import eval_reader, evaluate_windows  # noqa: E402
from relik_jax.evaluation.retrieval import retrieval_metrics  # noqa: E402
from relik_jax.inference.pipeline import Relik  # noqa: E402
from relik_jax.reader.convert import load_reader  # noqa: E402
from relik_jax.retriever.encoder import Retriever  # noqa: E402
from relik_jax.training.reader_data import load_splits  # noqa: E402

DEFAULT_CONFIG = str(Path(__file__).resolve().parent / "configs" / "tiny.py")
config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Config file (path[:variant]) describing the data.",
                                lock_config=True)
flags.DEFINE_string("reader", None, "Reader folder (ours, e.g. <workdir>/best, or a reference reader).")
flags.DEFINE_string("split", "test", "Comma-separated splits (train, dev, test).")
flags.DEFINE_string("retriever", None, "Retriever encoder folder (recall@K).")
flags.DEFINE_string("index", None, "Retriever index folder (default: re-encode the config's KB).")
flags.DEFINE_bool("gerbil", False, "Run --pipeline over the GERBIL datasets.")
flags.DEFINE_string("pipeline", None, "Pipeline folder (relik.json + reader/ + retriever-*/) for --gerbil.")
flags.DEFINE_string("datasets", None, "Comma-separated GERBIL datasets (default: all).")
flags.DEFINE_integer("top_k", None, "Retriever top-k for --gerbil.")
flags.DEFINE_alias("top-k", "top_k")  # the flag's name before absl
flags.DEFINE_string("out", "eval", "Output folder for metrics and predictions.")
FLAGS = flags.FLAGS

READER_COLUMNS = {
    "el": [("P", "precision"), ("R", "recall"), ("F1", "f1"), ("span F1", "span_f1")],
    "re": [("P", "precision"), ("R", "recall"), ("F1", "f1"), ("strict F1", "strict_f1"), ("span F1", "span_f1")],
}


def print_table(title: str, rows: list[tuple[str, dict[str, float]]], columns: list[tuple[str, str]]) -> None:
    table = Table(title=title)
    table.add_column("split")
    for name, _ in columns:
        table.add_column(name, justify="right")
    for split, m in rows:
        table.add_row(split, *(f"{100 * m[key]:.2f}" for _, key in columns))
    Console().print(table)


def evaluate_reader(reader_folder: str, config: ml_collections.ConfigDict, splits: list[str], out: Path
                    ) -> dict[str, dict[str, float]]:
    cfg, model, tokenizer, _ = load_reader(reader_folder)
    task = "el" if cfg.is_span else "re"
    if config.task == "el" and not cfg.is_span or config.task != "el" and cfg.is_span:
        raise ValueError(f"{reader_folder}: a {'span' if cfg.is_span else 'triplet'} reader cannot run the config's "
                         f"task {config.task!r}")
    data = load_splits(config)
    reader = eval_reader(cfg, model, tokenizer, config)
    results = {}
    out.mkdir(parents=True, exist_ok=True)
    for split in splits:
        if split not in data:
            raise ValueError(f"split {split!r} not in the config's data ({sorted(data)})")
        windows = data[split]
        lim = config.get(f"max_{split}_windows", 0)
        if lim:
            windows = windows[:lim]
        metrics, rows = evaluate_windows(reader, windows, config.task)
        results[split] = metrics
        write_jsonl(rows, out / f"{split}_predictions.jsonl")
        (out / f"{split}_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print_table(f"{config.dataset} ({config.task})", list(results.items()), READER_COLUMNS[task])
    return results


def evaluate_retriever(encoder: str, index: str | None, config: ml_collections.ConfigDict, out: Path
                       ) -> dict[str, dict[str, float]]:
    """Recall@K of a retriever on the config's evaluation splits (index rebuilt from the KB when not given)."""
    kb, samples = aida_kb_and_samples(config) if config.dataset == "aida" else relation_kb_and_samples(config)
    retriever = Retriever.from_pretrained(encoder, index, batch_size=config.eval_batch_size,
                                          passage_batch_size=config.eval_batch_size,
                                          question_max_length=config.max_question_length,
                                          passage_max_length=config.max_passage_length)
    built = retriever.build_index(kb, config.metadata_fields, config.separator, progress="Encoding KB")
    results = {}
    for split in config.eval_splits:
        s = samples[split][: config.max_eval_samples] if config.get("max_eval_samples") else samples[split]
        results[split] = retrieval_metrics(retriever, built, s, tuple(config.eval_ks), use_topics=config.use_topics)
    out.mkdir(parents=True, exist_ok=True)
    (out / "retriever_metrics.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    cols = [(f"R@{k}", f"recall@{k}") for k in config.eval_ks]
    rows = [(k, {c: float(v.get(c, 0.0)) for _, c in cols}) for k, v in results.items()]
    print_table(f"retriever {config.dataset}", rows, cols)
    return results


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    if FLAGS.gerbil:
        if not FLAGS.pipeline:
            raise app.UsageError("--gerbil needs --pipeline")
        relik = Relik.from_pretrained(FLAGS.pipeline)
        evaluate_gerbil(relik.annotator(FLAGS.top_k), FLAGS.datasets.split(",") if FLAGS.datasets else DEFAULT_DATASETS)
        return
    out = Path(FLAGS.out)
    if FLAGS.retriever:
        evaluate_retriever(FLAGS.retriever, FLAGS.index, FLAGS.config, out)
    elif FLAGS.reader:
        evaluate_reader(FLAGS.reader, FLAGS.config, [s.strip() for s in FLAGS.split.split(",")], out)
    else:
        raise app.UsageError("give --reader, --retriever or --gerbil")


if __name__ == "__main__":
    app.run(main)
