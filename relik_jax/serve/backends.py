"""`Relik` as a worker backend, for both services: one model in memory serves NIF spans and JSON outputs.

- options `None` (the NIF service): per document `[(start, end, title), ...]`, the GERBIL annotator's answer (NME
  dropped; empty / inverted spans are already dropped from the public output);
- options `JsonOptions(...)` (the JSON API): per document `RelikOutput.to_dict()`, relik's response shape.

A document the pipeline rejects (lone surrogate, ...) or fails on comes back as its `DocumentError` in its place,
so the worker fails only that document; `checkpoint` is called after every chunk of windows (`Relik.stream`'s
progress callback), where a long document lets waiting short ones run (see worker.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

from relik_jax.inference.outputs import RelikOutput
from relik_jax.inference.pipeline import Relik
from relik_jax.inference.validation import DocumentError
from relik_jax.labels import NME

__all__ = ["JsonOptions", "RelikBackend", "per_document"]


@dataclass(frozen=True)
class JsonOptions:
    """Per-request settings of the JSON API that the pipeline honours per call (documents with equal options share
    a batch). top_k None: the pipeline's saved value."""

    top_k: int | None = None
    return_windows: bool = False
    keep_candidates: bool = True
    is_split_into_words: bool = False


def per_document(stream: Callable[..., Iterator[RelikOutput]], docs: list[Any],
                 **kwargs: Any) -> list[RelikOutput | DocumentError]:
    """`stream(docs)` with every failing document's `DocumentError` in its place (the stream raises at the first
    one after yielding the outputs before it; go on after it)."""
    results: list[RelikOutput | DocumentError] = []
    while len(results) < len(docs):
        start = len(results)
        try:
            for out in stream(docs[start:], **kwargs):
                results.append(out)
        except DocumentError as err:
            if err.index is None or start + err.index != len(results):
                raise
            results.append(err)
    return results


class RelikBackend:
    """backend(docs, options, checkpoint) of `Worker` over a `Relik` pipeline."""

    def __init__(self, relik: Relik, top_k: int | None = None) -> None:
        self.relik, self.top_k = relik, top_k

    def __call__(self, docs: list[Any], options: Hashable, checkpoint: Callable[[], None]) -> list[Any]:
        def progress(_n_windows: int) -> None:
            checkpoint()

        if isinstance(options, JsonOptions):
            outs = per_document(self.relik.stream, docs, top_k=options.top_k or self.top_k, progress=progress,
                                return_windows=options.return_windows, keep_candidates=options.keep_candidates,
                                is_split_into_words=options.is_split_into_words)
            return [o if isinstance(o, DocumentError) else o.to_dict() for o in outs]
        outs = per_document(self.relik.stream, docs, top_k=self.top_k, keep_candidates=False, progress=progress)
        return [o if isinstance(o, DocumentError) else [(s.start, s.end, s.label) for s in o.spans if s.label != NME]
                for o in outs]

    def warmup(self, texts: list[str], max_batch: int = 32) -> float:
        """Annotate batches of 1, 2, 4, ... max_batch of `texts` (both answer forms) and one long document, so the
        programs of the usual padded shapes are compiled before the first request instead of during it (a compile
        takes seconds on CPU). Returns the seconds spent."""
        t0 = time.perf_counter()
        size = 1
        while size <= max_batch:
            for options in (None, JsonOptions()):
                self(texts[:size], options, lambda: None)
            size *= 2
        self([" ".join(texts)], None, lambda: None)  # the long lane's chunks of `chunk_windows` windows
        return time.perf_counter() - t0

    def limits(self) -> dict[str, Any]:
        """What the pipeline fixed at load time (the JSON API refuses per-request values it cannot honour)."""
        cfg = self.relik.config
        threshold = getattr(self.relik.reader, "threshold", None)
        return {"task": cfg.task, "top_k": cfg.top_k, "window_size": cfg.window_size,
                "window_stride": cfg.window_stride, "use_doc_topic": cfg.use_doc_topic,
                "relation_threshold": None if cfg.task == "span" else threshold}
