"""CoNLL04 lockstep report (issue #5): how far apart do two training runs drift when everything random is shared?

Reads the run files in results/ next to this script, written by the lockstep runs (this study's README.md,
"Lockstep"): ours and the reference package trained from the same initial weights on the same batches with dropout
off, plus copies of those runs whose initial weights were jittered by 1e-7 (float32 rounding; the companion's
`perturb` step). Prints, for each pair of runs, the relative difference of their 10-step mean training losses
over the run and the test F1 of each run; writes results/lockstep_conll04.json and a plot.

    python benchmarks/studies/conll04_parity/lockstep_report.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = {  # name -> (kind, file stem)
    "ours": ("ours", "ours_conll04_lockstep"),
    "ours_p1": ("ours", "ours_conll04_lockstep_p1"),
    "ours_p2": ("ours", "ours_conll04_lockstep_p2"),
    "reference": ("reference", "reference_train_conll04_lockstep"),
    "reference_p1": ("reference", "reference_train_conll04_lockstep_p1"),
    "reference_p2": ("reference", "reference_train_conll04_lockstep_p2"),
}
PAIRS = [("ours", "reference", "same init, ours vs reference"),
         ("ours", "ours_p1", "ours vs ours, init jittered 1e-7"),
         ("ours", "ours_p2", "ours vs ours, init jittered 1e-7 (other draw)"),
         ("reference", "reference_p1", "reference vs reference, init jittered 1e-7"),
         ("reference", "reference_p2", "reference vs reference, init jittered 1e-7 (other draw)"),
         ("ours_p1", "reference_p1", "same jittered init, ours vs reference"),
         ("ours_p2", "reference_p2", "same jittered init (other draw), ours vs reference")]
STEPS = [10, 20, 30, 40, 50, 60, 70, 80, 100, 150, 200, 300, 400, 500]


def load(kind: str, stem: str) -> dict | None:
    """10-step mean losses {step: loss} and test / dev F1 of one run, or None when its files are missing."""
    if kind == "ours":
        metrics, results = RESULTS / f"{stem}_metrics.jsonl", RESULTS / f"{stem}_results.json"
        if not (metrics.is_file() and results.is_file()):
            return None
        rows = [json.loads(x) for x in metrics.read_text().splitlines()]
        losses = {r["step"]: r["loss"] for r in rows if "loss" in r}
        res = json.loads(results.read_text())
        return {"losses": losses, "test_f1": res["test"]["f1"], "test_strict_f1": res["test"]["strict_f1"],
                "dev_f1": res["threshold_tuning"]["dev"]["f1"], "threshold": res["threshold_tuning"]["threshold"]}
    per_step, results = RESULTS / f"{stem}_losses.jsonl", RESULTS / f"{stem}.json"
    if not (per_step.is_file() and results.is_file()):
        return None
    rows = [json.loads(x) for x in per_step.read_text().splitlines()]
    losses = {s: float(np.mean([r["loss"] for r in rows if s - 10 < r["step"] <= s]))
              for s in range(10, rows[-1]["step"] + 1, 10)}
    res = json.loads(results.read_text())
    return {"losses": losses, "test_f1": res["test"]["f1"], "test_strict_f1": res["test"]["strict_f1"],
            "dev_f1": res["dev"]["f1"], "threshold": res["threshold"]}


def main() -> None:
    runs = {name: load(*spec) for name, spec in RUNS.items()}
    missing = [n for n, r in runs.items() if r is None]
    runs = {n: r for n, r in runs.items() if r is not None}
    pairs = {}
    for a, b, what in PAIRS:
        if a in runs and b in runs:
            la, lb = runs[a]["losses"], runs[b]["losses"]
            pairs[f"{a} / {b}"] = {"what": what, "rel_loss_diff": {s: abs(la[s] - lb[s]) / lb[s] for s in STEPS},
                                   "test_f1_diff": 100 * (runs[a]["test_f1"] - runs[b]["test_f1"])}
    print("relative difference of the 10-step mean training loss, by step")
    print(f"{'pair':28s} " + " ".join(f"{s:>7d}" for s in STEPS) + "   test F1 a - b")
    for name, p in pairs.items():
        print(f"{name:28s} " + " ".join(f"{p['rel_loss_diff'][s]:7.0e}" for s in STEPS)
              + f"   {p['test_f1_diff']:+.1f}")
    print("\nrun            test F1 (boundaries / strict)   dev F1 (threshold)")
    for name, r in runs.items():
        print(f"{name:14s} {100 * r['test_f1']:6.2f} / {100 * r['test_strict_f1']:6.2f}"
              f"              {100 * r['dev_f1']:6.2f} ({r['threshold']})")
    means = {}
    for kind in ("ours", "reference"):
        f1 = [100 * r["test_f1"] for n, r in runs.items() if RUNS[n][0] == kind]
        if f1:
            means[kind] = {"n": len(f1), "mean": float(np.mean(f1)),
                           "sd": float(np.std(f1, ddof=1)) if len(f1) > 1 else None}
            print(f"{kind}: test F1 over {len(f1)} lockstep runs {means[kind]['mean']:.2f}"
                  + (f" +- {means[kind]['sd']:.2f}" if len(f1) > 1 else ""))
    if missing:
        print(f"\nnot run yet: {', '.join(missing)}")
    out = {"runs": {n: {k: v for k, v in r.items() if k != "losses"} for n, r in runs.items()},
           "pairs": pairs, "test_f1_means": means, "missing": missing}
    (RESULTS / "lockstep_conll04.json").write_text(json.dumps(out, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for a, b, what in PAIRS:
        if f"{a} / {b}" in pairs:
            la, lb = runs[a]["losses"], runs[b]["losses"]
            ax.semilogy(sorted(la), [abs(la[s] - lb[s]) / lb[s] + 1e-9 for s in sorted(la)], label=what)
    ax.set_xlabel("training step")
    ax.set_ylabel("relative difference of 10-step mean loss")
    ax.set_title("CoNLL04 lockstep: shared init, batches, no dropout")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "lockstep_conll04.png", dpi=100)
    print(f"\nwrote {RESULTS / 'lockstep_conll04.json'} and lockstep_conll04.png")


if __name__ == "__main__":
    main()
