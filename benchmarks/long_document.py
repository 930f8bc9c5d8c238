"""Peak memory and time of the end-to-end pipeline on one very long document (issue: bounded memory).

    python benchmarks/long_document.py --words 100000

A tiny random EL reader (DeBERTa-v3 shape, 1 layer) with fixed candidates stands in for a trained model: the
question here is whether memory stays bounded as the document grows, not accuracy. Each size runs in a fresh
subprocess so peak RSS is per run. Prints a table and writes JSON to benchmarks/results/long_document.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SENTENCE = "Barack Obama was born in Honolulu , Hawaii and Steve Jobs founded Apple Inc. in Cupertino . "
CANDIDATES = ["Barack Obama", "Honolulu", "Hawaii", "Steve Jobs", "Apple Inc.", "Cupertino", "California"]


def run_one(n_words: int) -> dict:
    from flax import nnx
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    from relik_jax.inference.pipeline import Relik
    from relik_jax.models.deberta import DebertaV2Config
    from relik_jax.reader.inputs import span_symbols
    from relik_jax.reader.model import ReaderConfig, build_reader
    from relik_jax.reader.reader import Reader

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    tok.train_from_iterator([SENTENCE] * 50, trainers.UnigramTrainer(
        vocab_size=100, special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]"], unk_token="[UNK]", show_progress=False))
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in ["[MASK]", *span_symbols(100)]])
    cfg = ReaderConfig(linears_hidden_size=16)
    backbone = DebertaV2Config(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64)
    relik = Relik(Reader(cfg, build_reader(cfg, backbone, rngs=nnx.Rngs(0)), tok), window_size=32, window_stride=16)
    words = (SENTENCE * (n_words // len(SENTENCE.split()) + 1)).split()[:n_words]
    start = time.perf_counter()
    out = relik(" ".join(words), candidates=CANDIDATES)
    seconds = time.perf_counter() - start
    return {"words": n_words, "windows": (n_words - 32) // 16 + 2 if n_words > 32 else 1, "seconds": seconds,
            "spans": len(out.spans), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "long_document.json"))
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_one(args.child)))
        return
    rows = []
    for n in args.words:
        res = subprocess.run([sys.executable, __file__, "--child", str(n)], capture_output=True, text=True,
                             timeout=3600, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{r['words']:>8} words  {r['windows']:>6} windows  {r['seconds']:8.1f} s  "
              f"peak RSS {r['peak_rss_mb']:7.0f} MB  ({r['spans']} spans)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
