"""Throughput of the data side: word tokenization, windowing, JSONL rows and window merging (CPU, no JAX).

    PYTHONPATH=$PWD python benchmarks/studies/windows_vs_reference/windows_speed.py [--repeats 5] \
        [--out windows_speed.json]
Prints a table of medians over `--repeats` runs and writes them as JSON. Inputs: AIDA testb (231 documents,
46k CoNLL tokens) and one synthetic 100k-word document.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

from relik_jax.data import corpora as datasets
from relik_jax.text.windows import WindowSplitter, merge_windows
from relik_jax.text.words import WordTokenizer


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="windows_speed.json")
    args = ap.parse_args()
    texts = [d.text for d in datasets.read_aida("testb")]
    long_doc = "The quick brown fox, Mr. Fox, didn't jump over 3.5 lazy dogs. " * 6250  # 100k words
    t_init, tok = timed(WordTokenizer, 1)
    splitter = WindowSplitter(32, 16)
    rows = []

    def add(name: str, seconds: float, n: int, unit: str) -> None:
        rows.append({"step": name, "seconds": round(seconds, 4), "items": n, "unit": unit,
                     "per_second": round(n / seconds, 1)})  # fmt: skip

    t, words = timed(lambda: [tok(t) for t in texts], args.repeats)
    add("tokenize AIDA testb", t, sum(len(w) for w in words), "words")
    t, ws = timed(lambda: list(splitter.split_documents(texts)), args.repeats)
    add("tokenize + window AIDA testb (32/16)", t, len(ws), "windows")
    t, dicts = timed(lambda: [w.to_dict() for w in ws], args.repeats)
    add("window -> reference JSONL dict", t, len(dicts), "windows")
    for w in ws:  # two predicted spans per window, one triplet
        a, b = int(w.word_starts[0]), int(w.word_ends[-1])
        w.predicted_spans = [(a, int(w.word_ends[0]), "X"), (int(w.word_starts[-1]), b, "Y")]
        w.predicted_triplets = [(0, "r", 1, 0.5)]
    t, merged = timed(lambda: merge_windows(ws), args.repeats)
    add("merge windows AIDA testb", t, len(ws), "windows")
    t, long_words = timed(lambda: tok(long_doc), args.repeats)
    add("tokenize 100k-word document", t, len(long_words), "words")
    t, n = timed(lambda: sum(1 for _ in splitter.split_document(long_doc, words=long_words)), args.repeats)
    add("window 100k-word document (pre-tokenized)", t, n, "windows")
    print(f"tokenizer construction: {t_init:.3f} s (once per process)")
    print(f"{'step':45} {'median s':>10} {'items':>8} {'per second':>12}")
    for r in rows:
        print(f"{r['step']:45} {r['seconds']:10.4f} {r['items']:8d} {r['per_second']:12.1f} {r['unit']}")
    with open(args.out, "w") as f:
        json.dump({"machine": platform.processor() or platform.machine(), "repeats": args.repeats,
                   "tokenizer_init_s": round(t_init, 4), "rows": rows}, f, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
