"""Index at scale: load a reference-format index of N × 768 fp16 vectors, search it, and measure memory.

Writes a synthetic index in the reference's on-disk format (torch zip `embeddings.pt` of fp16 vectors written by
`relik_jax.io.torch_pickle.save`, `documents.jsonl` of ~500-byte lines as the published Wikipedia index has,
`config.yaml`), then in a fresh process under `/usr/bin/time -v` loads it with `DocumentIndex.from_reference`,
puts it on the device (CPU here) and retrieves the top-100 for 2,775 queries (AIDA testb's window count). The
fp32 exact top-100 (numpy, float32, in another process) gives recall@100.

    PYTHONPATH=$PWD python benchmarks/index_scale.py --num-docs 2000000

Vectors: Zipf-sized clusters in a rank-192 subspace plus isotropic noise (as benchmarks/index_speed.py); queries
are held-out points drawn the same way. Prints a table and writes benchmarks/results/index_scale.json (one entry
per N and dtype, merged with earlier runs) and a 5.9M projection (time and memory scale linearly in N).
`--compare CHECKOUT` also runs the load + search of another checkout (e.g. /work/main) on the same folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
WIKIPEDIA_DOCS = 5_900_000  # sapienzanlp/relik-retriever-e5-base-v2-aida-blink-wikipedia-index
GEN_ROWS = 65536


# -------------------- synthetic reference-format index


class Generator:
    """Deterministic clustered vectors, generated chunk by chunk (chunk i depends on i only)."""

    def __init__(self, dim: int, seed: int = 0, num_clusters: int = 20000):
        rng = np.random.default_rng(seed)
        self.dim, self.rank, self.seed = dim, max(8, dim // 4), seed
        self.basis = rng.standard_normal((self.rank, dim)).astype(np.float32) / np.sqrt(self.rank)
        self.centres = rng.standard_normal((num_clusters, self.rank)).astype(np.float32) * 2.0
        self.spread = rng.uniform(0.3, 1.2, num_clusters).astype(np.float32)
        sizes = 1.0 / np.arange(1, num_clusters + 1) ** 0.8
        self.p = sizes / sizes.sum()
        self.offset = rng.standard_normal(dim).astype(np.float32) * 0.5  # as LayerNormed encoders have

    def chunk(self, index: int, rows: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, index])
        assign = rng.choice(len(self.p), size=rows, p=self.p)
        latent = self.centres[assign] + rng.standard_normal((rows, self.rank), np.float32) * self.spread[assign, None]
        x = latent @ self.basis + 0.15 * rng.standard_normal((rows, self.dim), np.float32)
        return x + self.offset


def write_index(folder: Path, n: int, dim: int, num_queries: int) -> None:
    """The reference layout, streamed: vectors go to a .npy first (chunk by chunk), then into the torch zip."""
    from relik_jax.io import arrays, torch_pickle  # parent process only (the child may run another checkout)

    folder.mkdir(parents=True, exist_ok=True)
    gen = Generator(dim)
    tmp = folder / "vectors.tmp.npy"
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False, "shape": (n, dim)}
    with open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for i, lo in enumerate(range(0, n, GEN_ROWS)):
            f.write(gen.chunk(i, min(GEN_ROWS, n - lo)).astype(np.float16).tobytes())
    torch_pickle.save(arrays.open_npy(tmp), folder / "embeddings.pt")
    tmp.unlink()
    np.save(folder / "queries.npy", gen.chunk(10**9, num_queries))  # a chunk index no KB chunk uses
    filler = "lorem ipsum dolor sit amet consectetur adipiscing elit " * 8
    with open(folder / "documents.jsonl", "w", encoding="utf-8") as f:
        for lo in range(0, n, 100_000):
            f.write("".join(json.dumps({"text": f"Entity {i}", "id": i,
                                        "metadata": {"definition": f"entity number {i}: {filler}"}}) + "\n"
                            for i in range(lo, min(lo + 100_000, n))))
    (folder / "config.yaml").write_text(
        "_target_: relik.retriever.indexers.inmemory.InMemoryDocumentIndex\n"
        "metadata_fields:\n- definition\nseparator: ' <def> '\nname_or_path: synthetic\n"
    )
    (folder / "COMPLETE").write_text(json.dumps({"num_docs": n, "dim": dim, "queries": num_queries}))


# -------------------- measured child process


def child(args: argparse.Namespace) -> None:
    """Load + device transfer + search in this process; prints one JSON line. Run under /usr/bin/time -v."""
    import jax

    from relik_jax.retriever.index import DocumentIndex

    def peak_gb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    folder = Path(args.folder)
    queries = np.load(folder / "queries.npy")
    jax.numpy.zeros(1).block_until_ready()  # JAX runtime up before timing
    base = peak_gb()
    t0 = time.perf_counter()
    kwargs = {} if args.dtype == "default" else {"dtype": args.dtype}
    index = DocumentIndex.from_reference(folder, **kwargs)
    t1 = time.perf_counter()
    searcher = index.searcher  # builds the device copy (a property here; built in __init__ on older checkouts)
    searcher.embeddings.block_until_ready()
    t2 = time.perf_counter()
    loaded_peak = peak_gb()
    scores, rows = index.search(queries, args.k)
    t3 = time.perf_counter()
    docs = index.retrieve(queries[:256], args.k)
    t4 = time.perf_counter()
    np.save(args.rows_out, rows)
    emb = searcher.embeddings
    print(json.dumps({
        "dtype": str(emb.dtype), "device_bytes": int(emb.size) * emb.dtype.itemsize,
        "documents_s": t1 - t0, "device_s": t2 - t1, "load_s": t2 - t0, "query_s": t3 - t2,
        "retrieve_256_with_documents_s": t4 - t3, "first_document": docs[0][0].document.text,
        "rss_runtime_gb": base, "rss_after_load_gb": loaded_peak, "rss_peak_gb": peak_gb(),
        "devices": [str(d) for d in jax.devices()],
    }))


def run_child(folder: Path, dtype: str, k: int, rows_out: Path, checkout: Path) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, str(Path(__file__).resolve()), "child", "--folder", str(folder),
           "--dtype", dtype, "--k", str(k), "--rows-out", str(rows_out)]
    env = {**os.environ, "PYTHONPATH": str(checkout), "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    out["time_v_max_rss_gb"] = peak_kb / 2**20
    out["wall_s"] = float(_wall(proc.stderr))
    return out


def _wall(stderr: str) -> float:
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", stderr)
    return (int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))) if m else float("nan")


# -------------------- fp32 exact ground truth (numpy, independent of relik_jax's search)


def exact_top_k(folder: Path, k: int, cache: Path, num_queries: int | None = None) -> np.ndarray:
    """fp32 exact top-k rows of the first `num_queries` queries (all by default), cached in `cache`."""
    if cache.exists() and (num_queries is None or len(np.load(cache)) >= num_queries):
        return np.load(cache)[:num_queries]
    from relik_jax.io import arrays, torch_pickle  # parent process only (the child may run another checkout)

    emb = torch_pickle.load(folder / "embeddings.pt", mmap=True)
    queries = np.load(folder / "queries.npy")[:num_queries].astype(np.float32)
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.zeros((len(queries), k), np.int64)
    for lo, block in arrays.iter_chunks(emb, 65536, dtype=np.float32):
        for q0 in range(0, len(queries), 1024):
            s = queries[q0 : q0 + 1024] @ block.T
            kk = min(k, s.shape[1])
            part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
            cat_s = np.concatenate([best_s[q0 : q0 + 1024], np.take_along_axis(s, part, 1)], 1)
            cat_i = np.concatenate([best_i[q0 : q0 + 1024], part + lo], 1)
            order = np.argsort(-cat_s, axis=1, kind="stable")[:, :k]
            best_s[q0 : q0 + 1024] = np.take_along_axis(cat_s, order, 1)
            best_i[q0 : q0 + 1024] = np.take_along_axis(cat_i, order, 1)
    np.save(cache, best_i)
    return best_i


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    return sum(len(set(g.tolist()) & set(t.tolist())) for g, t in zip(got, truth, strict=True)) / truth.size


# -------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    c = sub.add_parser("child")
    c.add_argument("--folder", required=True)
    c.add_argument("--dtype", default="default")
    c.add_argument("--k", type=int, default=100)
    c.add_argument("--rows-out", required=True)
    parser.add_argument("--num-docs", type=int, nargs="+", default=[2_000_000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=2775)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--recall-queries", type=int, help="fp32 ground truth for the first N queries only (time)")
    parser.add_argument("--dtypes", nargs="+", default=["default"],
                        help="index dtypes to load with: default (= stored fp16), fp16, bf16, fp32")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/relik-jax-index-scale"))
    parser.add_argument("--compare", type=Path, help="another checkout to run the same load + search (baseline)")
    parser.add_argument("--output", type=Path, default=RESULTS / "index_scale.json")
    parser.add_argument("--delete", action="store_true", help="remove the synthetic index afterwards")
    args = parser.parse_args()
    if args.command == "child":
        child(args)
        return

    results = json.loads(args.output.read_text()) if args.output.exists() else {"runs": []}
    for n in args.num_docs:
        folder = args.workdir / f"n{n}-d{args.dim}"
        if not (folder / "COMPLETE").exists():
            t = time.perf_counter()
            write_index(folder, n, args.dim, args.queries)
            print(f"wrote {folder} in {time.perf_counter() - t:.0f} s")
        file_gb = (folder / "embeddings.pt").stat().st_size / 2**30
        truth = exact_top_k(folder, args.k, folder / f"exact_fp32_top{args.k}.npy", args.recall_queries)
        runs = [(d, REPO) for d in args.dtypes] + ([("default", args.compare)] if args.compare else [])
        for dtype, checkout in runs:
            out = run_child(folder, dtype, args.k, folder / "rows.npy", checkout)
            got = np.load(folder / "rows.npy")
            out.update({
                "num_docs": n, "dim": args.dim, "queries": args.queries, "k": args.k, "requested_dtype": dtype,
                "checkout": str(checkout), "embeddings_file_gb": file_gb,
                "documents_file_gb": (folder / "documents.jsonl").stat().st_size / 2**30,
                "rss_budget_gb": budget_gb(file_gb),
                "recall_queries": len(truth), "recall_at_k_vs_fp32_exact": recall(got[: len(truth)], truth),
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                "load_average_after": os.getloadavg(),  # the cores are shared: timings vary with other work
            })
            out["device_bytes_ok"] = out["device_bytes"] == n * args.dim * np.dtype(out["dtype"]).itemsize
            results["runs"] = [r for r in results["runs"] if not (
                r["num_docs"] == n and r["requested_dtype"] == dtype and r["checkout"] == str(checkout))] + [out]
            print(json.dumps(out))
        if args.delete:
            for p in folder.iterdir():
                p.unlink()
            folder.rmdir()
    results["projection_5_9M"] = project(results["runs"], args.dim)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    table(results)


def budget_gb(file_gb: float) -> float:
    """The acceptance bound on peak host RSS: 1.25 × the embeddings file + 0.5 GB (in GiB)."""
    return 1.25 * file_gb + 0.5e9 / 2**30


def project(runs: list[dict], dim: int) -> dict:
    """Linear projection to 5.9M documents from the largest smaller run of this checkout (default dtype); the
    runtime and working memory beyond the device copy are taken as independent of N."""
    mine = [r for r in runs if r["checkout"] == str(REPO) and r["requested_dtype"] == "default"
            and r["num_docs"] < WIKIPEDIA_DOCS]
    if not mine:
        return {}
    r = max(mine, key=lambda r: r["num_docs"])
    scale = WIKIPEDIA_DOCS / r["num_docs"]
    file_gb = WIKIPEDIA_DOCS * dim * 2 / 2**30
    overhead = r["time_v_max_rss_gb"] - r["device_bytes"] / 2**30
    return {"from_num_docs": r["num_docs"], "num_docs": WIKIPEDIA_DOCS, "embeddings_file_gb": file_gb,
            "device_bytes": WIKIPEDIA_DOCS * dim * 2, "peak_rss_gb": file_gb + overhead,
            "rss_budget_gb": budget_gb(file_gb), "load_s": r["load_s"] * scale, "query_s": r["query_s"] * scale}


def table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Index at scale: reference-format N × d fp16 index, top-100 for the queries (CPU device)")
    for col in ("checkout", "N", "dtype", "file GiB", "load s", "device GiB", "peak RSS GiB", "budget GiB",
                "query s", "recall@100"):
        t.add_column(col, justify="right")
    for r in sorted(results["runs"], key=lambda r: (r["checkout"], r["num_docs"], r["requested_dtype"])):
        r["rss_budget_gb"] = budget_gb(r["embeddings_file_gb"])
        t.add_row(Path(r["checkout"]).name, f"{r['num_docs']:,}", r["dtype"], f"{r['embeddings_file_gb']:.2f}",
                  f"{r['load_s']:.1f}", f"{r['device_bytes'] / 2**30:.2f}", f"{r['time_v_max_rss_gb']:.2f}",
                  f"{r['rss_budget_gb']:.2f}", f"{r['query_s']:.1f}", f"{r['recall_at_k_vs_fp32_exact']:.5f}")
    p = results.get("projection_5_9M")
    if p:
        t.add_row(f"projection from {p['from_num_docs']:,}", f"{p['num_docs']:,}", "float16",
                  f"{p['embeddings_file_gb']:.2f}", f"{p['load_s']:.0f}", f"{p['device_bytes'] / 2**30:.2f}",
                  f"{p['peak_rss_gb']:.2f}", f"{p['rss_budget_gb']:.2f}", f"{p['query_s']:.0f}", "")
    Console(width=200).print(t)


if __name__ == "__main__":
    main()
