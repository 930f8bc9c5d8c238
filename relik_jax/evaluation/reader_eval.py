"""Reader evaluation on labelled windows: EL strong-match InKB micro P/R/F1 per document, RE / cIE micro-F1 per
window (boundaries and strict), and the relation-threshold sweep of the reference's `predict_re.py
--compute-threshold`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_collections
from tokenizers import Tokenizer

from relik_jax.engine.buckets import Buckets
from relik_jax.evaluation.metrics import el_strong_matching, re_matching
from relik_jax.reader import decoding as dec
from relik_jax.reader.model import ReaderConfig, SpanReader, TripletReader
from relik_jax.reader.reader import Reader
from relik_jax.text.windows import Window

THRESHOLDS = (0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05, 0.02)  # relation thresholds the dev sweep tries


def evaluate_windows(reader: Reader, windows: Sequence[Window], task: str
                     ) -> tuple[dict[str, float], list[dict]]:
    """Predict `windows` with `reader`; EL: strong-match InKB micro P/R/F1 per document (windows of a document
    merged), RE/cIE: `metrics.re_matching` per window. Returns (metrics, prediction rows)."""
    preds = reader.read(windows)
    rows: list[dict] = []
    if task == "el":
        by_doc_pred: dict[Any, set] = {}
        by_doc_gold: dict[Any, set] = {}
        for w, p in zip(windows, preds, strict=True):
            spans = {(int(s), int(e), str(t)) for s, e, t in p.spans}
            gold = {(s, e, t.replace("_", " ")) for s, e, t in w.labels or []}
            by_doc_pred.setdefault(w.doc_id, set()).update(spans)
            by_doc_gold.setdefault(w.doc_id, set()).update(gold)
            rows.append({"doc_id": w.doc_id, "window_id": w.window_id, "predicted_spans": sorted(spans),
                         "gold_spans": sorted(gold)})
        docs = list(by_doc_gold)
        return el_strong_matching([sorted(by_doc_pred[d]) for d in docs], [sorted(by_doc_gold[d]) for d in docs]), rows
    pred_t, gold_t = [], []
    for w, p in zip(windows, preds, strict=True):
        spans = [(int(s), int(e), str(t)) for s, e, t in p.spans]
        trip = [(spans[s], r, spans[o]) for s, r, o, _ in p.triplets]
        gold = [(tuple(s), r, tuple(o)) for s, r, o in w.triplet_labels or []]
        pred_t.append(trip)
        gold_t.append(gold)
        rows.append({"doc_id": w.doc_id, "window_id": w.window_id, "predicted_spans": spans,
                     "predicted_triplets": [[list(s), r, list(o), float(pp)] for (s, r, o), (_, _, _, pp)
                                            in zip(trip, p.triplets, strict=True)],
                     "gold_triplets": [[list(s), r, list(o)] for s, r, o in gold]})
    return re_matching(pred_t, gold_t), rows


def evaluate_thresholds(reader: Reader, windows: Sequence[Window], thresholds: Sequence[float]
                        ) -> dict[float, dict[str, float]]:
    """RE / cIE metrics for several relation thresholds from one forward pass (the reference's
    `predict_re.py --compute-threshold` picks the dev-optimal one)."""
    rows = reader.rows(windows)
    outs = dict(zip((r.window_index for r in rows), zip(rows, reader.forward(rows), strict=True), strict=True))
    gold = [[(tuple(s), r, tuple(o)) for s, r, o in w.triplet_labels or []] for w in windows]
    results = {}
    for t in thresholds:
        pred = []
        for i in range(len(windows)):
            if i not in outs:
                pred.append([])
                continue
            row, out = outs[i]
            p = dec.decode_triplet_row(row, out["mentions"], out.get("type_pred"), out["re_probs"], t)
            spans = [(int(s), int(e), str(lab)) for s, e, lab in p.spans]
            pred.append([(spans[a], r, spans[o]) for a, r, o, _ in p.triplets])
        results[float(t)] = re_matching(pred, gold)
    return results


def eval_reader(cfg: ReaderConfig, model: SpanReader | TripletReader, tokenizer: Tokenizer,
                config: ml_collections.ConfigDict, devices: Any = None) -> Reader:
    """The `Reader` that evaluates a model being trained with `config` (its lengths, NME and relation caps);
    `devices`: data-parallel over these (the training mesh), None: one device."""
    return Reader(cfg, model, tokenizer, {"model_max_length": config.max_length}, buckets=eval_buckets(config),
                  model_max_length=config.max_length, use_nme=config.use_nme, max_triplets=config.max_relations,
                  devices=devices)


def eval_buckets(config: ml_collections.ConfigDict) -> Buckets:
    """Evaluation batches: the training L buckets at `eval_token_batch_size` tokens."""
    return Buckets(seq_lens=tuple(config.seq_lens), token_budget=config.eval_token_batch_size,
                   max_rows=config.max_rows)


def task_metric(metrics: dict[str, float], config: ml_collections.ConfigDict) -> float:
    """The model-selection metric (`config.select_metric`)."""
    return float(metrics[config.select_metric])
