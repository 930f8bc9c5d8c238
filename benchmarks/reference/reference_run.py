"""`speed.py --reference`: the relik 1.0.7 PyTorch reader timed on the same windows, weights and device.

For each fp32 reader row of the run, this writes a case folder (our random backbone as a Hugging Face DeBERTa
folder plus the full resized weights, the padded batches of both batching policies), runs
`benchmarks/reference/reference_speed.py` under the reference venv, checks that the reference backbone computes what
ours computes on the first batch, and attaches the reference times to the row. The reference venv is built by
`tests/reference/build_env.sh` at $RELIK_REFERENCE_VENV (default ~/.cache/relik-jax/venv-reference).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from benchmarks import models, workloads
from relik_jax import paths
from relik_jax.io import hf_io

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REFERENCE_TIMEOUT_S = 1800


def venv_python() -> Path:
    venv = Path(os.environ.get("RELIK_REFERENCE_VENV", paths.CACHE / "venv-reference"))
    python = venv / "bin" / "python"
    if not python.is_file():
        raise FileNotFoundError(
            f"reference venv not found at {venv}: build it with `bash tests/reference/build_env.sh` "
            "(or set RELIK_REFERENCE_VENV)")
    return python


def write_case(folder: Path, task: str, model, cfg, batches: dict[str, list[workloads.Batch]], start_rate: float,
               repeats: int) -> None:
    """`model`: our reader (full weights) or a bare DebertaV2Model (backbone only; relik keeps random heads)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    full = hasattr(model, "transformer_model")
    weights = hf_io.to_state_dict(model)
    prefix = "transformer_model."
    state = ({k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)} if full
             else dict(weights))
    # A base-model folder with the original 128100-row vocabulary: relik resizes it by its symbol count (as it does
    # with microsoft/deberta-v3-*), then weights.safetensors overwrites everything with our resized tensors.
    base_cfg = cfg.to_dict() | {"vocab_size": 128100}
    base = dict(state)
    base["embeddings.word_embeddings.weight"] = state["embeddings.word_embeddings.weight"][:128100]
    from safetensors.numpy import save_file

    (folder / "backbone").mkdir()
    (folder / "backbone" / "config.json").write_text(json.dumps(base_cfg, indent=1))
    save_file(base, str(folder / "backbone" / "model.safetensors"), metadata={"format": "pt"})
    save_file(weights if full else {prefix + k: v for k, v in state.items()}, str(folder / "weights.safetensors"))
    arrays = {f"{policy}/{i}/{k}": v for policy, bs in batches.items() for i, b in enumerate(bs)
              for k, v in b.arrays().items()}
    np.savez(folder / "batches.npz", **arrays)
    (folder / "case.json").write_text(json.dumps({"task": task, "repeats": repeats, "start_rate": start_rate,
                                                  "policies": list(batches), "full_weights": full}))


