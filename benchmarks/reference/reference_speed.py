"""Times the relik 1.0.7 PyTorch reader on batches written by `benchmarks/speed.py --reference`.

Runs under the reference venv (tests/reference/build_env.sh; torch, transformers 4.41, relik 1.0.7), never
under the JAX one. Input folder (written by benchmarks/reference/reference_run.py):
    backbone/            config.json + model.safetensors: the DeBERTa backbone (vocab 128100, as a base model)
    weights.safetensors  `transformer_model.*` tensors of our random model (resized vocabulary included)
    batches.npz          `<policy>/<i>/<field>` arrays; policies "ours" (our buckets) and "reference"
                         (the reference's own greedy 2048-token batches)
    case.json            task, symbol counts, target start rate, repeats
Output: result.json (median seconds per policy for the backbone and for the full reader, predictions summary) and
hidden.npz (backbone output of ours/0, for the parity check on the JAX side).

Heads: the reference builds them with its own random init. With random heads about half of all text tokens would
be predicted as mention starts (and, for RE, half of the later positions as ends), which makes the span heads far
costlier than on real models; the start (and RE end) classifier biases are therefore shifted so that the predicted
start rate matches the gold mentions per token of the workload and each start gets about one end.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def load_batches(path: Path) -> dict[str, list[dict[str, torch.Tensor]]]:
    data = np.load(path)
    out: dict[str, dict[int, dict[str, torch.Tensor]]] = {}
    for key in data.files:
        policy, i, field = key.split("/")
        arr = torch.from_numpy(data[key])
        if field in ("input_ids", "attention_mask", "token_type_ids", "prediction_mask"):
            arr = arr.long()
        else:
            arr = arr.bool()
        out.setdefault(policy, {}).setdefault(int(i), {})[field] = arr
    return {p: [b[i] for i in sorted(b)] for p, b in out.items()}


def build(folder: Path, case: dict):
    from relik.reader.pytorch_modules.hf.configuration_relik import RelikReaderConfig
    from relik.reader.pytorch_modules.hf.modeling_relik import RelikReaderREModel, RelikReaderSpanModel

    torch.manual_seed(0)
    backbone = str(folder / "backbone")
    if case["task"] == "el":
        cfg = RelikReaderConfig(transformer_model=backbone, additional_special_symbols=101)
        model = RelikReaderSpanModel(cfg)
    elif case["task"] == "re":
        cfg = RelikReaderConfig(transformer_model=backbone, additional_special_symbols=24)
        model = RelikReaderREModel(cfg)
    else:
        cfg = RelikReaderConfig(transformer_model=backbone, additional_special_symbols=25,
                                additional_special_symbols_types=76, entity_type_loss=True, add_entity_embedding=True)
        model = RelikReaderREModel(cfg)
    weights = load_file(str(folder / "weights.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected:
        raise SystemExit(f"unexpected tensors for the reference model: {unexpected[:3]}")
    # With our full reader's weights nothing may be missing; with a backbone only, the heads keep relik's init.
    need = missing if case.get("full_weights") else [k for k in missing if k.startswith("transformer_model.")]
    if need:
        raise SystemExit(f"tensors missing from weights.safetensors: {need[:3]}")
    return model.eval()


def reader_kwargs(task: str, b: dict[str, torch.Tensor]) -> dict:
    kw = {k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids", "prediction_mask",
                            "special_symbols_mask")}
    if task != "el":
        kw["is_prediction"] = True
        if task == "cie":
            kw["special_symbols_mask_entities"] = b["special_symbols_mask_entities"]
    return kw


@torch.inference_mode()
def calibrate(model, task: str, batch: dict[str, torch.Tensor], start_rate: float) -> dict:
    """Shift head biases so that random heads predict realistic numbers of starts (and RE ends)."""
    feats = model._get_model_features(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    text = (batch["prediction_mask"] == 0) & (batch["attention_mask"] > 0)
    logits = model.ned_start_classifier(feats)
    diff = (logits[..., 1] - logits[..., 0])[text]
    shift = torch.quantile(diff.float(), 1.0 - start_rate)
    model.ned_start_classifier[4].bias.data[1] -= shift
    info = {"start_shift": float(shift)}
    if task != "el":
        captured = {}
        handle = model.ned_end_classifier.register_forward_hook(lambda m, i, o: captured.setdefault("end", o))
        model(**reader_kwargs(task, batch))
        handle.remove()
        end = captured.get("end")
        if end is not None and end.numel():
            d = (end[..., 1] - end[..., 0])[end[..., 1] > -1e20]  # masked positions have -1e30 in both classes
            per_start = max(d.numel() / max(end.shape[0], 1), 1.0)
            shift_end = torch.quantile(d.float(), 1.0 - 1.0 / per_start)
            model.ned_end_classifier.dense_1.bias.data[1] -= shift_end
            info["end_shift"] = float(shift_end)
    return info


@torch.inference_mode()
def time_pass(fn, batches, repeats: int) -> tuple[float, list[float]]:
    def one() -> float:
        t = time.perf_counter()
        for b in batches:
            fn(b)
        return time.perf_counter() - t
    first = one()
    return first, [one() for _ in range(repeats)]


def main(folder: str) -> int:
    folder = Path(folder)
    case = json.loads((folder / "case.json").read_text())
    torch.set_num_threads(case.get("threads") or torch.get_num_threads())
    model = build(folder, case)
    batches = load_batches(folder / "batches.npz")
    task, repeats = case["task"], case["repeats"]
    with torch.inference_mode():
        b0 = batches["ours"][0]
        hidden = model.transformer_model(input_ids=b0["input_ids"], attention_mask=b0["attention_mask"])[0]
    np.savez(folder / "hidden.npz", hidden=hidden.float().numpy())
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "backbone": {}, "reader": {}}

    def backbone(b):
        return model.transformer_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])[0]

    for policy in case["policies"]:
        first, steady = time_pass(backbone, batches[policy], repeats)
        result["backbone"][policy] = {"first_s": first, "steady_s": steady, "time_s": statistics.median(steady)}
    if case.get("reader", True):
        if not case.get("full_weights"):  # random relik heads: calibrate them here
            result["calibration"] = calibrate(model, task, batches["ours"][0], case["start_rate"])
        with torch.inference_mode():  # predictions on the first batch, for the JAX side's comparison
            out = model(**reader_kwargs(task, batches["ours"][0]))
        preds = {"starts": (out["ned_start_predictions"] > 0).numpy()}
        if task == "el" and torch.is_tensor(out.get("ed_predictions")):
            preds["ed"] = out["ed_predictions"].numpy()
        np.savez(folder / "preds.npz", **preds)
        starts = []

        def reader(b):
            out = model(**reader_kwargs(task, b))
            key = "ned_start_predictions"
            if key in out and torch.is_tensor(out[key]):
                starts.append(int((out[key] > 0).sum()))
            return out

        for policy in case.get("reader_policies", ["reference"]):  # the full reader: its own batching only
            starts.clear()
            first, steady = time_pass(reader, batches[policy], repeats)
            result["reader"][policy] = {"first_s": first, "steady_s": steady, "time_s": statistics.median(steady),
                                        "predicted_starts_per_pass": (sum(starts) // (repeats + 1)) if starts else None}
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "calibration"}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: reference_speed.py <case folder written by benchmarks/reference/reference_run.py>")
    sys.exit(main(sys.argv[1]))
