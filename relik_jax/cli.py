"""`relik-jax` command line: annotate, add-candidates, convert, index build, serve (--json / --nif)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.progress import Progress

from relik_jax.data.jsonl import read_jsonl, write_jsonl
from relik_jax.engine import distributed
from relik_jax.engine.host_memory import freeze_loaded_objects, reuse_freed_memory
from relik_jax.evaluation.gerbil import service as nif_service
from relik_jax.inference.files import ResumeError, annotate_file
from relik_jax.inference.pipeline import Relik, RelikConfig
from relik_jax.inference.pretrained import pretrained_folder
from relik_jax.inference.ray_annotate import annotate_corpus
from relik_jax.reader.convert import load_reference_reader, save_reader
from relik_jax.retriever.build import build_index
from relik_jax.retriever.encoder import Retriever, load_encoder, save_encoder
from relik_jax.retriever.encoder import add_candidates as add
from relik_jax.retriever.index import DocumentIndex
from relik_jax.serve.backends import RelikBackend
from relik_jax.serve.json_api import serve_json
from relik_jax.serve.worker import Worker


def annotate(args: argparse.Namespace) -> None:
    """Annotate a file into JSONL, one line per document in input order; see relik_jax/inference/files.py for the
    reading (per-line decoding, error records), atomic appends and --resume. With --ray, on a Ray cluster into a
    folder of part files (relik_jax/inference/ray_annotate.py); with --num-processes, this process's share into
    OUTPUT with a `.process-I-of-N` suffix (--coordinator also starts jax.distributed)."""
    src, dst = Path(args.input), Path(args.output)
    if not src.exists():
        raise SystemExit(f"annotate: INPUT {src} does not exist")
    # the pipeline's saved top_k unless --top-k is given
    settings = {"dtype": args.precision, **({"top_k": args.top_k} if args.top_k else {}),
                **({"devices": args.devices} if args.devices else {})}
    if args.ray is not None:
        annotate_ray(args, src, dst, settings)
        return
    coordinator = args.coordinator or os.environ.get(distributed.ENV["coordinator"])
    if coordinator:
        shard = distributed.initialize(coordinator, args.num_processes, args.process_id)
    else:
        shard = distributed.process_shard(args.process_id, args.num_processes)
    dst = dst.with_name(dst.stem + shard.suffix + dst.suffix)
    relik = Relik.from_pretrained(args.model, **settings)
    freeze_loaded_objects()  # full garbage collections stop walking the loaded pipeline
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("annotating (windows)", total=None)
        try:
            report = annotate_file(relik, src, dst, resume=args.resume, on_error=args.on_error,
                                   group_size=args.group_size, progress=lambda n: progress.advance(task, n),
                                   shard=shard)
        except ResumeError as err:
            raise SystemExit(f"annotate --resume: {err}") from None
    resumed = f", {report.resumed} already there (--resume)" if report.resumed else ""
    print(f"{dst}: {report.written} documents written{resumed}", file=sys.stderr)
    if report.failed:
        example = f", e.g. {report.first_error}" if report.first_error else " (error lines written by an earlier run)"
        if args.on_error == "fail":
            raise SystemExit(f"annotate: stopped at {report.first_error}")
        raise SystemExit(f"annotate: {report.failed} of {report.documents} documents failed{example}")


def annotate_ray(args: argparse.Namespace, src: Path, dst: Path, settings: dict) -> None:
    if args.num_processes or args.coordinator:
        raise SystemExit("annotate: --ray distributes the documents itself (drop --num-processes / --coordinator)")
    if args.on_error == "fail":
        raise SystemExit("annotate --ray writes error records (--on-error skip); check the report's failures")
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("annotating (documents)", total=None)
        try:
            report = annotate_corpus(args.model, src, dst, address=args.ray or None, num_actors=args.num_actors,
                                     num_gpus_per_actor=args.gpus_per_actor,
                                     group_size=args.group_size, fmt=args.output_format,
                                     relik_kwargs=settings, progress=lambda n: progress.advance(task, n))
        except ResumeError as err:
            raise SystemExit(f"annotate --ray: {err}") from None
    resumed = f", {report.resumed_documents} already there" if report.resumed_documents else ""
    print(f"{dst}/: {report.documents} documents written in {report.groups} parts{resumed} "
          f"({report.seconds:.1f} s)", file=sys.stderr)
    if report.failed:
        raise SystemExit(f"annotate: {report.failed} documents failed, e.g. {report.first_error}")


def add_candidates(args: argparse.Namespace) -> None:

    for name, folder in (("ENCODER", args.encoder), ("INDEX", args.index)):
        if not Path(folder).is_dir():
            raise SystemExit(f"add-candidates: {name} {folder} is not a folder")
    if not Path(args.input).is_file():
        raise SystemExit(f"add-candidates: IN {args.input} is not a file (windowized JSONL, one window per line)")
    retriever = Retriever.from_pretrained(args.encoder, args.index, batch_size=args.batch_size)
    counts: dict[str, int] = {}
    rows = add(retriever, read_jsonl(args.input), args.top_k, relations=args.relations,
               use_doc_topics=args.use_doc_topics, recall=counts)
    n = write_jsonl(rows, args.output)
    line = f"wrote {n} windows with top-{args.top_k} candidates to {args.output}"
    if counts.get("gold"):
        found, gold = counts["found"], counts["gold"]
        line += f"; recall@{args.top_k} {found / gold:.4f} ({found}/{gold} gold)"
    print(line)


def convert(args: argparse.Namespace) -> None:
    if args.kind != "pipeline" and not args.source:
        raise SystemExit(f"convert {args.kind} needs SOURCE and DESTINATION folders")
    if args.kind == "reader":

        save_reader(args.destination, *load_reference_reader(args.source))
    elif args.kind == "retriever":

        config, encoder = load_encoder(args.source)
        save_encoder(encoder, config, args.destination, tokenizer_folder=args.source)
    elif args.kind == "index":
        # File to file: vectors memory-mapped and streamed, documents copied; no searcher is built.
        DocumentIndex.from_reference(args.source).save(args.destination)
    elif args.kind == "pipeline" and args.source:
        # a relik pipeline (config.yaml; folder or hub id): its components and settings as the config names them
        pretrained_folder(args.source, destination=args.destination, progress=sys.stderr.isatty())
    elif args.kind == "pipeline":

        task = args.task or "span"
        folders = {"reader": args.reader, "span_retriever": args.span_retriever, "span_index": args.span_index,
                   "triplet_retriever": args.triplet_retriever, "triplet_index": args.triplet_index}
        if not args.reader:
            raise SystemExit("convert pipeline needs --reader (and --span-retriever/--span-index and/or "
                             "--triplet-retriever/--triplet-index)")
        Relik.assemble(args.destination, RelikConfig(task=task, top_k=args.top_k or 100,
                                                     window_size=args.window_size, window_stride=args.window_stride),
                       **folders)
    print(f"wrote {args.destination}")


def index(args: argparse.Namespace) -> None:
    if args.action == "build":
        build_index(args.encoder, args.documents, args.out, dtype=args.dtype, backend=args.backend,
                    batch_size=args.batch_size, passage_max_length=args.passage_max_length,
                    metadata_fields=args.metadata_fields, separator=args.separator, chunk_rows=args.chunk_rows,
                    progress=sys.stderr.isatty())


def serve(args: argparse.Namespace) -> None:
    """`serve --nif` (GERBIL), `--json` (relik's `relik serve` API) or both on one worker, i.e. one model."""
    if not (args.nif or args.json):
        raise SystemExit("serve needs --json (relik's JSON API) and/or --nif (NIF for GERBIL)")
    if args.gold:
        if args.json:
            raise SystemExit("serve --gold serves gold annotations over NIF only (drop --json)")
        nif_service.main(["--host", args.host, "--port", str(1235 if args.port is None else args.port),
                          "--gold", args.gold])
        return
    if not args.model:
        raise SystemExit("serve needs --model PIPELINE_FOLDER (or --nif --gold DATASET to serve gold annotations)")
    relik = Relik.from_pretrained(args.model, dtype=args.precision,
                                  **({"top_k": args.top_k} if args.top_k else {}))
    # the slice a long document runs before short requests get a turn (see relik_jax/serve/worker.py)
    relik.config.chunk_windows = args.chunk_windows
    freeze_loaded_objects()  # full garbage collections stop walking the loaded pipeline
    backend = RelikBackend(relik)
    worker = Worker(backend, max_batch=args.max_batch, max_queue=args.max_queue, long_chars=args.long_chars)
    nif_port = args.nif_port if args.json else (1235 if args.port is None else args.port)
    try:
        if args.nif and args.json:
            nif = nif_service.serve_nif(worker=worker, host=args.host, port=nif_port, block=False, verbose=True)
            print(f"NIF service on {nif.url}/ (paths /dbpedia, /wikipedia choose the URI style)", flush=True)
        if args.json:
            serve_json(worker, backend.limits(), host=args.host, port=8000 if args.port is None else args.port,
                       block=True, log_level="info")
        else:
            nif_service.serve_nif(worker=worker, host=args.host, port=nif_port, block=True, verbose=True)
    finally:
        worker.close()


def main(argv: Sequence[str] | None = None) -> None:
    reuse_freed_memory()  # before JAX's CPU backend starts: XLA's per-call temporary buffers stop page-faulting in
    parser = argparse.ArgumentParser(prog="relik-jax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    a = sub.add_parser("annotate", help="annotate a .txt / .jsonl file or a folder of .txt files")
    a.add_argument("model", help="pipeline folder (relik.json + reader/ + retriever-*/ + index-*/)")
    a.add_argument("input")
    a.add_argument("output", help="JSONL, one RelikOutput per input document")
    a.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    a.add_argument("--top-k", type=int, default=None, help="default: the pipeline's saved top_k")
    a.add_argument("--on-error", choices=["skip", "fail"], default="skip",
                   help="skip: write an error line {id, error} and go on (exit 1 at the end); fail: stop there")
    a.add_argument("--resume", action="store_true",
                   help="continue an interrupted run: keep OUTPUT's complete lines, annotate the rest")
    a.add_argument("--group-size", type=int, default=256,
                   help="documents per model stream (fixed groups make --resume byte-identical)")
    a.add_argument("--devices", type=int, default=None,
                   help="data-parallel over the first N local devices (jax.sharding; default: one device)")
    a.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="annotate on Ray Data ([ray] extra) into the folder OUTPUT (part files, resumed by "
                   "re-running); ADDRESS of a running cluster, none: RAY_ADDRESS or a local one. Put it after "
                   "OUTPUT or write --ray=ADDRESS")
    a.add_argument("--num-actors", type=int, default=None,
                   help="--ray: model replicas (default: one per GPU, else one per CPU of the cluster)")
    a.add_argument("--gpus-per-actor", type=float, default=None,
                   help="--ray: GPU share of each replica; 0.5 runs two pipelines per GPU, so two host processes "
                   "feed it (default: 1 with GPUs)")
    a.add_argument("--output-format", choices=["jsonl", "parquet"], default="jsonl", help="--ray: part files")
    a.add_argument("--process-id", type=int, default=None,
                   help="multi-host: this process's index (default: $JAX_PROCESS_ID or jax.distributed)")
    a.add_argument("--num-processes", type=int, default=None,
                   help="multi-host: process count; process i annotates the groups g with g %% N == i into "
                   "OUTPUT.process-i-of-N (default: $JAX_NUM_PROCESSES or 1)")
    a.add_argument("--coordinator", default=None,
                   help="multi-host: host:port of process 0; starts jax.distributed (default: "
                   "$JAX_COORDINATOR_ADDRESS when given, else no jax.distributed)")
    a.set_defaults(fn=annotate)

    r = sub.add_parser("add-candidates", help="add retrieved candidates to windowized JSONL (reader training data)")
    r.add_argument("encoder", help="retriever encoder folder (ours or the reference's)")
    r.add_argument("index", help="index folder (ours or the reference's)")
    r.add_argument("input", help="windowized JSONL (relik data create-windows format)")
    r.add_argument("output")
    r.add_argument("--top-k", type=int, default=100)
    r.add_argument("--relations", action="store_true", help="write triplet_candidates (relation index)")
    r.add_argument("--use-doc-topics", action="store_true", help="doc_topic as the query's text pair")
    r.add_argument("--batch-size", type=int, default=128)
    r.set_defaults(fn=add_candidates)

    c = sub.add_parser("convert", help="reference reader / retriever / index folder -> ours; or assemble a pipeline")
    c.add_argument("kind", choices=["reader", "retriever", "index", "pipeline"])
    c.add_argument("source", nargs="?", help="reference folder (reader, retriever, index); pipeline: a relik "
                   "pipeline folder or hub id (config.yaml), converted with its settings (no --reader etc.)")
    c.add_argument("destination")
    c.add_argument("--reader", help="pipeline: reader folder (reference or ours)")
    c.add_argument("--span-retriever", help="pipeline: entity retriever encoder folder")
    c.add_argument("--span-index", help="pipeline: entity index folder (reference or ours)")
    c.add_argument("--triplet-retriever", help="pipeline: relation retriever encoder folder")
    c.add_argument("--triplet-index", help="pipeline: relation index folder")
    c.add_argument("--task", choices=["span", "triplet", "both"])
    c.add_argument("--top-k", type=int)
    c.add_argument("--window-size", type=int)
    c.add_argument("--window-stride", type=int)
    c.set_defaults(fn=convert)

    i = sub.add_parser("index", help="document indexes: build one from a KB file")
    isub = i.add_subparsers(dest="action", required=True)
    b = isub.add_parser("build", help="encode a KB (documents.jsonl) into an index folder; resumable (re-run the "
                                      "same command after an interruption), loads in relik 1.0.7 too")
    b.add_argument("--encoder", required=True, help="retriever encoder folder, or all-MiniLM-L6-v2")
    b.add_argument("--documents", required=True, help='KB JSONL, one {"text", "id", "metadata"} per line')
    b.add_argument("--out", required=True, help="index folder to write")
    b.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"], help="stored vectors (default fp16)")
    b.add_argument("--backend", default="exact", choices=["exact", "scann"])
    b.add_argument("--batch-size", type=int, default=512, help="passages per encoder batch")
    b.add_argument("--passage-max-length", type=int, default=64)
    b.add_argument("--metadata-fields", nargs="*", default=[], help="metadata appended to the text (e.g. definition)")
    b.add_argument("--separator", default=" <def> ")
    b.add_argument("--chunk-rows", type=int, default=4096, help="passages encoded between two checkpoints")
    b.set_defaults(fn=index)

    s = sub.add_parser("serve", help="web services: JSON (relik's `relik serve` API) and/or NIF for GERBIL (A2KB)")
    s.add_argument("--json", action="store_true", help="JSON API: GET/POST /api/relik, GET /health ([serve] extra)")
    s.add_argument("--nif", action="store_true", help="NIF Turtle over HTTP for GERBIL")
    s.add_argument("--model", help="pipeline folder")
    s.add_argument("--gold", help="serve the gold annotations of a dataset instead of a model (testing, --nif)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=None, help="default 8000 (--json) or 1235 (--nif alone)")
    s.add_argument("--nif-port", type=int, default=1235, help="NIF port when serving both (default 1235)")
    s.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    s.add_argument("--top-k", type=int, default=None, help="default: the pipeline's saved top_k")
    s.add_argument("--max-batch", type=int, default=32, help="short documents per model call")
    s.add_argument("--max-queue", type=int, default=4096, help="documents waiting before 503 + Retry-After")
    s.add_argument("--long-chars", type=int, default=10_000, help="documents longer run in the long lane")
    s.add_argument("--chunk-windows", type=int, default=64,
                   help="windows a long document runs before waiting short requests get a turn")
    s.set_defaults(fn=serve)

    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
