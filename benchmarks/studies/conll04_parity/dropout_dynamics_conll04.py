"""Reader training with dropout ON, ours vs the reference package, as distributions (issue #5): from the same
initial weights (the reference's fresh reader, `DIR/lockstep/init_reader_lockstep`) on the same batches (our seed-0
stream, the companion's `lockstep` files), only the dropout masks differ between replicates. After K steps (K <= the
warmup, so the shortened reference run follows the 500-step schedule exactly), the weights of R replicates per side
are samples of one distribution if the two implementations train alike.

    # reference replicates (reference venv), s = 0..5:
    B=benchmarks/studies/conll04_parity
    HF_HUB_OFFLINE=1 ~/.cache/relik-jax/venv-reference/bin/python $B/reference_train_conll04.py --out DIR \
        --lockstep --keep-dropout --init-from DIR/lockstep/init_reader_lockstep --steps 25 --warmup 40 \
        --eval-every 0 --no-final-eval --seed $s --tag _dyn$s
    # ours (dropout keys from seed 1000 + r; data stream seed 0), then the comparison:
    PYTHONPATH=$PWD .venv/bin/python $B/dropout_dynamics_conll04.py ours --out DIR --reps 0,1,2,3,4,5
    PYTHONPATH=$PWD .venv/bin/python $B/dropout_dynamics_conll04.py compare --out DIR

`compare` reports, per parameter family, the squared distance between the two sides' mean weight displacements in
units of its sampling noise (~1 when the distributions agree) next to the displacement itself in the same units
(the check's power), the variance ratio, and the eval-mode losses of every replicate's weights on the next batches
(the same code scores both sides: ours equals the reference's forward to rounding). Writes
benchmarks/studies/conll04_parity/results/dropout_dynamics_conll04.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PARTS = ("loss", "ned_start_loss", "ned_end_loss", "re_loss", "ned_type_loss")


def _setup(out: Path, schedule_steps: int):  # noqa: ANN202
    import dataclasses

    from reference_train_conll04_io import our_config

    from relik_jax.engine.buckets import Buckets
    from relik_jax.reader.inputs import TokenizerInfo
    from relik_jax.training.reader_batching import train_batches
    from relik_jax.training.reader_data import load_splits
    from relik_jax.training.reader_model import build_training_reader

    config = our_config()
    config.update(dict(init="reader", backbone=str(out / "lockstep" / "init_reader_lockstep"), seed=0,
                       num_steps=schedule_steps))
    cfg, model, tokenizer, _ = build_training_reader(config)
    info = dataclasses.replace(TokenizerInfo.from_tokenizer(tokenizer), model_max_length=config.max_length)
    buckets = Buckets(seq_lens=tuple(config.seq_lens), token_budget=config.token_batch_size,
                      max_rows=config.max_rows)
    return config, model, train_batches(load_splits(config)["train"], cfg, config, tokenizer, info, buckets)


def _flat(state) -> dict[str, np.ndarray]:  # noqa: ANN001
    from flax import nnx

    return {"/".join(map(str, p)).removesuffix("/value"): np.asarray(v.get_value() if hasattr(v, "get_value") else v)
            for p, v in nnx.State(state).flat_state()}


def ours(out: Path, reps: list[int], steps: int, schedule_steps: int) -> None:
    from relik_jax.reader.losses import loss_fn
    from relik_jax.training.reader_model import reader_optimizer, seed_dropout
    from relik_jax.training.trainer import Trainer, to_numpy_metrics

    folder = out / "dynamics"
    folder.mkdir(parents=True, exist_ok=True)
    for rep in reps:
        config, model, stream = _setup(out, schedule_steps)
        if steps > config.warmup_steps:
            raise ValueError(f"--steps {steps}: at most the warmup ({config.warmup_steps}), where the reference's "
                             "shortened run follows the full schedule")
        seed_dropout(model, 1000 + rep)
        trainer = Trainer(model, reader_optimizer(config, model), loss_fn)
        rows = [{"step": s + 1, **to_numpy_metrics(trainer.train_step(next(stream)))} for s in range(steps)]
        (folder / f"ours_losses_rep{rep}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        np.savez(folder / f"ours_params_rep{rep}.npz", **_flat(trainer.params))
        print(f"rep {rep}: mean loss of the last 10 steps {np.mean([r['loss'] for r in rows[-10:]]):.4f}", flush=True)


def _family(name: str) -> str:
    if name.startswith("transformer_model/embeddings"):
        return "embeddings"
    parts = name.split("/")
    return parts[0] if parts[0] != "transformer_model" else f"layer {parts[3]} " + "/".join(parts[4:6])


def compare(out: Path, tag: str, steps: int, schedule_steps: int, next_batches: int) -> dict:
    import jax
    from flax import nnx

    from relik_jax.reader.convert import load_reader
    from relik_jax.reader.losses import loss_fn

    def reader_params(folder: Path) -> dict[str, np.ndarray]:
        return _flat(nnx.state(load_reader(folder)[1], nnx.Param))

    init = reader_params(out / "lockstep" / "init_reader_lockstep")
    ref_folders = sorted((out / "lockstep").glob(f"final_reader_{tag}*"))
    ours_files = sorted((out / "dynamics").glob("ours_params_rep*.npz"))
    if len(ref_folders) < 3 or len(ours_files) < 3:
        raise FileNotFoundError(f"need >= 3 replicates per side: {len(ref_folders)} reference "
                                f"({out}/lockstep/final_reader_{tag}*), {len(ours_files)} ours ({out}/dynamics)")
    sides = {"reference": [reader_params(f) for f in ref_folders],
             "ours": [{k: z[k] for k in z.files} for z in map(np.load, ours_files)]}
    fam: dict[str, np.ndarray] = {}  # family -> [|mean diff|^2, |mean ref displacement|^2, noise, var ours, var ref]
    for k in init:
        if k.endswith("attention/self/key/bias"):  # zero gradient: moves by Adam-amplified rounding noise
            continue
        dr = np.stack([w[k] - init[k] for w in sides["reference"]])
        do = np.stack([w[k] - init[k] for w in sides["ours"]])
        vr, vo = dr.var(0, ddof=1).sum(), do.var(0, ddof=1).sum()
        fam.setdefault(_family(k), np.zeros(5))[:] += [((do.mean(0) - dr.mean(0)) ** 2).sum(),
                                                       (dr.mean(0) ** 2).sum(), vr / len(dr) + vo / len(do), vo, vr]
    families = {name: {"mean_distance_over_noise": float(d2 / noise), "displacement_over_noise": float(m2 / noise),
                       "variance_ratio_ours_over_reference": float(vo / vr)}
                for name, (d2, m2, noise, vo, vr) in sorted(fam.items())}

    # eval-mode losses of each replicate's weights on the batches after step K (our forward for both sides)
    _, model, stream = _setup(out, schedule_steps)
    batches = [next(stream) for _ in range(steps + next_batches)][steps:]
    model.eval()
    forward = nnx.jit(loss_fn)
    losses: dict[str, list[dict[str, float]]] = {}
    for side, reps in sides.items():
        losses[side] = []
        for w in reps:
            for path, v in nnx.state(model, nnx.Param).flat_state():
                v.set_value(jax.numpy.asarray(w["/".join(map(str, path)).removesuffix("/value")]))
            vals = [forward(model, b) for b in batches]
            losses[side].append({p: float(np.mean([v[0] if p == "loss" else v[1][p] for v in vals])) for p in PARTS})
    from scipy import stats

    eval_summary = {}
    for p in PARTS:
        r = [x[p] for x in losses["reference"]]
        o = [x[p] for x in losses["ours"]]
        eval_summary[p] = {"reference": r, "ours": o, "reference_median": float(np.median(r)),
                           "ours_median": float(np.median(o)),
                           "mann_whitney_p": float(stats.mannwhitneyu(o, r).pvalue)}
    result = {"steps": steps, "schedule_steps": schedule_steps, "replicates": {k: len(v) for k, v in sides.items()},
              "families": families, "eval_losses_next_batches": next_batches, "eval_losses": eval_summary}
    print(f"{'family':34s} {'|mean diff|^2/noise':>19s} {'|displacement|^2/noise':>22s} {'var ours/ref':>12s}")
    for name, f in families.items():
        print(f"{name:34s} {f['mean_distance_over_noise']:19.2f} {f['displacement_over_noise']:22.1f} "
              f"{f['variance_ratio_ours_over_reference']:12.2f}")
    print(f"eval-mode losses at step {steps} on the next {next_batches} batches (median over replicates):")
    for p, v in eval_summary.items():
        print(f"  {p:15s} reference {v['reference_median']:.4f}  ours {v['ours_median']:.4f}  "
              f"(Mann-Whitney p {v['mann_whitney_p']:.2f})")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=("ours", "compare"))
    p.add_argument("--out", type=Path, required=True, help="the companion's export folder (with lockstep/)")
    p.add_argument("--reps", default="0,1,2,3,4,5")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--schedule-steps", type=int, default=500)
    p.add_argument("--tag", default="dyn", help="reference replicate folders: DIR/lockstep/final_reader_<tag>*")
    p.add_argument("--next-batches", type=int, default=5)
    p.add_argument("--results", type=Path, default=RESULTS / "dropout_dynamics_conll04.json")
    a = p.parse_args()
    sys.path.insert(0, str(HERE))
    if a.step == "ours":
        ours(a.out, [int(r) for r in a.reps.split(",")], a.steps, a.schedule_steps)
    else:
        res = compare(a.out, a.tag, a.steps, a.schedule_steps, a.next_batches)
        a.results.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {a.results}")


if __name__ == "__main__":
    main()
