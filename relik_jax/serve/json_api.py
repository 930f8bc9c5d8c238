"""The JSON HTTP API, compatible with relik 1.0.7's `relik serve` (FastAPI + uvicorn, the `[serve]` extra).

relik's server (relik/inference/serve/backend/fastapi_be.py) answers `GET /api/relik?text=...&text=...` with query
parameters `top_k, window_size, window_stride, is_split_into_words, retriever_batch_size, reader_batch_size,
return_windows, use_doc_topic, annotation_type, relation_threshold`, and returns a JSON list with one
`RelikOutput.to_dict()` per text (`text, tokens, spans, triplets, candidates`, `windows` when asked). Same here,
plus `POST /api/relik` with a JSON object body of the same fields (`"text"`: a string or a list of strings; relik's
Ray backend takes `text` there too): a long document does not fit in a URL. `GET /health` reports the worker.

Validation, per request: unknown parameters, wrong types and values this server cannot honour get 422 with a reason
(`{"detail": ...}`, FastAPI's error shape); a document the pipeline rejects gets 422 naming its index (e.g. a lone
surrogate from a `\\ud800` JSON escape, at its character offset). Parameters fixed when the pipeline was loaded
(`window_size`, `window_stride`, `use_doc_topic`, `relation_threshold` for relation pipelines) are accepted when
equal to the loaded value; the batch sizes are accepted and ignored (the worker batches across requests);
`annotation_type` must be "char". Extension: `keep_candidates=false` leaves the (large) candidate lists out.
Server faults on a document give 500 naming it; a full queue 503 with Retry-After; other requests are unaffected
(the worker isolates documents, see worker.py). A body above `max_body_bytes` gets 413 before it is read.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request) at definition time,
# and fastapi is imported inside build_app (optional extra)
import asyncio
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from relik_jax.inference.validation import DocumentError, check_text
from relik_jax.serve.backends import JsonOptions
from relik_jax.serve.worker import DocumentFailed, Overloaded, RequestTooLarge, Worker, WorkerClosed

__all__ = ["PARAMETERS", "JsonServer", "RequestError", "build_app", "parse_request", "serve_json"]

# relik 1.0.7's query parameters (fastapi_be.RelikServer.relik_endpoint) + ours (keep_candidates)
PARAMETERS = ("text", "top_k", "window_size", "window_stride", "is_split_into_words", "retriever_batch_size",
              "reader_batch_size", "return_windows", "use_doc_topic", "annotation_type", "relation_threshold",
              "keep_candidates")
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
SERVE_EXTRA = "the JSON service needs FastAPI and uvicorn: pip install 'relik-jax[serve]'"


class RequestError(ValueError):
    """A request this API refuses: `status` (400 / 413 / 422) and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise RequestError(422, f"{name} must be a boolean (true / false), got {value!r}")


