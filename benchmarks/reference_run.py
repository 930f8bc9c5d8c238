"""`speed.py --reference`: the relik 1.0.7 PyTorch reader timed on the same windows, weights and device.

For each fp32 reader row of the run, this writes a case folder (our random backbone as a Hugging Face DeBERTa
folder plus the full resized weights, the padded batches of both batching policies), runs
`benchmarks/reference_speed.py` under the reference venv, checks that the reference backbone computes what ours
computes on the first batch, and attaches the reference times to the row. The reference venv is built by
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
from relik_jax import hf_io, paths

ROOT = Path(__file__).resolve().parents[1]
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
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    state = hf_io.to_state_dict(model)
    # A base-model folder with the original 128100-row vocabulary: relik resizes it by its symbol count (as it does
    # with microsoft/deberta-v3-*), then weights.safetensors overwrites everything with our resized tensors.
    base_cfg = cfg.to_dict() | {"vocab_size": 128100}
    base = dict(state)
    base["embeddings.word_embeddings.weight"] = state["embeddings.word_embeddings.weight"][:128100]
    from safetensors.numpy import save_file

    (folder / "backbone").mkdir()
    (folder / "backbone" / "config.json").write_text(json.dumps(base_cfg, indent=1))
    save_file(base, str(folder / "backbone" / "model.safetensors"), metadata={"format": "pt"})
    save_file({f"transformer_model.{k}": v for k, v in state.items()}, str(folder / "weights.safetensors"))
    arrays = {f"{policy}/{i}/{k}": v for policy, bs in batches.items() for i, b in enumerate(bs)
              for k, v in b.arrays().items()}
    np.savez(folder / "batches.npz", **arrays)
    (folder / "case.json").write_text(json.dumps({"task": task, "repeats": repeats, "start_rate": start_rate,
                                                  "policies": list(batches)}))


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
        model = models.random_model(cfg, "fp32")
        rows = w.rows(r["k"], indices=samples[w.name], k_relations=20)
        ours = (workloads.single_batch(rows, w.task, preset.multiple) if preset.single_batch else
                workloads.bucket_batches(rows, w.task, preset.token_budget, preset.max_batch, preset.multiple))
        ref = workloads.reference_batches(rows, w.task)
        start_rate = sum(x.mentions for x in rows) / sum(x.text_len - 2 for x in rows)
        folder = paths.CACHE / "bench-reference" / f"{w.name}-{r['model']}-k{r['k']}"
        write_case(folder, w.task, model, cfg, {"ours": ours, "reference": ref}, start_rate, preset.repeats)
        log(f"reference: {w.name} {r['model']} K={r['k']} ({len(ref)} reference batches, {len(ours)} ours)")
        try:
            proc = subprocess.run([str(python), str(ROOT / "benchmarks" / "reference_speed.py"), str(folder)],
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
        ours_h = np.asarray(model(jax.numpy.asarray(b0.input_ids), jax.numpy.asarray(b0.attention_mask)))
        ref_h = np.load(folder / "hidden.npz")["hidden"]
        m = b0.attention_mask.astype(bool)
        diff = float(np.abs(ours_h[m] - ref_h[m]).max())
        bb = res["backbone"]
        rd = res.get("reader", {})
        r["reference"] = {
            "time_s": bb["reference"]["time_s"], "time_same_batches_s": bb["ours"]["time_s"],
            "reader_time_s": rd.get("reference", {}).get("time_s"),
            "reader_starts_per_pass": rd.get("reference", {}).get("predicted_starts_per_pass"),
            "batches": len(ref), "padding_efficiency": workloads.padding_efficiency(ref, rows),
            "backbone_max_abs_diff": diff, "torch": res["torch"], "threads": res["threads"],
            "calibration": res.get("calibration"),
        }
        r["ref_est_full_s"] = bb["reference"]["time_s"] * r["est_full_s"] / r["time_s"]
        rows_done.append(r)
        name = w.name.upper() if w.name != "rebel" else "REBEL"
        lines.append(
            f"| {name} | {r['model']} {r['layers_run']}/{r['layers_full']}L "
            f"| {r['k']} | {r['windows_run']} | {r['time_s']:.3g} | {bb['reference']['time_s']:.3g} "
            f"| **{r['time_s'] / bb['reference']['time_s']:.2f}** | {bb['ours']['time_s']:.3g} "
            f"| {r['time_s'] / bb['ours']['time_s']:.2f} "
            f"| {_fmt(rd.get('reference', {}).get('time_s'))} | {diff:.1e} |")
    if not rows_done:
        return "\n**Reference**: no fp32 reader row could be compared (see the log above).\n"
    head = ("\n### Ours vs the relik 1.0.7 reference (PyTorch {}, {} threads, same device, fp32, same random "
            "weights)\n\n| workload | model | K | windows | ours s (backbone) | reference s (backbone, its batching) "
            "| ours/ref | reference s (backbone, our batches) | ours/ref (same batches) | reference s (full reader) "
            "| max abs diff hidden |\n|---|---|---|---|---|---|---|---|---|---|---|").format(
        rows_done[0]["reference"]["torch"], rows_done[0]["reference"]["threads"])
    tail = ("\nReference batching = its greedy 2048-token batches in input order (§1.5); ours = length buckets. "
            "Full reader = backbone + heads of `RelikReaderSpanModel`/`RelikReaderREModel` with random heads whose "
            "start/end biases are shifted to predict about the gold number of mentions.\n")
    return head + "\n" + "\n".join(lines) + "\n" + tail


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"