def compare(results: list[dict], wls: dict, samples: dict, preset, device: jax.Device,
            log: Callable[[str], None]) -> str:
    """Run the reference on every fp32 main reader row; returns the printed summary (markdown)."""
    try:
        python = venv_python()
    except FileNotFoundError as e:
        log(f"--reference: {e}")
        return f"\n**Reference not run**: {e}\n"
    rows_done, lines = [], []
    for r in results:
        if r["part"] != "reader" or r["dtype"] != "fp32" or not r.get("main"):
            continue
        w = wls[r["workload"]]
        cfg = models.reader_config(r["model"], w.task, preset.layers)
        rows = w.rows(r["k"], indices=samples[w.name], k_relations=20)
        ours = (workloads.single_batch(rows, w.task, preset.multiple) if preset.single_batch else
                workloads.bucket_batches(rows, w.task, preset.token_budget, preset.max_batch, preset.multiple))
        ref = workloads.reference_batches(rows, w.task)
        start_rate = sum(x.mentions for x in rows) / max(sum(x.text_len - 2 for x in rows), 1)
        reader = None
        if r["measured"] == "reader":  # the same weights (and calibration) as the timed row
            from relik_jax.engine.buckets import Buckets
            from relik_jax.reader.reader import Reader

            rcfg, model = models.random_reader(r["model"], w.task, preset.layers, "fp32")
            reader = Reader(rcfg, model, workloads.reader_tokenizer(w.task), use_nme=w.task != "re",
                            buckets=Buckets(token_budget=preset.token_budget, max_rows=preset.max_batch))
            models.calibrate_reader(reader, w.task, ours[0], start_rate)
            backbone = model.transformer_model
        else:
            model = backbone = models.random_model(cfg, "fp32")
        folder = paths.CACHE / "bench-reference" / f"{w.name}-{r['model']}-k{r['k']}"
        write_case(folder, w.task, model, cfg, {"ours": ours, "reference": ref}, start_rate, preset.repeats)
        log(f"reference: {w.name} {r['model']} K={r['k']} ({len(ref)} reference batches, {len(ours)} ours)")
        try:
            proc = subprocess.run([str(python), str(HERE / "reference_speed.py"), str(folder)],
                                  capture_output=True, text=True, timeout=REFERENCE_TIMEOUT_S,
                                  env={**os.environ, "PYTHONPATH": ""})
        except subprocess.TimeoutExpired:
            log(f"reference timed out after {REFERENCE_TIMEOUT_S} s")
            continue
        if proc.returncode != 0:
            log(f"reference failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
            continue
        res = json.loads((folder / "result.json").read_text())
        # The weight files are hundreds of MB per case; keep only inputs, results and the parity tensor.
        shutil.rmtree(folder / "backbone", ignore_errors=True)
        (folder / "weights.safetensors").unlink(missing_ok=True)
        # Parity: our backbone on the first batch vs the reference backbone, on real (unpadded) positions.
        b0 = ours[0]
        ours_h = np.asarray(backbone(jax.numpy.asarray(b0.input_ids), jax.numpy.asarray(b0.attention_mask)))
        ref_h = np.load(folder / "hidden.npz")["hidden"]
        m = b0.attention_mask.astype(bool)
        diff = float(np.abs(ours_h[m] - ref_h[m]).max())
        agree = compare_predictions(reader, rows, b0, w.task, folder / "preds.npz") if reader else None
        ours_bb = time_backbone(backbone, ours, device, preset.repeats)
        bb = res["backbone"]
        rd = res.get("reader", {})
        r["reference"] = {
            "time_s": bb["reference"]["time_s"], "time_same_batches_s": bb["ours"]["time_s"],
            "reader_time_s": rd.get("reference", {}).get("time_s"),
            "reader_starts_per_pass": rd.get("reference", {}).get("predicted_starts_per_pass"),
            "batches": len(ref), "padding_efficiency": workloads.padding_efficiency(ref, rows),
            "ours_backbone_s": ours_bb, "backbone_max_abs_diff": diff, "predictions": agree,
            "torch": res["torch"], "threads": res["threads"],
            "calibration": res.get("calibration"),
        }
        ref_t = rd["reference"]["time_s"] if reader and rd.get("reference") else bb["reference"]["time_s"]
        r["ref_est_full_s"] = ref_t * r["est_full_s"] / r["time_s"]
        rows_done.append(r)
        name = w.name.upper() if w.name != "rebel" else "REBEL"
        ours_bb = r["reference"]["ours_backbone_s"]
        ref_reader = rd.get("reference", {}).get("time_s")
        ours_reader = r["time_s"] if r["measured"] == "reader" else None
        lines.append(
            f"| {name} | {r['model']} {r['layers_run']}/{r['layers_full']}L | {r['k']} | {r['windows_run']} "
            f"| {ours_bb:.3g} | {bb['ours']['time_s']:.3g} | **{ours_bb / bb['ours']['time_s']:.2f}** "
            f"| {bb['reference']['time_s']:.3g} | {ours_bb / bb['reference']['time_s']:.2f} "
            f"| {_fmt(ours_reader)} | {_fmt(ref_reader)} "
            f"| {'**' + format(ours_reader / ref_reader, '.2f') + '**' if ours_reader and ref_reader else '—'} "
            f"| {diff:.1e} | {_agree(agree)} |")
    if not rows_done:
        return "\n**Reference**: no fp32 reader row could be compared (see the log above).\n"
    head = ("\n### Ours vs the relik 1.0.7 reference (PyTorch {}, {} threads, same device, fp32, same weights)\n\n"
            "| workload | model | K | windows | ours backbone s | ref backbone s (same batches) | ours/ref "
            "| ref backbone s (its batching) | ours/ref | ours reader s | ref reader s (its batching) | ours/ref "
            "| max abs diff hidden | same predictions |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|").format(
        rows_done[0]["reference"]["torch"], rows_done[0]["reference"]["threads"])
    tail = ("\nReference batching = its greedy 2048-token batches in input order (§1.5); ours = the batches of the "
            "timed row. Reader = backbone + heads (`RelikReaderSpanModel` / `RelikReaderREModel`; ours: "
            "`relik_jax.reader.reader.Reader`), both with our random weights whose start/end biases are shifted to "
            "predict about the gold number of mentions; same predictions = identical start positions (RE: starts "
            "that keep an end) and, for EL, identical linked symbols, per row of the first batch.\n")
    return head + "\n" + "\n".join(lines) + "\n" + tail


def time_backbone(backbone, batches: list[workloads.Batch], device: jax.Device, repeats: int) -> float:
    """Our DeBERTa backbone alone on `batches` (median of `repeats` passes after a compiling pass)."""
    import statistics
    import time

    from relik_jax.engine.compiled import CompiledForward

    fwd = CompiledForward(backbone, lambda m, ids, mask: m(ids, mask))
    inputs = [(jax.device_put(b.input_ids, device), jax.device_put(b.attention_mask, device)) for b in batches]
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        jax.block_until_ready([fwd(*x) for x in inputs])
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def compare_predictions(reader, rows: list[workloads.Row], b0: workloads.Batch, task: str, path: Path) -> dict:
    """Our reader vs the reference on the first batch: start positions per row (RE: starts that kept an end),
    and for EL the linked symbol of every mention."""
    ref = np.load(path)
    outs = models.run_batch(reader, workloads.reader_rows([rows[i] for i in b0.rows], task), b0.shape[1],
                            b0.shape[0])
    same_starts = same_ed = 0
    for b, out in enumerate(outs):
        starts = out["starts"] if task == "el" else out["starts"][out["end_pred"].any(1)]
        ref_starts = np.flatnonzero(ref["starts"][b])
        same_starts += int(sorted(starts.tolist()) == ref_starts.tolist())
        if task == "el" and "ed" in ref.files:
            m = len(out["ed_pred"])
            same_ed += int(np.array_equal(out["ed_pred"], ref["ed"][b, :m]))
    res = {"rows": len(outs), "same_starts": same_starts}
    if task == "el":
        res["same_links"] = same_ed
    return res


def _agree(a: dict | None) -> str:
    if not a:
        return "—"
    s = f"starts {a['same_starts']}/{a['rows']} rows"
    return s + (f", links {a['same_links']}/{a['rows']}" if "same_links" in a else "")


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"
