"""One worker in front of one model, shared by the NIF (GERBIL) and JSON services: batching, fairness, per-document
isolation and back-pressure.

Every request's documents become work units. Short documents (<= `long_chars`) are merged into one backend call
(up to `max_batch` documents and `max_batch_chars` characters, waiting at most `max_wait_s` for more), taking one
document per waiting request in turn (round-robin), so a request with 1,000 documents does not hold back a request
with one. Long documents run one at a time in a second lane.

Fairness: both lanes call the same model, which is not re-entrant (its tokenizers toggle truncation per call), so a
token guarantees one call at a time. A long document does not hold the token for its whole duration: the backend
calls `checkpoint()` between bounded steps (`Relik.stream`'s progress callback, after every chunk of
`chunk_windows` windows), and when short documents are waiting the long lane hands the token over there and resumes
after `long_every` short batches (or when no short document waits). A short request thus waits for at most one
chunk of the long document, not for all of it, and short documents keep most of the model while a long one runs,
which still always progresses (benchmarks/service_load.py measures it).

Isolation: when a merged call raises, its documents are re-run in halves (`isolate`) until the failing one is
alone; a backend may also return an exception in a document's place. Only that document's request fails
(`DocumentFailed`, with `client_error` when the document itself was bad); every other document is answered as if
alone. Back-pressure: at most `max_queue` documents / `max_queue_chars` characters wait; beyond, `submit` raises
`Overloaded` (HTTP 503 with Retry-After in the services).

backend(docs, options, checkpoint) -> one result (or exception) per document; `options` is the request's
(hashable) setting, and only documents with equal options share a call.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from relik_jax.inference.validation import AnnotationError, DocumentError, isolate

Backend = Callable[[list[Any], Hashable, Callable[[], None]], Sequence[Any]]
SHORT, LONG = "short", "long"

__all__ = ["Backend", "DocumentFailed", "Overloaded", "RequestTooLarge", "Worker", "WorkerClosed", "plain_backend",
           "doc_size"]


class Overloaded(RuntimeError):
    """The queue is full: retry after `retry_after_s` seconds (HTTP 503 + Retry-After)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTooLarge(ValueError):
    """One request holds more documents / characters than the whole queue may (HTTP 413)."""


class WorkerClosed(RuntimeError):
    """The worker shut down before the document was annotated."""


class DocumentFailed(RuntimeError):
    """Some documents of a request failed: `failures` maps each one's position in the request to its exception.
    `client_error`: every failure is the document's own fault (a `DocumentError` that is not an
    `AnnotationError`), so the answer is 4xx; otherwise 5xx."""

    def __init__(self, failures: dict[int, BaseException]) -> None:
        self.failures = dict(sorted(failures.items()))
        self.index, first = next(iter(self.failures.items()))
        self.client_error = all(isinstance(e, DocumentError) and not isinstance(e, AnnotationError)
                                for e in self.failures.values())
        more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        reason = first.reason if isinstance(first, DocumentError) else f"{type(first).__name__}: {first}"
        self.reason = reason
        super().__init__(f"document {self.index}: {reason}{more}")


def doc_size(doc: Any) -> int:
    """Characters of a document (a str or a list of words)."""
    return len(doc) if isinstance(doc, str) else sum(len(w) + 1 for w in doc)


def plain_backend(annotator: Callable[[list[Any]], Sequence[Any]]) -> Backend:
    """A backend from `annotator(docs) -> results` (no options, no checkpoints: a long document runs uninterrupted,
    which is fine for fast annotators such as the gold one)."""

    def backend(docs: list[Any], options: Hashable, checkpoint: Callable[[], None]) -> Sequence[Any]:
        return annotator(docs)

    return backend


@dataclass(eq=False)
class _Job:
    n: int
    options: Hashable
    future: Future = field(default_factory=Future)
    results: list = field(default_factory=list)
    failures: dict = field(default_factory=dict)
    left: int = 0

    def __post_init__(self) -> None:
        self.results = [None] * self.n
        self.left = self.n


@dataclass(eq=False)
class _Unit:
    doc: Any
    size: int
    job: _Job
    slot: int


