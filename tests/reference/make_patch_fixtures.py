"""Reference outputs of the span reader on windows whose candidates fill several rows ("patches").

Runs ONLY under the reference venv, after make_fixtures.py (whose EL readers and backbones it uses):

    <venv-reference>/bin/python tests/reference/make_patch_fixtures.py FIXTURES_ROOT --data <shared>/data OUT_DIR

When a window's text + candidates exceed the reader's length budget, relik 1.0.7 (`RelikDataset.
dataset_iterator_func` / `produce_sample_bag`) splits the candidates over several rows, each row's symbols
continuing the numbering, and `merge_patches_predictions` folds the rows' predictions together (patch order; a span
keeps the first non-NME title, NME can be overridden; the first patch's probability list wins). The main fixtures
exercise that on one window only, where no span is predicted by two patches. Here every window needs 2-3 patches:
100 candidates per document, the longest AIDA titles among them (and one title listed twice, which 1.0.7 drops
from the later patches), so that many spans - reversed-boundary ones (end token before the start token) included -
are predicted by several patches with different titles.

The budget: `read(max_length=1000)` (what `Relik` calls) sets the dataset's `model_max_length` to 1000 whatever
the tokenizer says; only the dataset's constructor takes min(1000, tokenizer.model_max_length), and `read`
overwrites it. So each run's reader folder is a copy of a fixture reader whose tokenizer_config.json says a
SHORTER `model_max_length` (512 / 384): the reference's rows still reach ~1000 tokens, over that length.

Layout:

    OUT/manifest.json                  {fixtures, runs: {run: {reader_dir, use_nme, tokenizer_model_max_length, ...}}}
    OUT/readers/<run>/                 the copied reader (transformer_model = absolute backbone path)
    OUT/runs/<run>/windows_input.json  windows (WINDOW_FIELDS_BEFORE) with their span candidates
    OUT/runs/<run>/predictions.json    per window: predicted_spans (char) and patches (per patch: predictable
                                       candidates, predicted_window_labels, span_title_probabilities)

Never imports relik_jax. Deterministic (fixed texts, candidates and weights).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_fixtures as mf  # noqa: E402  (reference venv: relik, torch, the fixture helpers)
import numpy as np  # noqa: E402
import torch  # noqa: E402

TEXT_KEYS = ["sports", "long", "relations", "unicode", "trim"]
AIDA_DOCS, AIDA_WORDS = 3, 200  # + the first 200 words of the first 3 AIDA testb documents (more shared spans)
# run: fixture reader, use_nme, the tokenizer's model_max_length written into the copy
RUNS: dict[str, tuple[str, bool, int]] = {
    "nme-512": ("el-h64-d32", True, 512),
    "no-nme-384": ("el-h64-d32", False, 384),
}
N_CANDIDATES = 100  # the span readers have symbols for 100 candidates (+ --NME--)


def candidates(titles: list[str], doc: int, own: list[str]) -> list[str]:
    """100 titles: up to 5 of the document's own (the main fixtures' lists), 85 of the 150 longest AIDA titles
    (most at the 22-piece cap: 2-3 patches), random ones (seeded per document), and the first one again at
    position 70 (a duplicate 1.0.7 removes from the remaining candidates once its first copy is in a patch)."""
    rng = np.random.default_rng(mf.SEED + 100 + doc)
    own = list(own)[:5]
    longest = [t for t in sorted(titles, key=lambda t: (-len(t), t)) if t not in own][:150]
    pool = [t for t in titles if t not in set(own) | set(longest)]
    picked = own + [longest[i] for i in rng.choice(len(longest), 85, replace=False)]
    picked += [pool[i] for i in rng.choice(len(pool), N_CANDIDATES - 1 - len(picked), replace=False)]
    order = [picked[i] for i in rng.permutation(len(picked))]
    return order[:70] + [order[0]] + order[70:]


def aida_texts(data: Path) -> list[str]:
    with open(data / "aida-conll" / "test_aida-b.jsonl", encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for _, line in zip(range(AIDA_DOCS), f, strict=False)]
    return [" ".join(d.split(" ")[:AIDA_WORDS]) for d in docs]


def copy_reader(root: Path, out: Path, name: str, run: str, model_max_length: int) -> Path:
    """The fixture reader, its tokenizer saying `model_max_length`, its backbone named by absolute path."""
    dest = out / "readers" / run
    shutil.copytree(root / "readers" / name, dest)
    cfg_path = dest / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["transformer_model"] = str((root / cfg["transformer_model"]).resolve())
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    tok_path = dest / "tokenizer_config.json"
    tok = json.loads(tok_path.read_text())
    tok["model_max_length"] = model_max_length
    tok_path.write_text(json.dumps(tok, indent=2, sort_keys=True) + "\n")
    return dest


def patch_stats(predictions: list[dict[str, Any]]) -> dict[str, int]:
    """How much of the merge rules the windows exercise (counted on token spans, per window)."""
    shared = differing = nme_overridden = reversed_shared = 0
    for p in predictions:
        titles: dict[tuple[int, int], list[str]] = {}
        for k in sorted(p["patches"], key=int):
            for title, spans in p["patches"][k]["predicted_window_labels"].items():
                for s in spans:
                    titles.setdefault(tuple(s), []).append(title)
        for (s, e), ts in titles.items():
            if len(ts) > 1:
                shared += 1
                differing += len(set(ts)) > 1
                reversed_shared += (e < s) and len(set(ts)) > 1
                nme_overridden += ts[0] == mf.NME and any(t != mf.NME for t in ts[1:])
    return {"spans_in_several_patches": shared, "with_different_titles": differing,
            "reversed_with_different_titles": reversed_shared, "nme_overridden": nme_overridden}


def build(root: Path, out: Path, run: str, titles: list[str], data: Path) -> dict[str, Any]:
    name, use_nme, model_max_length = RUNS[run]
    folder = copy_reader(root, out, name, run, model_max_length)
    reader = mf.RelikReaderForSpanExtraction(str(folder), use_nme=use_nme).eval()
    assert reader.tokenizer.model_max_length == model_max_length
    _, own = mf.el_documents(titles)
    own_by_key = dict(zip(["short", "sports", "unicode", "long", "tiny", "trim"], own, strict=True))  # its order
    texts = [mf.TEXTS[k] for k in TEXT_KEYS] + aida_texts(data)
    own_lists = [own_by_key.get(k, []) for k in TEXT_KEYS] + [[]] * AIDA_DOCS
    cands = [candidates(titles, d, o) for d, o in enumerate(own_lists)]
    windows = mf.make_windows(texts, 32, 16)
    for w in windows:
        w._d["span_candidates"] = list(cands[w.doc_id])
    before = [mf.window_view(w, mf.WINDOW_FIELDS_BEFORE) for w in windows]
    with mf.ForwardCapture(reader, f64=False) as cap:
        # what Relik.__call__ runs: reader_batch_size 32, read()'s max_length 1000 and 2048-token batches
        outputs = reader.read(samples=windows, max_batch_size=32, token_batch_size=2048, max_length=1000,
                              annotation_type="char")
    predictions = [
        {
            "doc_id": w.doc_id,
            "window_id": w.window_id,
            "predicted_spans": sorted(mf.jsonable(list(w.predicted_spans)), key=lambda s: (s[0], s[1], s[2])),
            "patches": mf.jsonable(w._d.get("patches")),
        }
        for w in outputs
    ]
    run_dir = out / "runs" / run
    mf.write_json(run_dir / "windows_input.json", before)
    mf.write_json(run_dir / "predictions.json", predictions)
    lengths = [int(n) for b in cap.batches for n in b["arrays"]["attention_mask"].sum(1)]
    stats = {
        "reader": name,
        "reader_dir": f"readers/{run}",
        "use_nme": use_nme,
        "tokenizer_model_max_length": model_max_length,
        "n_windows": len(predictions),
        "n_rows": len(lengths),
        "patches_per_window": sorted({len(p["patches"]) for p in predictions}),
        "max_row_length": max(lengths),
        "rows_over_tokenizer_length": sum(n > model_max_length for n in lengths),
        "n_spans": sum(len(p["predicted_spans"]) for p in predictions),
        **patch_stats(predictions),
        "min_decision_margins": mf.summarize_el(cap.batches, [{**p, "patches": p["patches"] or {0: 0}}
                                                              for p in predictions])["min_decision_margins"],
    }
    mf.log(f"patches {run}: {json.dumps(mf.jsonable(stats))}")
    assert stats["n_windows"] == len(windows), f"{run}: the reference lost windows"
    assert min(stats["patches_per_window"]) >= 2, f"{run}: a window fits in one row"
    assert max(stats["patches_per_window"]) >= 3, f"{run}: no window needs 3 patches"
    assert stats["rows_over_tokenizer_length"] > 0, f"{run}: no row over the tokenizer's model_max_length"
    assert stats["reversed_with_different_titles"] > 0, f"{run}: no reversed span with different patch titles"
    assert not use_nme or stats["nme_overridden"] > 0, f"{run}: no NME title overridden by a later patch"
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="fixture root written by make_fixtures.py")
    parser.add_argument("out", type=Path, help="output directory (created; must be empty or absent)")
    parser.add_argument("--data", type=Path, required=True, help="the project's shared/data folder")
    args = parser.parse_args()
    root, out = args.root.resolve(), args.out.resolve()
    if out.exists() and any(out.iterdir()):
        sys.exit(f"make_patch_fixtures: output directory {out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    mf.patch_spacy()
    t0 = time.time()
    data = args.data.resolve()
    titles = mf.load_aida_titles(data)
    manifest: dict[str, Any] = {"fixtures": str(root), "runs": {}}
    for run in RUNS:
        manifest["runs"][run] = build(root, out, run, titles, data)
    manifest["seconds"] = round(time.time() - t0, 1)
    mf.write_json(out / "manifest.json", manifest)
    mf.log(f"done in {manifest['seconds']} s → {out}")


if __name__ == "__main__":
    main()