def _as_int(name: str, value: Any, low: int, high: int) -> int:
    number = value
    if isinstance(value, str):  # query parameters arrive as strings
        try:
            number = int(value.strip())
        except ValueError:
            pass
    if not isinstance(number, int) or isinstance(number, bool) or not low <= number <= high:
        raise RequestError(422, f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return number


def _fixed(name: str, value: Any, loaded: Any) -> None:
    if value is not None and value != loaded:
        raise RequestError(422, f"{name} is fixed when the pipeline is loaded (this server: {loaded!r}), "
                                f"got {value!r}")


def parse_request(params: Mapping[str, Any], limits: Mapping[str, Any]) -> tuple[list[Any], JsonOptions]:
    """(documents, options) of a request's parameters (query or JSON body), or a RequestError saying why not."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise RequestError(422, f"unknown parameter(s) {', '.join(map(repr, unknown))}; known: {', '.join(PARAMETERS)}")
    if params.get("text") is None:
        raise RequestError(422, 'parameter "text" is required (a string or a list of strings)')
    split = _as_bool("is_split_into_words", params.get("is_split_into_words", False))
    text = params["text"]
    if split:  # relik: a list of words is one document; a list of such lists, several
        docs = text if isinstance(text, list) and text and all(isinstance(t, list) for t in text) else [text]
        if not all(isinstance(d, list) for d in docs):
            raise RequestError(422, "with is_split_into_words, text must be a list of words (or of word lists)")
    else:
        docs = [text] if isinstance(text, str) else text
        if not isinstance(docs, list):
            raise RequestError(422, f"text must be a string or a list of strings, got {type(text).__name__}")
    for i, doc in enumerate(docs):
        try:
            for k, piece in enumerate(doc if split else [doc]):
                check_text(piece, i, what=f"word {k}" if split else "text")
        except DocumentError as err:
            raise RequestError(422, str(err)) from None
    top_k = params.get("top_k")
    options = JsonOptions(
        top_k=None if top_k is None else _as_int("top_k", top_k, 1, 100_000),
        return_windows=_as_bool("return_windows", params.get("return_windows", False)),
        keep_candidates=_as_bool("keep_candidates", params.get("keep_candidates", True)),
        is_split_into_words=split,
    )
    for name in ("window_size", "window_stride"):
        value = params.get(name)
        _fixed(name, None if value is None else _as_int(name, value, 1, 1_000_000), limits.get(name))
    use_doc_topic = params.get("use_doc_topic")
    if use_doc_topic is not None and _as_bool("use_doc_topic", use_doc_topic) != bool(limits.get("use_doc_topic")):
        _fixed("use_doc_topic", use_doc_topic, bool(limits.get("use_doc_topic")))
    for name in ("retriever_batch_size", "reader_batch_size"):  # accepted; the worker batches across requests
        if params.get(name) is not None:
            _as_int(name, params[name], 1, 1_000_000)
    annotation_type = params.get("annotation_type")
    if annotation_type not in (None, "char"):
        raise RequestError(422, f"annotation_type must be 'char' (character offsets), got {annotation_type!r}")
    threshold = params.get("relation_threshold")
    if threshold is not None:
        try:
            value = float(threshold)
        except (TypeError, ValueError):
            raise RequestError(422, f"relation_threshold must be a number, got {threshold!r}") from None
        if limits.get("relation_threshold") is not None and abs(value - limits["relation_threshold"]) > 1e-9:
            _fixed("relation_threshold", value, limits["relation_threshold"])
    return docs, options


def _query_params(items: list[tuple[str, str]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in items:
        if key == "text":
            params.setdefault("text", []).append(value)
        elif key in params:
            raise RequestError(422, f"parameter {key!r} given twice")
        else:
            params[key] = value
    return params


def build_app(worker: Worker, limits: Mapping[str, Any] | None = None, *, max_body_bytes: int = 10_000_000,
              annotate_timeout_s: float = 300.0) -> Any:
    """The FastAPI app over `worker` (whose backend answers `JsonOptions` requests, e.g. `RelikBackend`).
    `limits`: the pipeline's fixed settings (`RelikBackend.limits()`)."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse
    except ImportError as err:
        raise ImportError(SERVE_EXTRA) from err
    limits = dict(limits or {})
    app = FastAPI(title="relik-jax", description="ReLiK (JAX) REST API, compatible with relik's `relik serve`")

    def error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    async def annotate(params: dict[str, Any]) -> JSONResponse:
        try:
            docs, options = parse_request(params, limits)
            future = worker.submit(docs, options)
        except RequestError as err:
            return error(err.status, str(err))
        except RequestTooLarge as err:
            return error(413, str(err))
        except Overloaded as err:
            return error(503, f"busy: {err}", {"Retry-After": str(err.retry_after_s)})
        except WorkerClosed as err:
            return error(503, str(err))
        try:
            results = await asyncio.wait_for(asyncio.wrap_future(future), annotate_timeout_s)
        except TimeoutError:
            future.cancel()
            return error(503, f"not annotated within {annotate_timeout_s} s", {"Retry-After": "30"})
        except DocumentFailed as err:
            return error(422 if err.client_error else 500, f"document {err.index}: {err.reason}")
        except WorkerClosed as err:
            return error(503, str(err))
        return JSONResponse(results)

    @app.get("/api/relik")
    async def relik_get(request: Request) -> JSONResponse:
        try:
            params = _query_params(list(request.query_params.multi_items()))
        except RequestError as err:
            return error(err.status, str(err))
        return await annotate(params)

    @app.post("/api/relik")
    async def relik_post(request: Request) -> JSONResponse:
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype and ctype != "application/json":
            return error(415, f"Content-Type must be application/json, got {ctype!r}")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
            return error(413, f"body of {declared} bytes; at most {max_body_bytes}")
        chunks, size = [], 0
        async for chunk in request.stream():  # bounded even without (or with a lying) Content-Length
            size += len(chunk)
            if size > max_body_bytes:
                return error(413, f"body over {max_body_bytes} bytes")
            chunks.append(chunk)
        try:
            params = json.loads(b"".join(chunks).decode("utf-8"))
        except UnicodeDecodeError as err:
            return error(400, f"body is not UTF-8: {err}")
        except json.JSONDecodeError as err:
            return error(400, f"body is not valid JSON: {err}")
        if not isinstance(params, dict):
            return error(422, f'body must be a JSON object {{"text": ..., ...}}, got {type(params).__name__}')
        return await annotate(params)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", **worker.stats()}

    return app


class JsonServer:
    """A running JSON service (uvicorn in a thread): `url`, `shutdown()`; a context manager."""

    def __init__(self, server: Any, thread: threading.Thread, worker: Worker, owns_worker: bool) -> None:
        self.server, self.thread, self.worker, self.owns_worker = server, thread, worker, owns_worker
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"

    def shutdown(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        if self.owns_worker:
            self.worker.close()

    def __enter__(self) -> "JsonServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def serve_json(worker: Worker, limits: Mapping[str, Any] | None = None, host: str = "127.0.0.1", port: int = 8000,
               *, block: bool = True, owns_worker: bool = False, max_body_bytes: int = 10_000_000,
               annotate_timeout_s: float = 300.0, log_level: str = "warning") -> "JsonServer | None":
    """Serve the JSON API on host:port (port 0: any free port). block=True prints the URL and serves until
    interrupted; block=False returns a `JsonServer` once it accepts connections."""
    try:
        import uvicorn
    except ImportError as err:
        raise ImportError(SERVE_EXTRA) from err
    app = build_app(worker, limits, max_body_bytes=max_body_bytes, annotate_timeout_s=annotate_timeout_s)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, backlog=2048, timeout_keep_alive=5,
                            limit_concurrency=2000)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="json-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the JSON service did not start on {host}:{port}")
        time.sleep(0.01)
    running = JsonServer(server, thread, worker, owns_worker)
    if not block:
        return running
    print(f"JSON service on {running.url}/api/relik (health: {running.url}/health)", flush=True)
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        running.shutdown()
    return None
