"""Host/device pipelining: keep the accelerator fed while the host prepares, waits and decodes.

JAX dispatch is asynchronous: a jitted call returns at once and the device works through its queue. The host only
waits when it needs a value (`jax.device_get`). Two tools keep those waits from idling the device:

- `prefetch(iterable, depth)`: a bounded background thread that produces the next items (host work: tokenizing,
  building and padding rows; tokenizers and numpy release the GIL for their heavy parts) while the caller uses the
  current one. Order is kept; an exception is re-raised at the item that raised it, after the items before it.
- `interleave(tasks, depth)`: in-order execution of multi-step device tasks written as generators. A task yields
  each device value it must read back (a count that picks the next stage's static shape, or its final outputs) and
  receives it on the host. Up to `depth` tasks are in flight: before the host blocks on a value of task n, the first
  stage of task n+1 is already queued behind it, so the device never waits for the host's read-back and decode.
  A task that raises becomes that task's result (an `TaskError`), so one bad batch never takes its neighbours down.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import jax

T = TypeVar("T")

__all__ = ["TaskError", "interleave", "prefetch"]

_DONE = object()


@dataclass
class TaskError:
    """The exception a task raised, in place of its result."""

    error: BaseException


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate `items` in a background thread, at most `depth` items ahead of the consumer."""
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_DONE, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            q.put((_DONE, e))

    thread = threading.Thread(target=produce, name="relik-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = q.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()  # the consumer stopped early (or raised): let the producer finish
        thread.join(timeout=5)


Task = Generator[Any, Any, T]


def interleave(tasks: Iterable[Task], depth: int = 2,
               fetch: Callable[[Any], Any] = jax.device_get) -> Iterator[T | TaskError]:
    """Run generator tasks with up to `depth` in flight; yield their results (or `TaskError`s) in input order.

    A task dispatches device work, then `value = yield device_arrays` to read arrays back (`fetch`, default
    `jax.device_get`, which also starts the copies of everything it is given), and finally `return`s its result."""
    inflight: deque[list[Any]] = deque()  # [task, pending device value | _DONE, result]

    def start(task: Task) -> list[Any]:
        try:
            return [task, next(task), None]
        except StopIteration as stop:
            return [task, _DONE, stop.value]
        except Exception as e:  # noqa: BLE001 - isolated to this task
            return [task, _DONE, TaskError(e)]

    def step(entry: list[Any]) -> None:
        task, pending, _ = entry
        try:
            entry[1] = task.send(fetch(pending))
        except StopIteration as stop:
            entry[1], entry[2] = _DONE, stop.value
        except Exception as e:  # noqa: BLE001 - isolated to this task
            entry[1], entry[2] = _DONE, TaskError(e)

    for task in tasks:
        inflight.append(start(task))
        # Advance the older tasks one read-back each: every wait now has a newer task's work queued behind it.
        for entry in list(inflight)[:-1]:
            if entry[1] is not _DONE:
                step(entry)
        while inflight and (inflight[0][1] is _DONE or len(inflight) > depth):
            head = inflight[0]
            while head[1] is not _DONE:
                step(head)
            yield inflight.popleft()[2]
    while inflight:
        head = inflight[0]
        while head[1] is not _DONE:
            step(head)
        yield inflight.popleft()[2]
