"""Index speed: ScaNN recall@k against exact search, and query throughput of both backends.

Vectors: by default a synthetic KB that looks like passage embeddings (many clusters of different sizes and
spreads inside a low-rank subspace, plus isotropic noise; queries are held-out points drawn the same way, i.e.
they are near, but not on, KB vectors). `--vectors file.npy` uses real embeddings instead (rows = KB, the last
`--queries` rows are used as queries and removed from the KB).

    PYTHONPATH=$PWD python benchmarks/index_speed.py --num-docs 120000 --dim 768 --queries 1000

Prints a table and writes benchmarks/results/index_speed.json. Times are medians over `--repeats` runs after
one
warm-up (whose time is reported as compile/first call), measured with block_until_ready for JAX.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import jax
import numpy as np
from rich.console import Console
from rich.table import Table

from relik_jax.retriever.index import ExactSearcher, ScannParams, ScannSearcher

RESULTS = Path(__file__).resolve().parent / "results"


def realistic_vectors(n: int, dim: int, num_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """KB vectors + queries: Zipf-sized clusters in a rank-`dim/4` subspace, per-cluster spread, isotropic
    noise."""
    rng = np.random.default_rng(seed)
    rank = max(8, dim // 4)
    basis = rng.standard_normal((rank, dim)).astype(np.float32) / np.sqrt(rank)
    num_clusters = max(16, n // 50)
    centres = rng.standard_normal((num_clusters, rank)).astype(np.float32) * 2.0
    spread = rng.uniform(0.3, 1.2, num_clusters).astype(np.float32)
    sizes = 1.0 / np.arange(1, num_clusters + 1) ** 0.8
    total = n + num_queries
    assign = rng.choice(num_clusters, size=total, p=sizes / sizes.sum())
    latent = centres[assign] + rng.standard_normal((total, rank)).astype(np.float32) * spread[assign, None]
    x = latent @ basis + 0.15 * rng.standard_normal((total, dim)).astype(np.float32)
    x += rng.standard_normal(dim).astype(np.float32) * 0.5  # common offset, as LayerNormed encoders have
    x = x.astype(np.float32)
    return x[:n], x[n:]


def aida_text_vectors(num_docs: int, num_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """Real-text vectors: all-MiniLM-L6-v2 (our encoder) over AIDA train+testa 10-word windows (stride 2) as the
    KB, and 32-word testb windows as queries. Cached under relik_jax.paths.CACHE (encoding takes minutes)."""
    from relik_jax.data import corpora as datasets
    from relik_jax.paths import CACHE
    from relik_jax.retriever.encoder import Retriever, resolve_encoder

    cache = CACHE / "benchmarks" / f"aida_minilm_{num_docs}_{num_queries}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return z["kb"], z["queries"]
    words = [d.words for split in ("train", "testa") for d in datasets.read_aida(split)]
    passages = [" ".join(w[i : i + 10]) for w in words for i in range(0, max(len(w) - 9, 1), 2)][:num_docs]
    testb = [d.words for d in datasets.read_aida("testb")]
    questions = [" ".join(w[i : i + 32]) for w in testb for i in range(0, max(len(w) - 31, 1), 16)][:num_queries]
    retriever = Retriever.from_pretrained(resolve_encoder("all-MiniLM-L6-v2"), passage_batch_size=256)
    kb = retriever.encode_passages(passages, progress="Encoding AIDA windows")
    queries = retriever.encode_questions(questions)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, kb=kb, queries=queries)
    return kb, queries


def _median_time(fn, repeats: int) -> tuple[float, float]:
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-docs", type=int, default=120_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vectors", type=Path, default=None)
    parser.add_argument("--real-text", action="store_true", help="MiniLM vectors of real AIDA text (cached)")
    parser.add_argument("--num-leaves", type=int, default=None)
    parser.add_argument("--leaves-to-search", type=int, default=None)
    parser.add_argument("--reorder", type=int, default=500)
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--sweep-leaf-fractions", type=float, nargs="+", default=[0.1, 0.15, 0.2, 0.3])
    parser.add_argument("--sweep-reorder", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--output", type=Path, default=RESULTS / "index_speed.json")
    args = parser.parse_args()

    if args.real_text:
        kb, queries = aida_text_vectors(args.num_docs, args.queries)
        source = "real text: all-MiniLM-L6-v2 vectors of AIDA 10-word windows (KB) and 32-word testb windows"
    elif args.vectors is not None:
        data = np.load(args.vectors).astype(np.float32)
        kb, queries = data[: -args.queries], data[-args.queries :]
        source = str(args.vectors)
    else:
        kb, queries = realistic_vectors(args.num_docs, args.dim, args.queries)
        source = "synthetic clustered (realistic_vectors)"
    console = Console()
    console.print(f"KB {kb.shape}, queries {queries.shape}, k={args.k}, devices {jax.devices()}")

    start = time.perf_counter()
    exact = ExactSearcher(kb, "float32")
    jax.block_until_ready(exact.embeddings)
    exact_setup = time.perf_counter() - start
    _, truth = exact.search(queries, args.k)

    start = time.perf_counter()
    params = ScannParams(num_leaves=args.num_leaves, leaves_to_search=args.leaves_to_search, reorder=args.reorder)
    scann = ScannSearcher(kb, params, num_neighbors=args.k)
    scann_build = time.perf_counter() - start

    def recall_of(searcher: ScannSearcher) -> float:
        _, approx = searcher.search(queries, args.k)
        return float(np.mean([len(set(t) & set(a)) / args.k for t, a in zip(truth, approx, strict=True)]))

    # Search-time sweep on the one built tree: the cheapest setting reaching --target-recall is timed below.
    sweep = []
    built = scann.params
    for frac in args.sweep_leaf_fractions:
        for reorder in args.sweep_reorder:
            leaves = max(1, round(frac * built.num_leaves))
            scann.params = dataclasses.replace(built, leaves_to_search=leaves, reorder=reorder)
            start = time.perf_counter()
            rec = recall_of(scann)
            sweep.append(
                {
                    "leaves_to_search": leaves,
                    "reorder": reorder,
                    "recall": rec,
                    "queries_per_s": len(queries) / (time.perf_counter() - start),
                }
            )
            console.print(sweep[-1])
    ok = [s for s in sweep if s["recall"] >= args.target_recall] or [max(sweep, key=lambda s: s["recall"])]
    best = max(ok, key=lambda s: s["queries_per_s"])
    scann.params = dataclasses.replace(built, leaves_to_search=best["leaves_to_search"], reorder=best["reorder"])
    recall = recall_of(scann)

    rows = []
    for bs in args.batch_sizes:
        batch = queries[:bs]
        for name, searcher in (("exact (jax fp32)", exact), ("scann", scann)):
            median, first = _median_time(lambda s=searcher, b=batch: s.search(b, args.k), args.repeats)
            rows.append(
                {
                    "backend": name,
                    "batch": bs,
                    "median_s": median,
                    "first_call_s": first,
                    "queries_per_s": bs / median,
                }
            )
    result = {
        "source": source,
        "num_docs": int(kb.shape[0]),
        "dim": int(kb.shape[1]),
        "num_queries": int(len(queries)),
        "k": args.k,
        "scann_recall_at_k_vs_exact": recall,
        "scann_params": dataclasses.asdict(scann.params),
        "scann_sweep": sweep,
        "scann_build_s": scann_build,
        "exact_setup_s": exact_setup,
        "rows": rows,
        "device": str(jax.devices()[0]),
        "platform": platform.platform(),
        "jax": jax.__version__,
    }

    table = Table(
        title=f"index search, N={kb.shape[0]}, d={kb.shape[1]}, k={args.k}; "
        f"ScaNN recall@{args.k} vs exact = {recall:.4f}"
    )
    for col in ("backend", "batch", "median ms", "first call ms", "queries/s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["backend"],
            str(r["batch"]),
            f"{r['median_s'] * 1e3:.1f}",
            f"{r['first_call_s'] * 1e3:.1f}",
            f"{r['queries_per_s']:.0f}",
        )
    console.print(table)
    console.print(f"ScaNN build {scann_build:.1f}s ({scann.params}); exact setup {exact_setup:.2f}s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
