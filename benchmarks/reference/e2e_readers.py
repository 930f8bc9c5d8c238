"""Random-init reader folders written by the reference package (relik 1.0.7) for `benchmarks/e2e.py`.

Runs ONLY under the reference venv (`tests/reference/build_env.sh`); never imports relik_jax. Imported by
`e2e_reference.py`; the readers it builds are what both pipelines load (ours through `Reader.from_folder`).

Per reader, from a JSON spec written by `benchmarks/e2e.py`:
- a unigram sentencepiece model laid out like DeBERTa-v3's ([PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3, [MASK] added after the
  pieces), trained on real text (AIDA train documents + NYT dev sentences, never the timed texts);
- a random DeBERTa-v3-style backbone (relative attention, 256 position buckets, p2c+c2p, no absolute positions) of
  the spec's depth / width / `init_range`, seeded, LayerNorms perturbed as in the parity fixtures. The init range
  decides whether two fp32 implementations can agree at all (measured on 120 random tokens, fp32 vs fp64 of the
  reference itself, last layer): 3 layers / hidden 192 at the fixtures' 0.2: 1e-4, tokens well mixed (mean cosine
  0.7; with 0.02 states stay ~the embeddings: repeated words tie); 12 layers / hidden 768 at 0.2: 0.34, chaotic
  (the error grows ~2.5× per layer), at 0.04-0.08 every token collapses to one state, at DeBERTa's 0.02: 3e-6 and
  mean cosine 0.47. e2e.py uses 0.2 and 0.02;
- `RelikReaderForSpanExtraction` (EL, softmax ends as the hub EL readers) or `RelikReaderForTripletExtraction`
  (RE; cIE = with entity-type symbols and `use_nme`), heads calibrated as the parity fixtures' readers
  (`make_fixtures.calibrate_reader`) to the gold mention rate of the spec's calibration documents (`calibrate`),
  saved with the reference's own `save_pretrained`.

Layout: `<cache>/spm-<hash>/spm.model` (shared by the readers of one corpus) and `<cache>/<reader name>-<spec
hash>/` with the reader (`reader/`, `transformer_model` = "backbone", i.e. relative to the reader's parent, where
our converter looks too; the reference resolves it against the working directory, so load it with cwd = that
folder), `backbone/` (HF DebertaV2Model + tokenizer) and `build.json` (spec, calibration, timings).
`<cache>` = ~/.cache/relik-jax/e2e/<hash of this file and make_fixtures.py>, so editing either rebuilds
everything; a `COMPLETE` file marks a finished folder, a lock file beside it serialises concurrent builders.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MAKE_FIXTURES = HERE.parents[1] / "tests" / "reference" / "make_fixtures.py"
sys.path.insert(0, str(MAKE_FIXTURES.parent))

import make_fixtures as mf  # noqa: E402  (sets the offline env vars, imports torch / relik)
import numpy as np  # noqa: E402
import sentencepiece as spm  # noqa: E402
import torch  # noqa: E402
from relik.reader.pytorch_modules.span import RelikReaderForSpanExtraction  # noqa: E402
from relik.reader.pytorch_modules.triplet import RelikReaderForTripletExtraction  # noqa: E402
from transformers import DebertaV2Config, DebertaV2Model, DebertaV2TokenizerFast  # noqa: E402

SPARE_ROWS = 20  # embedding rows beyond the tokenizer, as DeBERTa-v3 (and the parity fixtures)
ENDS_PER_START = 1.5  # what calibrate_reader aims at for binary (RE / cIE) ends
COMPLETE = "COMPLETE"


def log(msg: str) -> None:
    print(f"[e2e_readers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def builder_hash() -> str:
    """Cache key of everything this module builds: this file and the fixture helpers it calls."""
    h = hashlib.sha256()
    for path in (Path(__file__).resolve(), MAKE_FIXTURES):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    base = Path(os.environ.get("RELIK_JAX_CACHE", Path.home() / ".cache" / "relik-jax"))
    return base / "e2e" / builder_hash()


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]


def reader_dir(name: str, spec: dict[str, Any]) -> Path:
    return cache_root() / f"{name}-{spec_hash(spec)}"


# ---------------------------------------------------------------------------------------------------------------
class Locked:
    """An exclusive file lock beside `folder` (concurrent builders wait, then find it COMPLETE)."""

    def __init__(self, folder: Path) -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.path = folder.parent / f"{folder.name}.lock"

    def __enter__(self) -> None:
        self.file = open(self.path, "w")  # noqa: SIM115
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *exc: Any) -> None:
        self.file.close()


def train_spm(spec: dict[str, Any]) -> Path:
    """Unigram spm laid out like DeBERTa-v3's ([MASK] is added by the tokenizer after the pieces), cached."""
    folder = cache_root() / f"spm-{spec_hash(spec)}"
    with Locked(folder):
        if not (folder / COMPLETE).exists():
            folder.mkdir(parents=True, exist_ok=True)
            text = folder / "corpus.txt"
            text.write_text("\n".join(spec["corpus"]) + "\n", encoding="utf-8")
            spm.SentencePieceTrainer.train(
                input=str(text), model_prefix=str(folder / "spm"), vocab_size=spec["vocab_size"],
                model_type="unigram", pad_id=0, unk_id=3, bos_id=-1, eos_id=-1,
                user_defined_symbols=["[CLS]", "[SEP]"], pad_piece="[PAD]", unk_piece="[UNK]", minloglevel=2,
                num_threads=1, seed_sentencepiece_size=100000)
            text.unlink()
            (folder / COMPLETE).write_text("")
    return folder / "spm.model"