class Worker:
    """Annotates submitted documents on two lanes (see the module docstring); `submit(docs, options)` returns a
    Future of the per-document results, in order."""

    def __init__(self, backend: Backend, *, max_batch: int = 32, max_batch_chars: int = 100_000,
                 max_wait_s: float = 0.002, long_chars: int = 10_000, max_queue: int = 4096,
                 max_queue_chars: int = 50_000_000, long_every: int = 2) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.backend = backend
        self.max_batch, self.max_batch_chars, self.max_wait_s = max_batch, max_batch_chars, max_wait_s
        self.long_chars, self.max_queue, self.max_queue_chars = long_chars, max_queue, max_queue_chars
        self.long_every = max(1, long_every)  # short batches per long-document chunk when both wait
        self.calls = 0  # backend calls (batches and long-document calls)
        self.texts = 0  # documents annotated
        self.failed = 0  # documents that failed
        self.handovers = 0  # times a long document paused for short ones
        self._cond = threading.Condition()
        self._short: collections.OrderedDict[_Job, collections.deque[_Unit]] = collections.OrderedDict()
        self._long: collections.deque[_Unit] = collections.deque()
        self._short_units = self._queued = self._queued_chars = 0
        self._closed = False
        self._holder: str | None = None  # the lane holding the model
        self._want = {SHORT: False, LONG: False}
        self._short_run = 0
        self._chars_per_s = 0.0  # throughput estimate, for Retry-After
        self._threads = [threading.Thread(target=self._short_lane, name="annotate-short", daemon=True),
                         threading.Thread(target=self._long_lane, name="annotate-long", daemon=True)]
        for t in self._threads:
            t.start()

    # ----------------------------------------------------------------------------------------------- public
    def submit(self, docs: Sequence[Any], options: Hashable = None) -> Future:
        sizes = [doc_size(d) for d in docs]
        if len(docs) > self.max_queue or sum(sizes) > self.max_queue_chars:
            raise RequestTooLarge(f"{len(docs)} documents / {sum(sizes)} characters in one request; this server "
                                  f"queues at most {self.max_queue} / {self.max_queue_chars}")
        job = _Job(len(docs), options)
        if not docs:
            job.future.set_result([])
            return job.future
        with self._cond:
            if self._closed:
                raise WorkerClosed("the worker is shut down")
            if self._queued + len(docs) > self.max_queue or self._queued_chars + sum(sizes) > self.max_queue_chars:
                raise Overloaded(f"queue full ({self._queued} documents, {self._queued_chars} characters waiting)",
                                 self._retry_after())
            for slot, (doc, size) in enumerate(zip(docs, sizes, strict=True)):
                unit = _Unit(doc, size, job, slot)
                if size > self.long_chars:
                    self._long.append(unit)
                else:
                    self._short.setdefault(job, collections.deque()).append(unit)
                    self._short_units += 1
            self._queued += len(docs)
            self._queued_chars += sum(sizes)
            self._cond.notify_all()
        return job.future

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {"calls": self.calls, "texts": self.texts, "failed": self.failed, "handovers": self.handovers,
                    "queued": self._queued, "queued_chars": self._queued_chars, "max_queue": self.max_queue,
                    "lane": self._holder}  # the lane holding the model now: "short", "long" or None

    def close(self) -> None:
        """Stop: documents still queued (and a long document between two chunks) fail with `WorkerClosed`."""
        with self._cond:
            self._closed = True
            leftovers = [u for q in self._short.values() for u in q] + list(self._long)
            self._short.clear()
            self._long.clear()
            self._cond.notify_all()
        for unit in leftovers:
            self._deliver(unit, WorkerClosed("the worker shut down before this document was annotated"))
        for t in self._threads:
            t.join(timeout=10)

    # ------------------------------------------------------------------------------------------ the model token
    # When both lanes want the model, the short lane gets `long_every` turns (batches), then the long lane one (a
    # chunk); a lane alone takes every turn. `_short_run` counts the short turns since the long lane's last one.
    def _long_may_run(self) -> bool:
        return self._short_run >= self.long_every or not self._short_units

    def _acquire(self, lane: str) -> None:
        with self._cond:
            self._want[lane] = True
            if lane == SHORT:
                self._cond.wait_for(lambda: self._closed or (
                    self._holder is None and (not self._want[LONG] or self._short_run < self.long_every)))
            else:
                self._cond.wait_for(lambda: self._closed or (
                    self._holder is None and (not self._want[SHORT] or self._long_may_run())))
                self._short_run = 0
            self._want[lane] = False
            self._holder = lane

    def _release(self, lane: str) -> None:
        with self._cond:
            self._holder = None
            if lane == SHORT:
                self._short_run += 1
            self._cond.notify_all()

    def _checkpoint(self) -> None:
        """Called by the backend inside a long document's call, between two bounded steps: lets `long_every`
        short batches run when short documents are waiting."""
        with self._cond:
            if self._closed:
                raise WorkerClosed("the worker shut down while this document was being annotated")
            if not self._short_units:
                return
            self._holder = None
            self._want[LONG] = True
            self.handovers += 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._closed or (self._holder is None and self._long_may_run()))
            self._want[LONG] = False
            self._short_run = 0
            self._holder = LONG

    # ------------------------------------------------------------------------------------------------ lanes
    def _short_lane(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._short_units)
                if self._closed:
                    return
                if self.max_wait_s > 0 and self._short_units < self.max_batch:  # let a batch form
                    self._cond.wait_for(lambda: self._closed or self._short_units >= self.max_batch,
                                        timeout=self.max_wait_s)
            self._acquire(SHORT)
            try:
                with self._cond:
                    batch = self._take_short()
                if batch:
                    self._run(batch, lambda: None)
            finally:
                self._release(SHORT)

    def _take_short(self) -> list[_Unit]:
        """Up to max_batch units with the same options, one per waiting request in turn (caller holds the lock)."""
        batch: list[_Unit] = []
        chars, options = 0, None
        while len(batch) < self.max_batch:
            took = False
            for job in list(self._short):
                queue = self._short[job]
                if job.future.done():  # the client gave up (timeout): drop its documents
                    self._dequeue(list(queue))
                    del self._short[job]
                    continue
                if (batch and job.options != options) or (batch and chars + queue[0].size > self.max_batch_chars):
                    continue
                unit = queue.popleft()
                if not queue:
                    del self._short[job]
                batch.append(unit)
                chars, options, took = chars + unit.size, job.options, True
                if len(batch) >= self.max_batch:
                    break
            if not took:
                break
        self._dequeue(batch)
        return batch

    def _dequeue(self, units: list[_Unit]) -> None:
        self._short_units -= len(units)
        self._queued -= len(units)
        self._queued_chars -= sum(u.size for u in units)

    def _long_lane(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._long)
                if self._closed:
                    return
                unit = self._long.popleft()
                self._queued -= 1
                self._queued_chars -= unit.size
            if unit.job.future.done():
                continue
            self._acquire(LONG)
            try:
                self._run([unit], self._checkpoint)
            finally:
                self._release(LONG)

    # ------------------------------------------------------------------------------------------------- work
    def _run(self, units: list[_Unit], checkpoint: Callable[[], None]) -> None:
        options = units[0].job.options
        t0 = time.perf_counter()

        def call(group: list[_Unit]) -> Sequence[Any]:
            self.calls += 1
            return self.backend([u.doc for u in group], options, checkpoint)

        for unit, result in zip(units, isolate(call, units), strict=True):
            self._deliver(unit, result)
        chars = sum(u.size for u in units)
        rate = chars / max(time.perf_counter() - t0, 1e-6)
        self._chars_per_s = rate if not self._chars_per_s else 0.8 * self._chars_per_s + 0.2 * rate

    def _deliver(self, unit: _Unit, result: Any) -> None:
        job = unit.job
        with self._cond:
            if isinstance(result, BaseException):
                job.failures[unit.slot] = result
                self.failed += 1
            else:
                job.results[unit.slot] = result
                self.texts += 1
            job.left -= 1
            if job.left or job.future.done():
                return
        try:
            if job.failures:
                job.future.set_exception(DocumentFailed(job.failures))
            else:
                job.future.set_result(job.results)
        except InvalidStateError:  # cancelled by the client in the meantime
            pass

    def _retry_after(self) -> int:
        if not self._chars_per_s:
            return 1
        return int(min(120, max(1, self._queued_chars / self._chars_per_s)))
