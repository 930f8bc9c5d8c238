"""relik_jax.data.corpora.create_windows against the reference `relik data create-windows` on the real datasets.

Needs the private reference venv described in tests/fixtures/make_reference_windows.py (spaCy + relik without
its heavy dependencies):
    PYTHONPATH=$PWD /tmp/spacy-venv/bin/python benchmarks/studies/windows_vs_reference/create_windows_vs_reference.py \
        [--out cw.json]
For each dataset it writes the raw §4.2 rows, runs the reference command and our port, and reports how many
windowized rows are identical (same keys in the same order, same values) and the time each side took.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "fixtures"))
import make_reference_windows  # noqa: E402,F401  (registers the reference package without its __init__)
from relik.cli.data import create_windows as reference_create_windows  # noqa: E402

from relik_jax.data import corpora as datasets  # noqa: E402
from relik_jax.data import windowing


def raw_sets() -> dict[str, tuple[list[dict], dict]]:
    el = {"window_size": 32, "window_stride": 16}
    re_words = {
        "window_size": "none",
        "window_stride": 32,
        "is_split_into_words": True,
        "labels_are_tokens": True,
    }
    sets = {}
    for split in ("train", "testa", "testb"):
        docs = datasets.read_aida(split)
        sets[f"aida {split} (EL, 32/16)"] = ([windowing.to_raw_el(d, i + 1) for i, d in enumerate(docs)], el)
    rebel = datasets.read_rebel_sample()
    sets["rebel-sample (char triplets, 64/32)"] = (
        [windowing.to_raw_el(d, i + 1, include_triplets=True) for i, d in enumerate(rebel)],
        {"window_size": 64, "window_stride": 32},
    )
    for split in ("train", "test"):
        docs = datasets.read_conll04(split)
        sets[f"conll04 {split} (word labels, none)"] = (
            [windowing.to_raw_re(d, i + 1) for i, d in enumerate(docs)],
            re_words,
        )
    nyt = datasets.read_nyt("test")
    sets["nyt test (word labels, none)"] = (
        [windowing.to_raw_re(d, i + 1) for i, d in enumerate(nyt)],
        re_words,
    )
    return sets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="create_windows_vs_reference.json")
    args = ap.parse_args()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.jsonl"), Path(tmp, "out.jsonl")
        for name, (rows, kwargs) in raw_sets().items():
            src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            t0 = time.perf_counter()
            try:
                reference_create_windows(str(src), str(dst), overwrite=True, **kwargs)
                theirs = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
                crash = None
            except Exception as e:  # the reference command crashes on some inputs; report it
                theirs, crash = [], f"{type(e).__name__}: {e}"
            t_ref = time.perf_counter() - t0
            t0 = time.perf_counter()
            ours = [json.loads(json.dumps(r)) for r in windowing.create_windows(rows, **kwargs)]
            t_ours = time.perf_counter() - t0
            same = sum(a == b and list(a) == list(b) for a, b in zip(ours, theirs, strict=False))
            report[name] = {
                "windows_reference": len(theirs), "windows_ours": len(ours), "identical": same,
                "reference_error": crash, "seconds_reference": round(t_ref, 2),
                "seconds_ours": round(t_ours, 2),
            }  # fmt: skip
            status = f"reference crashed ({crash})" if crash else f"reference {t_ref:.1f}s"
            print(f"{name:40} {same}/{len(theirs)} identical rows (ours {len(ours)}), {status}, "
                  f"ours {t_ours:.1f}s", flush=True)  # fmt: skip
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