def make_backbone(folder: Path, spm_model: Path, vocab_size: int, bb: dict[str, Any], seed: int) -> None:
    cfg = DebertaV2Config(
        vocab_size=vocab_size + SPARE_ROWS, hidden_size=bb["hidden"], num_hidden_layers=bb["layers"],
        num_attention_heads=bb["heads"], intermediate_size=bb["intermediate"], hidden_act="gelu",
        max_position_embeddings=512, relative_attention=True, position_buckets=256, max_relative_positions=-1,
        share_att_key=True, pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", position_biased_input=False,
        type_vocab_size=0, layer_norm_eps=1e-7, pad_token_id=0, initializer_range=bb["init_range"])
    mf.seeded(seed)
    model = DebertaV2Model(cfg).eval()
    mf.perturb_layer_norms(model, torch.Generator().manual_seed(seed + 1))
    model.save_pretrained(folder)
    DebertaV2TokenizerFast(vocab_file=str(spm_model)).save_pretrained(folder)


def symbols(spec: dict[str, Any]) -> list[str]:
    """Added tokens, in the hub trainers' order: EL `--NME--`, `[E-i]`; RE `[R-i]`; cIE `[R-i]` then `--NME--`,
    `[E-i]` (the entity-type symbols)."""
    if spec["kind"] == "span":
        return ["--NME--"] + [f"[E-{i}]" for i in range(spec["symbols"] - 1)]
    out = [f"[R-{i}]" for i in range(spec["symbols"])]
    if spec["types"]:
        out += ["--NME--"] + [f"[E-{i}]" for i in range(spec["types"] - 1)]
    return out


def new_reader(spec: dict[str, Any], backbone: Path) -> Any:
    tokenizer = mf.reader_tokenizer(backbone, symbols(spec))
    if spec["kind"] == "span":
        return RelikReaderForSpanExtraction(
            str(backbone), additional_special_symbols=spec["symbols"], linears_hidden_size=spec["linears"],
            tokenizer=tokenizer, binary_end_logits=False).eval()
    types = spec["types"] > 0
    return RelikReaderForTripletExtraction(
        str(backbone), additional_special_symbols=spec["symbols"], additional_special_symbols_types=spec["types"],
        entity_type_loss=types or None, add_entity_embedding=True if types else None,
        linears_hidden_size=spec["linears"], tokenizer=tokenizer, **reader_kwargs(spec)).eval()


def reader_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """Load-time kwargs of the reader (both sides): cIE readers run with `use_nme=True`, as the hub cIE configs."""
    return {"use_nme": True} if spec.get("use_nme") else {}


