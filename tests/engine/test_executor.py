"""Host/device pipelining: order kept, errors isolated, the next task queued before the host waits."""

import threading
import time

import jax.numpy as jnp
import pytest

from relik_jax.engine.executor import TaskError, interleave, prefetch


def test_prefetch_keeps_order_runs_ahead_and_reraises_in_place():
    produced = []

    def items():
        for i in range(5):
            produced.append(i)
            yield i
        raise ValueError("boom at 5")

    it = prefetch(items(), depth=2)
    assert next(it) == 0
    time.sleep(0.2)
    assert produced[:3] == [0, 1, 2]  # ran ahead, bounded
    assert [next(it) for _ in range(4)] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="boom at 5"):
        next(it)


def test_prefetch_runs_in_another_thread_and_stops_early():
    names = []

    def items():
        for i in range(1000):
            names.append(threading.current_thread().name)
            yield i

    it = prefetch(items(), depth=1)
    assert next(it) == 0
    it.close()
    assert names[0] == "relik-prefetch" and len(names) < 10


def test_interleave_order_errors_and_dispatch_before_wait():
    log = []

    def task(i):
        log.append(f"dispatch {i}")
        a = jnp.arange(3) + i
        got = yield a  # first read-back
        log.append(f"got {i}")
        if i == 2:
            raise RuntimeError(f"task {i} failed")
        b = yield (jnp.asarray(got) * 2)
        return int(b.sum())

    def fetch(x):
        log.append("fetch")
        return jnp.asarray(x).__array__()

    out = list(interleave((task(i) for i in range(5)), depth=2, fetch=fetch))
    assert [o for o in out if not isinstance(o, TaskError)] == [6, 12, 24, 30]
    assert isinstance(out[2], TaskError) and "task 2 failed" in str(out[2].error)
    # task 1 is dispatched before the host waits on task 0's first value
    assert log.index("dispatch 1") < log.index("got 0")
