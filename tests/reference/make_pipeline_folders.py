"""Reference pipeline folders (relik 1.0.7 `Relik.save_pretrained`) and the reference's outputs when it loads them.

Runs ONLY under the reference venv, after make_fixtures.py (whose readers, retrievers and indexes it uses):

    <venv-reference>/bin/python tests/reference/make_pipeline_folders.py FIXTURES_ROOT OUT_DIR

For each pipeline below: a reference `Relik(...)` over the fixture components with non-default settings (top_k,
windows, metadata fields) writes its folder with `save_pretrained` (a `config.yaml` naming each component by the
absolute path it was loaded from: what 1.0.7 writes; its `save_weights=True` crashes for a single-task pipeline),
edited only where the published configs differ (the cIE reader section carries `use_nme: true`). Then the
reference loads that folder with `Relik.from_pretrained` and annotates fixed texts; `runs/<name>/outputs.json`
records the result. Layout:

    OUT/manifest.json                    {name: {folder, settings, texts, n_spans, n_triplets, ...}}
    OUT/pipelines/<name>/config.yaml     the pipeline folder
    OUT/runs/<name>/outputs.json         per document: text, spans [[start, end, label, text]], triplets
    OUT/runs/<name>/call.json            texts and call arguments

Never imports relik_jax. Deterministic (no training, fixed texts).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_fixtures as mf  # noqa: E402  (reference venv: relik, torch, the fixture helpers)
import torch  # noqa: E402
import yaml  # noqa: E402

# name: reader, task, {task: index dir}, settings written by save_pretrained, config edits, text keys.
# Settings differ from the task defaults so that a loader which ignores them gives other outputs.
PIPELINES: dict[str, tuple[Any, ...]] = {
    "el": (
        "el-h64-d32", "span", {"span": "retrievers/minilm/document_index"},
        {"top_k": 12, "window_size": 24, "window_stride": 12, "metadata_fields": ["definition"]},
        {}, ["short", "sports", "unicode", "relations", "tiny"],
    ),
    "cie": (
        "cie-h64-d32", "both",
        {"span": "retrievers/minilm/document_index", "triplet": "retrievers/minilm/relation_index"},
        {"top_k": 25, "window_size": 48, "window_stride": 24},
        {"reader": {"use_nme": True}}, ["short", "sports", "unicode", "long", "relations", "tiny"],
    ),
}  # fmt: skip


def merge(config: dict[str, Any], edits: dict[str, Any]) -> dict[str, Any]:
    for key, value in edits.items():
        if isinstance(value, dict):
            merge(config.setdefault(key, {}), value)
        else:
            config[key] = value
    return config


def build(root: Path, out: Path, name: str) -> dict[str, Any]:
    reader_name, task, index_dirs, settings, edits, keys = PIPELINES[name]
    reader_cls = mf.RelikReaderForSpanExtraction if task == "span" else mf.RelikReaderForTripletExtraction
    reader_kwargs = {"use_nme": True} if task != "span" else {}
    reader = reader_cls(str(root / "readers" / reader_name), **reader_kwargs).eval()
    retriever = {t: mf.load_retriever(root, d) for t, d in index_dirs.items()}
    folder = out / "pipelines" / name
    mf.Relik(reader=reader, retriever=retriever, task=task, **settings).save_pretrained(folder)
    config_path = folder / "config.yaml"
    saved = config_path.read_text()
    config = merge(yaml.safe_load(saved), edits)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    mf.log(f"pipeline folder {name}: loading it with the reference's Relik.from_pretrained")
    relik = mf.Relik.from_pretrained(str(folder), device="cpu")
    texts = [mf.TEXTS[k] for k in keys]
    with mf.ForwardCapture(relik.reader, f64=False) as cap:
        outputs = relik(texts)
    if task != "span":  # 1.0.7's RE truncation is broken (issue #7): the fixtures must never reach it
        for b in cap.batches:
            n_rel = b["arrays"]["special_symbols_mask"].sum(1)
            assert all(int(n) == len(c) for n, c in zip(n_rel, b["meta"]["triplet_candidates"], strict=True))
    views = [mf.relik_output_view(o) for o in outputs]
    for v in views:
        v.pop("windows", None)
    mf.write_json(out / "runs" / name / "outputs.json", views)
    mf.write_json(out / "runs" / name / "call.json", {"texts": texts, "text_keys": keys})
    stats = {
        "folder": f"pipelines/{name}",
        "saved_config": saved,
        "task": task,
        "settings": settings,
        "config_edits": edits,
        "n_docs": len(views),
        "n_spans": sum(len(v["spans"]) for v in views),
        "n_triplets": sum(len(v["triplets"]) for v in views),
        "n_batches": len(cap.batches),
    }
    assert stats["n_spans"] > 0, f"{name}: no spans"
    assert task == "span" or stats["n_triplets"] > 0, f"{name}: no triplets"
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="fixture root written by make_fixtures.py")
    parser.add_argument("out", type=Path, help="output directory (created; must be empty or absent)")
    args = parser.parse_args()
    root, out = args.root.resolve(), args.out.resolve()
    if out.exists() and any(out.iterdir()):
        sys.exit(f"make_pipeline_folders: output directory {out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    mf.patch_spacy()
    t0 = time.time()
    manifest: dict[str, Any] = {"fixtures": str(root), "pipelines": {}}
    with mf.cwd(root):  # the readers' `transformer_model` ("backbones/...") is relative to the fixture root
        for name in PIPELINES:
            manifest["pipelines"][name] = build(root, out, name)
    manifest["seconds"] = round(time.time() - t0, 1)
    mf.write_json(out / "manifest.json", manifest)
    mf.log(f"done in {manifest['seconds']} s → {out}")


if __name__ == "__main__":
    main()
