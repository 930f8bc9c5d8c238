"""Evaluate a trained reader (or a retriever, or a whole pipeline over GERBIL) and write predictions.

    python evaluate.py --reader runs/conll04-minilm/best --config configs/conll04.py:cpu --split test --out DIR
    python evaluate.py --reader runs/tiny/best --split dev,test --out DIR          # default config: configs/tiny.py
    python evaluate.py --retriever runs/retriever/encoder --index runs/retriever/index \
        --config configs/retriever_aida.py --out DIR                                # recall@K
    python evaluate.py --gerbil --pipeline path/to/relik-pipeline [--datasets kore50,rss-500]

Measures: EL strong-match InKB micro P/R/F1 (NME excluded) per document; RE micro P/R/F1 on boundaries
(subject/object spans + relation) and strict (entity labels too); cIE as strict RE; retriever recall@K. One table
per dataset split (rich); `<out>/<split>_metrics.json` and `<out>/<split>_predictions.jsonl`.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

READER_COLUMNS = {
    "el": [("P", "precision"), ("R", "recall"), ("F1", "f1"), ("span F1", "span_f1")],
    "re": [("P", "precision"), ("R", "recall"), ("F1", "f1"), ("strict F1", "strict_f1"), ("span F1", "span_f1")],
}


def load_config(spec: str) -> Any:
    """`path/to/config.py[:variant]` -> its `get_config(variant)` (as train.py's --config)."""
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_eval_config", path)
    if module_spec is None or module_spec.loader is None:
        raise FileNotFoundError(f"config file {path!r} not found")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def print_table(title: str, rows: list[tuple[str, dict[str, float]]], columns: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("split")
    for name, _ in columns:
        table.add_column(name, justify="right")
    for split, m in rows:
        table.add_row(split, *(f"{100 * m[key]:.2f}" for _, key in columns))
    Console().print(table)


def evaluate_reader(reader_folder: str, config: Any, splits: list[str], out: Path) -> dict[str, dict[str, float]]:
    from relik_jax.data.jsonl import write_jsonl
    from relik_jax.reader.convert import load_reader
    from relik_jax.training.reader_train import eval_reader, evaluate_windows, load_splits

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


def evaluate_retriever(encoder: str, index: str | None, config: Any, out: Path) -> dict[str, dict[str, float]]:
    """Recall@K of a retriever on the config's evaluation splits (index rebuilt from the KB when not given)."""
    from relik_jax.data.retrieval import aida_kb_and_samples, relation_kb_and_samples
    from relik_jax.retriever.encoder import Retriever
    from relik_jax.training.retriever_train import RetrieverTrainer

    kb, samples = aida_kb_and_samples(config) if config.dataset == "aida" else relation_kb_and_samples(config)
    retriever = Retriever.from_pretrained(encoder, index, batch_size=config.eval_batch_size,
                                          passage_batch_size=config.eval_batch_size,
                                          question_max_length=config.max_question_length,
                                          passage_max_length=config.max_passage_length)
    trainer = RetrieverTrainer(retriever, kb, samples["train"][:1], config, config.metadata_fields, config.separator)
    built = trainer.build_index()
    results = {}
    for split in config.eval_splits:
        s = samples[split][: config.max_eval_samples] if config.get("max_eval_samples") else samples[split]
        results[split] = trainer.evaluate(s, tuple(config.eval_ks), built)
    out.mkdir(parents=True, exist_ok=True)
    (out / "retriever_metrics.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    cols = [(f"R@{k}", f"recall@{k}") for k in config.eval_ks]
    rows = [(k, {c: float(v.get(c, 0.0)) for _, c in cols}) for k, v in results.items()]
    print_table(f"retriever {config.dataset}", rows, cols)
    return results


def evaluate_gerbil_pipeline(pipeline: str, datasets: list[str] | None, top_k: int | None) -> Any:
    from relik_jax.evaluation.gerbil.run import DEFAULT_DATASETS, evaluate_gerbil
    from relik_jax.inference.pipeline import Relik

    relik = Relik.from_pretrained(pipeline)
    return evaluate_gerbil(relik.annotator(top_k), datasets or DEFAULT_DATASETS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(Path(__file__).resolve().parent / "configs" / "tiny.py"),
                   help="config file[:variant] describing the data (default: configs/tiny.py)")
    p.add_argument("--reader", help="reader folder (ours, e.g. <workdir>/best, or a reference reader)")
    p.add_argument("--split", default="test", help="comma-separated splits (train, dev, test)")
    p.add_argument("--retriever", help="retriever encoder folder (recall@K)")
    p.add_argument("--index", help="retriever index folder (default: re-encode the config's KB)")
    p.add_argument("--gerbil", action="store_true", help="run --pipeline over the GERBIL datasets")
    p.add_argument("--pipeline", help="pipeline folder (relik.json + reader/ + retriever-*/) for --gerbil")
    p.add_argument("--datasets", help="comma-separated GERBIL datasets (default: all)")
    p.add_argument("--top-k", type=int, default=None, help="retriever top-k for --gerbil")
    p.add_argument("--out", default="eval", help="output folder for metrics and predictions")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (e.g. --set max_test_windows=50)")
    args = p.parse_args(argv)
    if args.gerbil:
        if not args.pipeline:
            p.error("--gerbil needs --pipeline")
        evaluate_gerbil_pipeline(args.pipeline, args.datasets.split(",") if args.datasets else None, args.top_k)
        return 0
    config = load_config(args.config)
    for kv in args.set:
        key, _, value = kv.partition("=")
        if key not in config:
            p.error(f"--set {kv}: the config has no field {key!r}")
        try:
            config[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            config[key] = value
    out = Path(args.out)
    if args.retriever:
        evaluate_retriever(args.retriever, args.index, config, out)
    elif args.reader:
        evaluate_reader(args.reader, config, [s.strip() for s in args.split.split(",")], out)
    else:
        p.error("give --reader, --retriever or --gerbil")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
