"""Companion of reference_train_conll04.py (same folder), run with OUR venv (relik_jax): the two ends of the
reference-package CoNLL04 training run that must be identical on both sides.

    export: the CoNLL04 windows of our `configs/conll04.py:cpu` run (one window per sentence, dataset words, the
            5 relations as triplet candidates, the 4 entity types as span candidates) as the reference's windowized
            JSONL (§4.3), plus our token rows of the first dev windows (to check the reference builds the same
            rows) and our training-batch statistics (rows / tokens per step over the run's steps).
    lockstep: the exact training batches of our run (same examples, flips and batch plan, one file per step) in
            the reference's batch format (`RelikREDataset` labels), for the reference script's `--lockstep`: both
            sides then train the same model (the reference's initial weights, no dropout) on the same batches.
    score:  micro-F1 (boundaries / strict, `relik_jax.evaluation.metrics.re_matching`) of the reference's char-level
            predictions per relation threshold; dev-optimal threshold (ties: the larger one, as
            `reader_training.train_reader`), then test with it. Writes results/reference_train_conll04.json.

    B=benchmarks/studies/conll04_parity
    PYTHONPATH=$PWD .venv/bin/python $B/reference_train_conll04_io.py export --out DIR
    PYTHONPATH=$PWD .venv/bin/python $B/reference_train_conll04_io.py lockstep --out DIR
    PYTHONPATH=$PWD .venv/bin/python $B/reference_train_conll04_io.py score --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from relik_jax.data import corpora as datasets
from relik_jax.data import jsonl
from relik_jax.data.windowing import LabelledWindow
from relik_jax.engine.buckets import Buckets
from relik_jax.evaluation.metrics import re_matching
from relik_jax.evaluation.reader_eval import THRESHOLDS
from relik_jax.reader.inputs import TokenizerInfo
from relik_jax.reader.model import ReaderConfig
from relik_jax.retriever.encoder import resolve_encoder
from relik_jax.text.tokenization import load_tokenizer
from relik_jax.training.reader_batching import train_batch_plan, train_batches
from relik_jax.training.reader_data import document_windows, load_splits
from relik_jax.training.reader_examples import Example, triplet_example
from relik_jax.training.reader_model import add_symbols, input_config, reader_symbols

ROOT = Path(__file__).resolve().parents[3]
RESULTS = Path(__file__).resolve().parent / "results"
SPLITS = ("train", "dev", "test")


def our_config():  # noqa: ANN201 (ml_collections.ConfigDict)
    import importlib.util

    spec = importlib.util.spec_from_file_location("conll04_config", ROOT / "configs" / "conll04.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config("cpu")


def our_setup(config) -> tuple[ReaderConfig, Tokenizer, TokenizerInfo]:  # noqa: ANN001
    """The reader config, tokenizer (+ symbols) and token info of our run (as reader_training builds them)."""
    cfg = ReaderConfig(architecture="RelikReaderREModel", transformer_model=config.backbone,
                       additional_special_symbols=config.max_relations,
                       additional_special_symbols_types=config.entity_types + 1,
                       linears_hidden_size=config.linears_hidden_size, entity_type_loss=True,
                       add_entity_embedding=True)
    tokenizer = load_tokenizer(resolve_encoder(config.backbone))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    add_symbols(tokenizer, reader_symbols(cfg))
    info = dataclasses.replace(TokenizerInfo.from_tokenizer(tokenizer), model_max_length=config.max_length)
    return cfg, tokenizer, info


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
        for w in document_windows(docs, config):
            w["triplet_candidates"] = list(relations)
            w["span_candidates"] = list(types)
            rows.append(w)
        windows[s] = rows
        jsonl.write_jsonl(rows, out / f"{s}.jsonl")
    # our rows (no augmentation: the dev windows as they are) for the token-row check
    cfg, tokenizer, info = our_setup(config)
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
    jsonl.write_jsonl(check, out / "our_dev_rows.jsonl")
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


def reference_batch(examples: list[Example], length: int, pad_id: int) -> dict[str, np.ndarray]:
    """Our training examples of one step in the batch format of the reference's `RelikREDataset` + collation:
    start labels = mention index + 1 at each start, one end-label row per distinct start (-100 before it and on
    non-text positions), `disambiguation_labels` [M, types + relations] (type one-hot; -100 padding rows),
    `relation_labels` [M, M, relations] (-100 padding), the relation / type symbol masks. Real rows only (our
    all-padding rows carry no labels), padded to our L bucket (attention-masked, so the same as the reference's
    pad-to-longest)."""
    b = len(examples)
    n_s = max(len(x.starts) for x in examples)
    n_m = max(len(x.mentions) for x in examples)
    n_rel = int(examples[0].symbol_mask.sum())
    n_typ = int(examples[0].type_mask.sum())
    out = {"input_ids": np.full((b, length), pad_id, np.int64), "attention_mask": np.zeros((b, length), np.int64),
           "token_type_ids": np.zeros((b, length), np.int64), "prediction_mask": np.ones((b, length), np.int64),
           "special_symbols_mask": np.zeros((b, length), bool),
           "special_symbols_mask_entities": np.zeros((b, length), bool),
           "start_labels": np.full((b, length), -100, np.int64),
           "end_labels": np.full((b, n_s, length), -100, np.float32),
           "disambiguation_labels": np.full((b, n_m, n_typ + n_rel), -100, np.float32),
           "relation_labels": np.full((b, n_m, n_m, n_rel), -100, np.float32)}
    for i, x in enumerate(examples):
        if int(x.symbol_mask.sum()) != n_rel or int(x.type_mask.sum()) != n_typ:
            raise ValueError("rows of one reference batch must have the same candidate counts")
        n = len(x)
        pm = np.ones(length, bool)
        pm[:n] = x.prediction_mask
        out["input_ids"][i, :n] = x.input_ids
        out["attention_mask"][i, :n] = 1
        out["token_type_ids"][i, :n] = x.token_type_ids
        out["prediction_mask"][i] = pm
        out["special_symbols_mask"][i, :n] = x.symbol_mask
        out["special_symbols_mask_entities"][i, :n] = x.type_mask
        start = np.zeros(length, np.int64)
        for k, (s, _) in enumerate(x.mentions):
            start[s] = k + 1
        out["start_labels"][i] = np.where(pm, -100, start)
        for k, s in enumerate(x.starts):
            row = np.zeros(length, np.float32)
            if x.mask_preceding:
                row[:s] = -100
            for m, (ms, me) in enumerate(x.mentions):
                if ms == s:
                    row[me] = m + 1
            out["end_labels"][i, k] = np.where(pm, -100, row)
        nm = len(x.mentions)
        out["disambiguation_labels"][i, :nm] = 0
        out["disambiguation_labels"][i, :nm, :n_typ] = x.type_labels[:, :n_typ]
        out["relation_labels"][i, :nm, :nm] = x.relation_labels
    return out


def lockstep(out: Path, steps: int, data_seed: int = 0) -> None:
    config = our_config()
    config.seed = data_seed  # the stream of `train.py --config.seed=<data_seed>` (order, flips)
    cfg, tokenizer, info = our_setup(config)
    buckets = Buckets(seq_lens=tuple(config.seq_lens), token_budget=config.token_batch_size, max_rows=config.max_rows)
    train = load_splits(config)["train"]  # exactly what train.py reads
    plan = train_batch_plan(train, cfg, config, tokenizer, info, buckets)  # what train_batches collates
    folder = out / "lockstep"
    folder.mkdir(parents=True, exist_ok=True)
    rows = tokens = 0
    for step in range(1, steps + 1):
        length, _, exs = next(plan)
        ref = reference_batch(exs, length, info.pad_id)
        b = len(exs)
        np.savez(folder / f"step_{step:04d}.npz", **ref)
        rows += b
        tokens += int(ref["attention_mask"].sum())
    meta = {"steps": steps, "rows": rows, "tokens": tokens, "seed": config.seed, "config": "configs/conll04.py:cpu"}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))


def perturb(out: Path, source: str, eps: float, seed: int) -> None:
    """A copy of a saved reader folder (DIR/lockstep/<source>) with every weight multiplied by (1 + eps * N(0, 1)):
    eps ~ 1e-7 is float32 rounding, to measure how far rounding alone moves a training run's F1."""
    import shutil

    import safetensors.numpy as st

    src = out / "lockstep" / source
    dest = out / "lockstep" / f"{source}_perturbed{seed}"
    shutil.copytree(src, dest, dirs_exist_ok=True)
    rng = np.random.default_rng(seed)
    weights = st.load_file(src / "model.safetensors")
    jittered = {k: (v * (1 + eps * rng.standard_normal(v.shape))).astype(v.dtype) for k, v in weights.items()}
    st.save_file(jittered, dest / "model.safetensors", metadata={"format": "pt"})
    changed = sum(int((jittered[k] != v).sum()) for k, v in weights.items())
    print(f"{dest}: {changed:,} of {sum(v.size for v in weights.values()):,} weights changed (eps {eps})")


