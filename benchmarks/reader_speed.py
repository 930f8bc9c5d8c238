"""Reader throughput (EL span reader) on synthetic AIDA-like windows, with compile time reported separately.

    PYTHONPATH=$PWD python benchmarks/reader_speed.py [--reader FOLDER | --size tiny|small|base]
        [--windows 64] [--candidates 100] [--precision fp32|bf16] [--repeats 3] [--out reader_speed.json]

Windows have 32 words (the hub EL window size) and `--candidates` titles each (hub top_k = 100), so rows are
~500-1000 sub-tokens like the reference's. Without `--reader`, a random reader of the given size is built (the
weights do not change the cost, only the number of predicted mentions does: a random head predicts far more starts
than a trained one, so this is pessimistic for the heads). Prints a table and writes JSON: first pass (includes
compilation), steady-state medians, windows/s, rows/s and the number of compiled programs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import numpy as np
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers

from relik_jax.models.deberta import DebertaV2Config
from relik_jax.reader.convert import random_reader
from relik_jax.reader.inputs import span_symbols
from relik_jax.reader.model import ReaderConfig
from relik_jax.reader.reader import Reader
from relik_jax.text.windows import Window

SIZES = {  # hidden, layers, heads, ffn, linears_hidden_size
    "tiny": (64, 2, 4, 160, 32),
    "small": (768, 6, 12, 3072, 512),
    "base": (768, 12, 12, 3072, 512),
}
WORDS = ("the european commission said on thursday it disagreed with german advice to consumers to shun british "
         "lamb until scientists determine whether mad cow disease can be transmitted to sheep japan began the "
         "defence of their asian cup title with a lucky win against syria in a group match on friday").split()


def synthetic_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=400, special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]"],
                                      unk_token="[UNK]", show_progress=False)
    tok.train_from_iterator([" ".join(WORDS)] * 50, trainer)
    tok.add_special_tokens([AddedToken("[MASK]", special=True)])
    tok.add_special_tokens([AddedToken(s, special=True) for s in span_symbols(100)])
    return tok


def windows(n: int, n_cands: int, rng: np.random.Generator) -> list[Window]:
    out = []
    for _ in range(n):
        words = [str(w).capitalize() if rng.random() < 0.2 else str(w) for w in rng.choice(WORDS, 32)]
        starts, pos = [], 0
        for w in words:
            starts.append(pos)
            pos += len(w) + 1
        cands = [" ".join(str(w).capitalize() for w in rng.choice(WORDS, int(rng.integers(1, 4))))
                 for _ in range(n_cands)]
        out.append(Window.from_words(words, starts, [s + len(w) for s, w in zip(starts, words, strict=True)],
                                     span_candidates=cands))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reader", help="reader folder (reference or ours); default: a random reader of --size")
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="reader_speed.json")
    args = ap.parse_args()
    if args.reader:
        reader = Reader.from_folder(args.reader, dtype=args.precision)
        name = args.reader
    else:
        h, n_layers, heads, ffn, d = SIZES[args.size]
        tok = synthetic_tokenizer()
        cfg = ReaderConfig(additional_special_symbols=101, linears_hidden_size=d)
        backbone = DebertaV2Config(vocab_size=tok.get_vocab_size(), hidden_size=h, num_hidden_layers=n_layers,
                                   num_attention_heads=heads, intermediate_size=ffn)
        reader = Reader(cfg, random_reader(cfg, backbone, dtype=args.precision), tok)
        name = f"random-{args.size}"
    ws = windows(args.windows, args.candidates, np.random.default_rng(0))
    t0 = time.perf_counter()
    rows = reader.rows(ws)
    t_inputs = time.perf_counter() - t0
    t0 = time.perf_counter()
    reader.read(ws)
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        reader.read(ws)  # ends with device_get of every output: synchronous
        times.append(time.perf_counter() - t0)
    steady = statistics.median(times)
    result = {
        "reader": name, "precision": args.precision, "device": str(jax.devices()[0]),
        "machine": platform.machine(), "windows": len(ws), "rows": len(rows),
        "mean_row_tokens": round(float(np.mean([len(r) for r in rows])), 1),
        "inputs_seconds": round(t_inputs, 3), "first_pass_seconds": round(first, 3),
        "steady_seconds_median": round(steady, 3), "windows_per_second": round(len(ws) / steady, 2),
        "rows_per_second": round(len(rows) / steady, 2), "compiled_programs": reader.num_compiles,
        "programs_by_stage": reader.shapes.counts(),
    }
    width = max(map(len, result))
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
