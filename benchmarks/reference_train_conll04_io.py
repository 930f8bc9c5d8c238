"""Companion of benchmarks/reference_train_conll04.py, run with OUR venv (relik_jax): the two ends of the
reference-package CoNLL04 training run that must be identical on both sides.

    export: the CoNLL04 windows of our `configs/conll04.py:cpu` run (one window per sentence, dataset words, the
            5 relations as triplet candidates, the 4 entity types as span candidates) as the reference's windowized
            JSONL (§4.3), plus our token rows of the first dev windows (to check the reference builds the same
            rows) and our training-batch statistics (rows / tokens per step over the run's steps).
    score:  micro-F1 (boundaries / strict, `relik_jax.metrics.re_matching`) of the reference's char-level
            predictions per relation threshold; dev-optimal threshold (ties: the larger one, as
            `reader_training.train_reader`), then test with it. Writes benchmarks/results/reference_train_conll04.json.

    PYTHONPATH=$PWD /work/main/.venv/bin/python benchmarks/reference_train_conll04_io.py export --out DIR
    PYTHONPATH=$PWD /work/main/.venv/bin/python benchmarks/reference_train_conll04_io.py score --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from relik_jax import datasets
from relik_jax.buckets import Buckets
from relik_jax.metrics import re_matching
from relik_jax.reader import ReaderConfig
from relik_jax.reader_inputs import TokenizerInfo
from relik_jax.reader_training import (
    THRESHOLDS,
    LabelledWindow,
    _windows,
    add_symbols,
    input_config,
    reader_symbols,
    train_batches,
    triplet_example,
)
from relik_jax.retriever_training import resolve_encoder
from relik_jax.tokenization import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("train", "dev", "test")


def our_config():  # noqa: ANN201 (ml_collections.ConfigDict)
    import importlib.util

    spec = importlib.util.spec_from_file_location("conll04_config", ROOT / "configs" / "conll04.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config("cpu")


def export(out: Path, n_check: int) -> None:
    config = our_config()
    raw = {s: list(datasets.read_conll04(s)) for s in SPLITS}
    # as reader_training.load_splits: relations over all splits, entity types over train mentions (sorted)
    relations = sorted({t.relation for docs in raw.values() for d in docs for t in d.triplets})
    types = sorted({m.label for d in raw["train"] for m in d.mentions})
    out.mkdir(parents=True, exist_ok=True)
    windows: dict[str, list[dict]] = {}
    for s, docs in raw.items():
        rows = []
        for w in _windows(docs, config):
            w["triplet_candidates"] = list(relations)
            w["span_candidates"] = list(types)
            rows.append(w)
        windows[s] = rows
        datasets.write_jsonl(rows, out / f"{s}.jsonl")
    # our rows (no augmentation: the dev windows as they are) for the token-row check
    cfg = ReaderConfig(architecture="RelikReaderREModel", transformer_model=config.backbone,
                       additional_special_symbols=config.max_relations,
                       additional_special_symbols_types=config.entity_types + 1,
                       linears_hidden_size=config.linears_hidden_size, entity_type_loss=True,
                       add_entity_embedding=True)
    folder = resolve_encoder(config.backbone)
    tokenizer = load_tokenizer(folder)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    add_symbols(tokenizer, reader_symbols(cfg))
    info = dataclasses.replace(TokenizerInfo.from_tokenizer(tokenizer), model_max_length=config.max_length)
    check = []
    for w in windows["dev"][:n_check]:
        ex = triplet_example(LabelledWindow.from_dict(w), tokenizer, info, input_config(cfg, config))
        if ex is None:
            continue
        check.append({"doc_id": w["doc_id"], "window_id": w["window_id"], "input_ids": ex.input_ids.tolist(),
                      "token_type_ids": ex.token_type_ids.tolist(),
                      "prediction_mask": ex.prediction_mask.astype(int).tolist(),
                      "relation_symbols_mask": ex.symbol_mask.astype(int).tolist(),
                      "type_symbols_mask": ex.type_mask.astype(int).tolist(), "mentions": ex.mentions,
                      "relation_labels_nonzero": np.argwhere(ex.relation_labels).tolist(),
                      "type_labels_nonzero": np.argwhere(ex.type_labels).tolist()})
    datasets.write_jsonl(check, out / "our_dev_rows.jsonl")
    # our training stream's batch statistics (the reference script plans its batches with the same rule)
    buckets = Buckets(seq_lens=tuple(config.seq_lens), token_budget=config.token_batch_size, max_rows=config.max_rows)
    lws = [LabelledWindow.from_dict(w) for w in windows["train"]]
    stream = train_batches(lws, cfg, config, tokenizer, info, buckets)
    rows, tokens, padded = [], [], []
    for _ in range(config.num_steps):
        b = next(stream)
        real = b["attention_mask"].sum(1) > 0
        rows.append(int(real.sum()))
        tokens.append(int(b["attention_mask"].sum()))
        padded.append(int(b["input_ids"].size))
    stats = {"steps": config.num_steps, "train_windows": len(lws),
             "train_examples_per_epoch": sum(1 for lw in lws if lw.word_labels),
             "rows_per_step_mean": float(np.mean(rows)), "rows_total": int(np.sum(rows)),
             "tokens_per_step_mean": float(np.mean(tokens)), "tokens_total": int(np.sum(tokens)),
             "padded_tokens_per_step_mean": float(np.mean(padded)),
             "relations": relations, "entity_types": types,
             "windows": {s: len(v) for s, v in windows.items()}, "config": config.to_dict()}
    (out / "our_stream_stats.json").write_text(json.dumps(stats, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in stats.items() if k != "config"}, indent=1))


def _gold(windows: list[dict]) -> list[list[tuple]]:
    lws = [LabelledWindow.from_dict(w) for w in windows]
    return [[(tuple(s), r, tuple(o)) for s, r, o in lw.triplets] for lw in lws]


def _pred(rows: list[dict]) -> list[list[tuple]]:
    return [[(tuple(s), r, tuple(o)) for s, r, o, _ in row["predicted_triplets"]] for row in rows]


def score(out: Path, results: Path, tag: str = "") -> None:
    windows = {s: list(datasets.read_jsonl(out / f"{s}.jsonl")) for s in ("dev", "test")}
    gold = {s: _gold(v) for s, v in windows.items()}
    preds = {}
    for line in (out / f"reference_predictions{tag}.jsonl").read_text().splitlines():
        d = json.loads(line)
        preds[(d["split"], float(d["threshold"]))] = d["windows"]

    def metrics(split: str, t: float) -> dict[str, float]:
        if (split, t) not in preds:
            raise ValueError(f"no {split} predictions at threshold {t} in {out}/reference_predictions{tag}.jsonl")
        rows = preds[(split, t)]
        ids = [(w["doc_id"], w["window_id"]) for w in windows[split]]
        if [(r["doc_id"], r["window_id"]) for r in rows] != ids:
            raise ValueError(f"{split} predictions at threshold {t}: windows differ from {out / split}.jsonl")
        return re_matching(_pred(rows), gold[split])

    grid = {t: metrics("dev", t) for t in THRESHOLDS}
    best = max(grid, key=lambda k: (grid[k]["f1"], k))
    test = metrics("test", best)
    ref = json.loads((out / f"reference_run{tag}.json").read_text())
    ours_path = out / "our_stream_stats.json"
    ours_stream = json.loads(ours_path.read_text()) if ours_path.is_file() else {}
    res = {"reference_run": ref, "threshold": best, "dev": grid[best],
           "dev_grid_f1": {str(t): grid[t]["f1"] for t in THRESHOLDS}, "test": test,
           "our_stream": {k: v for k, v in ours_stream.items() if k != "config"}}
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(res, indent=2) + "\n")
    print("dev F1 per threshold: " + ", ".join(f"{t}: {100 * grid[t]['f1']:.1f}" for t in THRESHOLDS))
    print(f"dev-optimal threshold {best}: dev F1 {100 * grid[best]['f1']:.2f}; test F1 boundaries "
          f"{100 * test['f1']:.2f} (P {100 * test['precision']:.1f} / R {100 * test['recall']:.1f}), strict "
          f"{100 * test['strict_f1']:.2f}, entity spans {100 * test['span_f1']:.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=("export", "score"))
    p.add_argument("--out", type=Path, default=Path("/tmp/reference-conll04"),
                   help="work folder (windows JSONL, predictions; not in the repo: it holds dataset text)")
    p.add_argument("--n-check", type=int, default=20, help="export: dev windows whose token rows are compared")
    p.add_argument("--tag", default="", help="score: the run's file suffix (reference_train_conll04.py --tag)")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "reference_train_conll04.json")
    a = p.parse_args()
    if a.step == "export":
        export(a.out, a.n_check)
    else:
        score(a.out, a.results, a.tag)


if __name__ == "__main__":
    main()
