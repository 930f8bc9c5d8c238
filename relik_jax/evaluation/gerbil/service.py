"""A NIF web service GERBIL can call, wrapping any annotator callable (stdlib http.server, loopback by default).

GERBIL POSTs one NIF Turtle document per request (`Content-Type: application/x-turtle`) holding a `nif:Context`
with `nif:isString`; the answer is the same context plus one phrase per predicted mention (`nif:beginIndex`,
`nif:endIndex` in UTF-16 code units, `itsrdf:taIdentRef` DBpedia or Wikipedia URI).

Documents go through the shared worker (`relik_jax.serve.worker`): requests arriving together are annotated in one
call, a long document pauses between chunks for short ones, and a document that fails fails alone. Answers:
- 400 with the reason for a malformed request or a document the pipeline rejects (e.g. a lone surrogate from a
  `\uD800` escape), 411 / 413 / 415 for missing length / too large / wrong content type (none: accepted);
- 500 only for a server fault (the annotator raised or answered spans outside the text) on *this* request's
  document; 503 with Retry-After when the queue is full or the annotator did not answer in time.
The server itself never stops on bad input.

annotator(texts: list[str]) -> list[list[(char_start, char_end_exclusive, wikipedia_title)]], Python offsets.
The URI style is chosen per request path: `/dbpedia` or `/wikipedia` (any other path: the server's default), so
one server can serve GERBIL experiments on datasets that expect different KB URIs. GERBIL's side of the exchange
is `client.NifClient`; `main` serves a dataset's gold annotations (`gold_annotator`), to test a GERBIL setup.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from relik_jax.evaluation.gerbil.datasets import load_gerbil_dataset
from relik_jax.evaluation.gerbil.nif import NifDocument, NifError, NifMention, OffsetMap, parse_nif, write_nif
from relik_jax.evaluation.gerbil.uris import DBPEDIA_RESOURCE, UriNormalizer, is_kb_uri, title_to_uri, uri_to_title
from relik_jax.inference.validation import DocumentError, check_text
from relik_jax.serve.worker import DocumentFailed, Overloaded, RequestTooLarge, Worker, WorkerClosed, plain_backend

Annotator = Callable[[list[str]], list[list[tuple[int, int, str]]]]
URI_STYLES = ("dbpedia", "wikipedia")
TURTLE = "application/x-turtle;charset=UTF-8"
ACCEPTED_TYPES = ("application/x-turtle", "text/turtle", "application/turtle")


class AnnotatorError(RuntimeError):
    """The annotator returned something that is not a list of (start, end, title) inside the text."""


def check_spans(text: str, spans: object) -> list[tuple[int, int, str]]:
    """`spans` if they are (start, end, title) with 0 <= start < end <= len(text) and a title; else AnnotatorError."""
    if not isinstance(spans, (list, tuple)):
        raise AnnotatorError(f"annotator must return a list of (start, end, title) per text, "
                             f"got {type(spans).__name__}")
    for span in spans:
        if not (isinstance(span, (list, tuple)) and len(span) == 3):
            raise AnnotatorError(f"annotation {span!r} is not (start, end, title)")
        start, end, title = span
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            raise AnnotatorError(f"span ({start!r}, {end!r}) outside [0, {len(text)}] or empty")
        if not isinstance(title, str) or not title.strip():
            raise AnnotatorError(f"title {title!r} is not a non-empty string")
    return list(spans)


# ----------------------------------------------------------------------------------------------------
# HTTP server
# ----------------------------------------------------------------------------------------------------


def annotate_documents(
    docs: Sequence[NifDocument], results: Sequence[Sequence[tuple[int, int, str]]], uri_style: str
) -> list[NifDocument]:
    """Answer documents: same context URI and text, one mention per prediction (UTF-16 offsets, KB URIs)."""
    out = []
    for doc, spans in zip(docs, results, strict=True):
        offsets = OffsetMap(doc.text)
        mentions = [
            NifMention(
                offsets.to_utf16(s), offsets.to_utf16(e), (title_to_uri(t, uri_style),), anchor=doc.text[s:e]
            )
            for s, e, t in spans
        ]
        out.append(NifDocument(doc.uri, doc.text, mentions))
    return out


class _Handler(BaseHTTPRequestHandler):
    server: NifHTTPServer
    protocol_version = "HTTP/1.0"
    # stdlib default HTTP/0.9 would answer a garbled request line without a status line
    default_request_version = "HTTP/1.0"
    timeout = 30  # seconds a client may take to send its request (no slow client can hold a thread forever)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            super().log_message(format, *args)

    def _reply(self, code: int, body: str, content_type: str = "text/plain; charset=utf-8",
               headers: dict[str, str] | None = None) -> None:
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, reason: str, headers: dict[str, str] | None = None) -> None:
        self.server.count("errors_" + str(code))
        self._reply(code, reason + "\n", headers=headers)

    def do_GET(self) -> None:
        if urlsplit(self.path).path.rstrip("/") == "/health":
            stats = self.server.worker.stats()
            return self._reply(200, "".join(f"{k} {v}\n" for k, v in {"status": "ok", **stats}.items()))
        self._reply(200, "relik-jax NIF annotator: POST a NIF Turtle document (application/x-turtle)\n")

    def _read_documents(self) -> list[NifDocument] | None:
        """The request's documents, or None after answering the error."""
        srv = self.server
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype and ctype not in ACCEPTED_TYPES:
            return self._error(415, f"Content-Type must be application/x-turtle (NIF Turtle), got {ctype!r}")
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return self._error(411, "Content-Length header required")
        try:
            length = int(length_header)
        except ValueError:
            return self._error(400, f"Content-Length is not an integer: {length_header!r}")
        if length < 0 or length > srv.max_body_bytes:
            return self._error(413, f"body of {length} bytes outside [0, {srv.max_body_bytes}]")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            return self._error(408, "request body not received in time")
        if len(body) != length:
            return self._error(400, f"body ended after {len(body)} of {length} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as err:
            return self._error(400, f"body is not UTF-8: {err}")
        try:
            corpus = parse_nif(text, strict=True)
        except NifError as err:
            return self._error(400, f"malformed NIF: {err}")
        except Exception as err:  # anything rdflib lets through is still the request's fault, never a crash
            return self._error(400, f"malformed NIF: {type(err).__name__}: {err}")
        if not corpus.documents:
            return self._error(400, "malformed NIF: no nif:Context with nif:isString in the request")
        for doc in corpus.documents:
            try:  # a `\uD800` escape parses into a lone surrogate, which no model (nor UTF-8) accepts
                check_text(doc.text, what="nif:isString")
            except DocumentError as err:
                return self._error(400, f"context <{doc.uri}>: {err.reason}")
        return corpus.documents

    def do_POST(self) -> None:
        srv = self.server
        style = urlsplit(self.path).path.rstrip("/").rsplit("/", 1)[-1]
        uri_style = style if style in URI_STYLES else srv.uri_style
        docs = self._read_documents()
        if docs is None:
            return
        try:
            future = srv.worker.submit([d.text for d in docs])
        except Overloaded as err:
            return self._error(503, f"busy: {err}", {"Retry-After": str(err.retry_after_s)})
        except RequestTooLarge as err:
            return self._error(413, str(err))
        except WorkerClosed as err:
            return self._error(503, str(err))
        try:
            results = future.result(timeout=srv.annotate_timeout_s)
            results = [check_spans(d.text, r) for d, r in zip(docs, results, strict=True)]
        except FutureTimeout:
            future.cancel()
            return self._error(503, f"annotator did not answer within {srv.annotate_timeout_s} s",
                               {"Retry-After": "30"})
        except DocumentFailed as err:
            uri = docs[err.index].uri
            if err.client_error:
                return self._error(400, f"context <{uri}>: {err.reason}")
            return self._error(500, f"annotator failed on context <{uri}>: {err.reason}")
        except (AnnotatorError, WorkerClosed) as err:
            return self._error(500, f"annotator failed: {err}")
        answer = write_nif(annotate_documents(docs, results, uri_style))
        srv.count("answered")
        self._reply(200, answer, TURTLE)


class NifHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # 50+ clients connecting at once must not overflow the listen backlog

    def __init__(self, address, worker: Worker, uri_style: str, max_body_bytes: int,
                 annotate_timeout_s: float, verbose: bool):  # fmt: skip
        super().__init__(address, _Handler)
        self.worker = worker
        self.uri_style = uri_style
        self.max_body_bytes = max_body_bytes
        self.annotate_timeout_s = annotate_timeout_s
        self.verbose = verbose
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1


class NifServer:
    """A running service: `url`, `counts` (answered / errors_<code>), `batcher` (the worker) stats, `shutdown()`."""

    def __init__(self, httpd: NifHTTPServer, thread: threading.Thread | None, owns_worker: bool = True):
        self.httpd = httpd
        self.thread = thread
        self.owns_worker = owns_worker
        host, port = httpd.server_address[:2]
        self.url = f"http://{host}:{port}"

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.httpd.counts)

    @property
    def batcher(self) -> Worker:
        return self.httpd.worker

    def _close_worker(self) -> None:
        if self.owns_worker:
            self.httpd.worker.close()

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever()
        finally:
            self.httpd.server_close()
            self._close_worker()

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._close_worker()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def __enter__(self) -> NifServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def serve_nif(
    annotator: Annotator | None = None,
    host: str = "127.0.0.1",
    port: int = 1235,
    uri_style: str = "dbpedia",
    max_batch: int = 32,
    max_wait_ms: float = 2.0,
    max_body_bytes: int = 10_000_000,
    annotate_timeout_s: float = 300.0,
    block: bool = True,
    verbose: bool = False,
    worker: Worker | None = None,
) -> NifServer:
    """Serve `annotator` (or a running `worker`, e.g. one shared with the JSON API) as a GERBIL NIF web service on
    host:port (port 0: any free port).

    block=True serves until interrupted; block=False starts a background thread and returns the NifServer
    (call .shutdown(); a worker passed in is left running).
    """
    if uri_style not in URI_STYLES:
        raise ValueError(f"uri_style must be one of {URI_STYLES}, got {uri_style!r}")
    if (annotator is None) == (worker is None):
        raise ValueError("serve_nif needs an annotator or a worker (one of them)")
    owns = worker is None
    if worker is None:
        worker = Worker(plain_backend(annotator), max_batch=max_batch, max_wait_s=max_wait_ms / 1000)
    httpd = NifHTTPServer((host, port), worker, uri_style, max_body_bytes, annotate_timeout_s, verbose)
    if block:
        server = NifServer(httpd, None, owns)
        print(f"NIF service on {server.url}/ (paths /dbpedia, /wikipedia choose the URI style)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        return server
    thread = threading.Thread(target=httpd.serve_forever, name="nif-http", daemon=True)
    thread.start()
    return NifServer(httpd, thread, owns)


# ----------------------------------------------------------------------------------------------------
# Gold annotator (testing the whole path) and CLI entry
# ----------------------------------------------------------------------------------------------------


def gold_titles(doc: NifDocument, normalizer: UriNormalizer | None = None) -> list[tuple[int, int, str]]:
    """InKB gold mentions of a document as annotator output: (char_start, char_end, Wikipedia title)."""
    normalizer = normalizer or UriNormalizer()
    offsets = OffsetMap(doc.text)
    out = []
    for m in doc.mentions:
        uris = normalizer.expand(m.uris)
        if not any(is_kb_uri(u) for u in uris):
            continue  # emerging entity: an annotator answering Wikipedia titles has nothing to say
        candidates = sorted(uris, key=lambda u: (not u.startswith(DBPEDIA_RESOURCE), "%" in u, u))
        title = next((t for t in map(uri_to_title, candidates) if t), None)
        if title is None or m.begin >= m.end:
            continue
        out.append((offsets.to_py(m.begin), offsets.to_py(m.end), title))
    return out


def gold_annotator(
    docs: Sequence[NifDocument], same_as: dict[str, set[str]] | None = None, sequenced: bool = True
) -> Annotator:
    """An annotator answering each known text with its gold InKB mentions (unknown texts: nothing).

    Some datasets repeat a text with different gold (RSS-500 has 9 such sentences). sequenced=True answers the
    k-th request for a text with the k-th such document's gold (exact when documents are sent in dataset
    order,
    e.g. evaluate_gerbil(clients=1)); sequenced=False answers the union (what any text-only annotator faces).
    """
    normalizer = UriNormalizer(same_as)
    table: dict[str, list[list[tuple[int, int, str]]]] = {}
    for doc in docs:
        table.setdefault(doc.text, []).append(gold_titles(doc, normalizer))
    union = {t: sorted({s for spans in lists for s in spans}) for t, lists in table.items()}
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def annotate(texts: list[str]) -> list[list[tuple[int, int, str]]]:
        out = []
        for t in texts:
            if t not in table:
                out.append([])
            elif not sequenced:
                out.append(list(union[t]))
            else:
                with lock:
                    k = seen.get(t, 0)
                    seen[t] = k + 1
                out.append(list(table[t][k % len(table[t])]))
        return out

    return annotate


def main(argv: Sequence[str] | None = None) -> int:
    """`relik-jax serve --nif` entry (for now serving gold annotations of a dataset, useful to test
    GERBIL)."""
    parser = argparse.ArgumentParser(prog="relik-jax serve --nif", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gold", required=True, help="GERBIL dataset name (e.g. kore50) or NIF .ttl file to serve"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1235)
    parser.add_argument("--uri-style", choices=URI_STYLES, default="dbpedia")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    ds = load_gerbil_dataset(args.gold)
    serve_nif(
        gold_annotator(ds.documents, ds.same_as),
        host=args.host,
        port=args.port,
        uri_style=args.uri_style,
        max_batch=args.max_batch,
        verbose=args.verbose,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