def capture(reader: Any, module: torch.nn.Module, samples: list[Any]) -> list[tuple[torch.Tensor, np.ndarray, list]]:
    """One `reader.read` of `samples`; per reader batch in which `module` ran: its output, the batch's
    prediction_mask and the per-row end predictions (a batch without mentions never runs the relation head, so
    outputs are paired with their batch here, not by position)."""
    model = reader.relik_reader_model
    outputs: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, i, o: outputs.append(o.detach().clone()))
    calls: list[tuple[torch.Tensor, np.ndarray, list]] = []
    forward = model.forward

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        before = len(outputs)
        out = forward(*args, **kwargs)
        if len(outputs) > before:
            ends = out.get("ned_end_predictions")
            per_row = [int(x.sum()) for x in ends] if isinstance(ends, (list, tuple)) else []
            calls.append((outputs[before], kwargs["prediction_mask"].cpu().numpy(), per_row))
        return out

    model.forward = wrapped
    try:
        reader.read(samples=samples, max_batch_size=32, annotation_type="char")
    finally:
        del model.forward  # back to the class method
        handle.remove()
    return calls


def calibrate(reader: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Random heads start a mention at ~half the text sub-tokens (the reference then decodes hundreds of spans per
    window, far from a trained reader's few). As `make_fixtures.calibrate_reader` (whose two-class rescaling this
    calls): rescale each head's last Linear (logit-difference std 4, wide margins) and shift its bias so that
    - starts: a fraction of the calibration windows' text sub-tokens equal to the gold rate of the data, i.e.
      `mentions_per_word` (gold mentions / words of the calibration documents, from e2e.py) / sub-words per word
      (this tokenizer), divided by 1.5 for binary ends (RE / cIE), which get ~1.5 ends per start;
    - EL softmax ends: start half of the end head amplified (ends then depend on the start), margins widened;
    - relations (RE / cIE): ~4 triplets per window among the predicted entities."""
    cal = spec["calibration"]
    size, stride = cal["window"]
    triplet = spec["kind"] == "triplet"
    model = reader.relik_reader_model
    words = [w for t in cal["texts"] for w in t.split()]
    pieces = sum(len(reader.tokenizer(w, add_special_tokens=False)["input_ids"]) for w in words)
    subwords_per_word = pieces / max(1, len(words))
    start_frac = cal["mentions_per_word"] / subwords_per_word / (ENDS_PER_START if triplet else 1.0)

    def samples() -> list[Any]:
        ws = mf.make_windows(cal["texts"], size, stride)
        for w in ws:
            for key in ("span_candidates", "triplet_candidates"):
                if cal.get(key):
                    w._d[key] = list(cal[key][w.doc_id])
        return ws

    def text_rows(calls: list) -> torch.Tensor:
        return torch.cat([o[torch.from_numpy(pm) == 0] for o, pm, _ in calls])

    result: dict[str, Any] = {"subwords_per_word": subwords_per_word, "mentions_per_word": cal["mentions_per_word"],
                              "start_frac": start_frac, "documents": len(cal["texts"])}
    start_lin, end_head = model.ned_start_classifier[4], model.ned_end_classifier
    hidden = end_head.dense_0.weight.shape[0]
    if not triplet:
        result["start_cut"] = mf._calibrate_two_class(
            start_lin, text_rows(capture(reader, model.ned_start_classifier, samples())), start_frac)
        with torch.no_grad():  # softmax ends: make them depend on the start, widen the margins
            end_head.dense_0.weight[:, hidden:] *= 9.0
            end_head.dense_1.weight.mul_(4.0)
            end_head.dense_1.bias.mul_(4.0)
        return result
    # binary ends: random scores follow the start's state (all ends or none): damp the start half
    with torch.no_grad():
        end_head.dense_0.weight[:, hidden:] *= 0.1
    end_lin = end_head.dense_1
    saved_bias = end_lin.bias.detach().clone()
    with torch.no_grad():
        end_lin.bias[0] += 1e4  # no ends (hence no entities) while the starts are measured
    rows = text_rows(capture(reader, model.ned_start_classifier, samples()))
    result["start_cut"] = mf._calibrate_two_class(start_lin, rows, start_frac)
    diffs = (rows[:, 1] - rows[:, 0]).double()
    diffs = diffs * (4.0 / max(float(diffs.std()), 1e-12)) - result["start_cut"]
    with torch.no_grad():
        end_lin.bias.copy_(saved_bias)
    # ends are still ~50% of positions: measure them with ~3% starts and no relation head ((B, S, S, R, D) cells)
    shift = max(0.0, float(torch.quantile(diffs, 0.97)))
    with torch.no_grad():
        start_lin.bias[1] -= shift / 2
        start_lin.bias[0] += shift / 2
    model.compute_relation_logits = lambda ents, rels: torch.zeros(ents.shape[0], ents.shape[1], ents.shape[1],
                                                                   rels.shape[1], 2)
    try:
        calls = capture(reader, end_head, samples())
    finally:
        del model.compute_relation_logits
    with torch.no_grad():
        start_lin.bias[1] += shift / 2
        start_lin.bias[0] -= shift / 2
    raw = torch.cat([o.reshape(-1, 2) for o, _, _ in calls])
    raw = raw[raw.abs().max(-1).values < 1e20]  # masked positions
    n_starts = sum(int(o.shape[0]) for o, _, _ in calls)
    result["end_cut"] = mf._calibrate_two_class(end_lin, raw, min(0.5, ENDS_PER_START * n_starts / max(1, len(raw))))
    windows = len(samples())
    calls = capture(reader, model.re_classifier, samples())
    cells = torch.cat([o[i, :n, :n].reshape(-1, 2) for o, _, per_row in calls
                       for i, n in enumerate(per_row[: o.shape[0]])])
    result["relation_cut"] = mf._calibrate_two_class(model.re_classifier[4], cells,
                                                     min(0.2, 4.0 * windows / max(1, len(cells))))
    return result


def build(name: str, spec: dict[str, Any]) -> Path:
    """The reader folder for `spec` (built under a file lock unless already COMPLETE). Returns the folder that
    holds `reader/` and `backbone/`."""
    folder = reader_dir(name, spec)
    with Locked(folder):
        if (folder / COMPLETE).exists():
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        bb = spec["backbone"]
        log(f"building {name} ({spec['kind']}, {bb['layers']} layers, hidden {bb['hidden']}) in {folder}")
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        spm_model = train_spm(spec["spm"])
        make_backbone(tmp / "backbone", spm_model, spec["spm"]["vocab_size"], bb, spec["seed"])
        mf.seeded(spec["seed"] + 10)
        reader = new_reader(spec, tmp / "backbone")
        mf.perturb_layer_norms(reader.relik_reader_model, torch.Generator().manual_seed(spec["seed"] + 20))
        calibration = calibrate(reader, spec)
        reader.save_pretrained(tmp, model_name="reader")
        cfg_path = tmp / "reader" / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["transformer_model"] = "backbone"
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        summary = {k: v for k, v in spec.items() if k not in ("spm", "calibration")}
        summary.update(spm_vocab_size=spec["spm"]["vocab_size"], calibration=calibration,
                       parameters=sum(p.numel() for p in reader.relik_reader_model.parameters()),
                       state_dict_sha256=mf.state_dict_digest(reader.relik_reader_model),
                       build_s=round(time.perf_counter() - t0, 1))
        (tmp / "build.json").write_text(json.dumps(mf.jsonable(summary), indent=1) + "\n")
        tmp.rename(folder)
        (folder / COMPLETE).write_text("")
        log(f"built {name} in {summary['build_s']} s: {json.dumps(mf.jsonable(calibration))}")
        return folder


def load(folder: Path, spec: dict[str, Any]) -> Any:
    """The saved reader, loaded as a user would (cwd = the folder: `transformer_model` is relative)."""
    cls = RelikReaderForSpanExtraction if spec["kind"] == "span" else RelikReaderForTripletExtraction
    with mf.cwd(folder):
        return cls("reader", **reader_kwargs(spec)).eval()
