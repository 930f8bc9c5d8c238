"""Preparing and reading the TFDS datasets (relik_jax.data.tfds, array_record, no TensorFlow) vs parsing the
original files (datasets.py readers + labelled_windows), per dataset, default windowing of each builder.

    PYTHONPATH=$PWD python benchmarks/studies/tfds_prepare/tfds_prepare.py [--datasets conll04,nyt,rebel,aida]
        [--repeats 3] [--out tfds_prepare.json]

Prepare = one fresh build into a temporary folder (parse + window + encode + write). Read = all windows of all
splits back as window dicts (`WindowSource` iteration), median of `--repeats`; parse = the in-memory path (the
default `data_format="jsonl"`), median of `--repeats`. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from relik_jax.data import corpora as D
from relik_jax.data import tfds as T
from relik_jax.data import windowing


def parse(name: str, builder: T._WindowsBuilder) -> int:
    cfg = builder.builder_config
    if name == "rebel":
        docs = D.rebel_splits(list(D.read_rebel_sample()))
    else:
        reader = {"aida": D.read_aida, "conll04": D.read_conll04, "nyt": D.read_nyt}[name]
        docs = {s: list(reader(s)) for s in builder.SPLITS}
    return sum(len(list(windowing.labelled_windows(d, cfg.window_size, cfg.window_stride,
                                           use_dataset_words=cfg.use_dataset_words))) for d in docs.values())


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="conll04,nyt,rebel,aida")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="tfds_prepare.json")
    args = ap.parse_args()
    T.tfds.disable_progress_bar()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            builder, t_prep = T.prepare(name, tmp)
            splits = list(builder.info.splits)
            t_read, n_read = median_time(
                lambda name=name, splits=splits: sum(sum(1 for _ in T.window_source(name, s, tmp)) for s in splits),
                args.repeats)
            t_parse, n_parse = median_time(lambda name=name, b=builder: parse(name, b), args.repeats)
            assert n_read == n_parse, (name, n_read, n_parse)
            size = sum(p.stat().st_size for p in Path(builder.data_dir).iterdir())
            rows.append({"dataset": name, "config": builder.builder_config.name, "windows": n_read,
                         "splits": {s: builder.info.splits[s].num_examples for s in splits},
                         "prepare_s": round(t_prep, 2), "read_s": round(t_read, 2), "parse_s": round(t_parse, 2),
                         "read_windows_per_s": round(n_read / t_read), "MB": round(size / 2**20, 1)})
    print(f"{'dataset':9} {'config':22} {'windows':>8} {'prepare s':>10} {'read s':>7} {'parse s':>8} {'MB':>6}")
    for r in rows:
        print(f"{r['dataset']:9} {r['config']:22} {r['windows']:8d} {r['prepare_s']:10.2f} {r['read_s']:7.2f} "
              f"{r['parse_s']:8.2f} {r['MB']:6.1f}")
    meta = {"python": platform.python_version(), "machine": platform.machine(), "repeats": args.repeats,
            "tfds": T.tfds.__version__}
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
