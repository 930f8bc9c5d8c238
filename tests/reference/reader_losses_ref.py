"""Training losses of a reference reader on one labelled batch (runs ONLY under the reference venv).

    <venv-reference>/bin/python tests/reference/reader_losses_ref.py READER_DIR BATCH.npz [READER_DIR BATCH.npz ...]

READER_DIR is a reference reader folder (its `transformer_model` is resolved against the working directory, so run
with cwd = the fixture root). BATCH.npz holds the model's forward keyword arguments (input_ids, attention_mask,
token_type_ids, prediction_mask, special_symbols_mask[, special_symbols_mask_entities], start_labels, end_labels
[, relation_labels, disambiguation_labels]) in the reference's own label format. The model runs its training
branch (teacher forcing on the labels) with all dropout off; the loss terms of each pair are printed as one JSON list.
Used by tests/test_reader_losses.py; reference code is only called, never copied.
"""

import json
import os
import sys
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from relik.reader.pytorch_modules.hf.configuration_relik import RelikReaderConfig  # noqa: E402
from relik.reader.pytorch_modules.hf.modeling_relik import RelikReaderREModel, RelikReaderSpanModel  # noqa: E402
from transformers import AutoConfig  # noqa: E402


def losses(reader_dir: str, batch_path: str) -> dict[str, float]:
    config = RelikReaderConfig.from_pretrained(reader_dir)
    cls = RelikReaderSpanModel if config.architectures[0] == "RelikReaderSpanModel" else RelikReaderREModel
    model = cls.from_pretrained(reader_dir, config=config)
    # Training branch of the top-level forward (it tests `self.training`) with every sub-module in eval mode, so no
    # dropout (DeBERTa's StableDropout included) is active.
    model.eval()
    model.training = True
    arrays = dict(np.load(batch_path))
    kwargs = {}
    for k, v in arrays.items():
        t = torch.from_numpy(v)
        kwargs[k] = t.bool() if "special_symbols_mask" in k else t
    if cls is RelikReaderREModel:
        kwargs["is_prediction"] = False
    with torch.no_grad():
        out = model(**kwargs)
    return {k: float(v) for k, v in out.items() if k.endswith("loss") and v is not None}


def main() -> None:
    AutoConfig.register("relik-reader", RelikReaderConfig, exist_ok=True)
    args = sys.argv[1:]
    print(json.dumps([losses(args[i], args[i + 1]) for i in range(0, len(args), 2)]))


if __name__ == "__main__":
    main()