def _gold(windows: list[dict]) -> list[list[tuple]]:
    lws = [LabelledWindow.from_dict(w) for w in windows]
    return [[(tuple(s), r, tuple(o)) for s, r, o in lw.triplets] for lw in lws]


def _pred(rows: list[dict]) -> list[list[tuple]]:
    return [[(tuple(s), r, tuple(o)) for s, r, o, _ in row["predicted_triplets"]] for row in rows]


def score(out: Path, results: Path, tag: str = "") -> None:
    windows = {s: list(jsonl.read_jsonl(out / f"{s}.jsonl")) for s in ("dev", "test")}
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
    p.add_argument("step", choices=("export", "lockstep", "perturb", "score"))
    p.add_argument("--source", default="init_reader_lockstep", help="perturb: the reader folder in DIR/lockstep")
    p.add_argument("--eps", type=float, default=1e-7, help="perturb: relative jitter of every weight")
    p.add_argument("--seed", type=int, default=1, help="perturb: the jitter's seed")
    p.add_argument("--steps", type=int, default=500, help="lockstep: training steps to write")
    p.add_argument("--data-seed", type=int, default=0, help="lockstep: the seed of our run whose batches to write")
    p.add_argument("--out", type=Path, default=Path("/tmp/reference-conll04"),
                   help="work folder (windows JSONL, predictions; not in the repo: it holds dataset text)")
    p.add_argument("--n-check", type=int, default=20, help="export: dev windows whose token rows are compared")
    p.add_argument("--tag", default="", help="score: the run's file suffix (reference_train_conll04.py --tag)")
    p.add_argument("--results", type=Path, default=RESULTS / "reference_train_conll04.json")
    a = p.parse_args()
    if a.step == "export":
        export(a.out, a.n_check)
    elif a.step == "lockstep":
        lockstep(a.out, a.steps, a.data_seed)
    elif a.step == "perturb":
        perturb(a.out, a.source, a.eps, a.seed)
    else:
        score(a.out, a.results, a.tag)


if __name__ == "__main__":
    main()
