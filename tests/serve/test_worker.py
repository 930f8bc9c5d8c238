"""The shared annotation worker: per-document isolation (bisect), fairness (long documents pause for short ones,
round-robin between requests), back-pressure and shutdown. Fake backends, so timings are deterministic."""

import threading
import time

import pytest

from relik_jax.inference.validation import AnnotationError, DocumentError
from relik_jax.serve.worker import (
    DocumentFailed,
    Overloaded,
    RequestTooLarge,
    Worker,
    WorkerClosed,
    plain_backend,
)


def upper(docs):
    if any("BOOM" in d for d in docs):
        raise RuntimeError("kernel exploded")
    return [d.upper() for d in docs]


def test_a_failing_document_fails_alone_and_its_batch_mates_are_answered():
    calls = []

    def backend(docs, options, checkpoint):
        calls.append(len(docs))
        time.sleep(0.01)
        return upper(docs)

    worker = Worker(backend, max_batch=32, max_wait_s=0.05)
    try:
        docs = [f"doc {i}" for i in range(20)]
        futures = [worker.submit([d]) for d in docs[:10]]
        poison = worker.submit(["ok", "BOOM here"])
        futures += [worker.submit([d]) for d in docs[10:]]
        assert [f.result(10) for f in futures] == [[d.upper()] for d in docs]
        with pytest.raises(DocumentFailed) as info:
            poison.result(10)
        assert info.value.index == 1 and not info.value.client_error
        assert "RuntimeError: kernel exploded" in str(info.value)
        assert max(calls) > 1  # they were batched together, then bisected
        assert len(calls) <= 1 + 2 * 5 + 2
        assert worker.stats()["failed"] == 1 and worker.stats()["texts"] == 21
    finally:
        worker.close()


def test_bad_input_is_a_client_error_and_a_model_fault_a_server_error():
    def backend(docs, options, checkpoint):
        return [DocumentError(0, "lone surrogate") if d == "bad" else
                AnnotationError(0, "annotation failed") if d == "fault" else d for d in docs]

    worker = Worker(backend)
    try:
        with pytest.raises(DocumentFailed) as bad:
            worker.submit(["a", "bad"]).result(5)
        with pytest.raises(DocumentFailed) as fault:
            worker.submit(["fault", "bad"]).result(5)
        assert bad.value.client_error and bad.value.reason == "lone surrogate" and bad.value.index == 1
        assert not fault.value.client_error and "and 1 more" in str(fault.value)
        assert worker.submit(["a"]).result(5) == ["a"]
    finally:
        worker.close()


def test_a_long_document_pauses_for_short_requests():
    """A long document = 40 steps of 50 ms (2 s); short requests sent meanwhile wait for about one step."""

    def backend(docs, options, checkpoint):
        if len(docs[0]) > 100:
            for _ in range(40):
                time.sleep(0.05)
                checkpoint()
        else:
            time.sleep(0.005)
        return [len(d) for d in docs]

    worker = Worker(backend, long_chars=100, max_wait_s=0.001)
    try:
        t0 = time.perf_counter()
        long = worker.submit(["x" * 1000])
        latencies = []
        time.sleep(0.2)
        while not long.done():
            t = time.perf_counter()
            assert worker.submit(["short"]).result(5) == [5]
            latencies.append(time.perf_counter() - t)
            time.sleep(0.05)
        assert long.result(5) == [1000] and time.perf_counter() - t0 >= 2.0
        assert len(latencies) >= 10 and max(latencies) < 0.5, latencies  # vs ~2 s without the handover
        assert worker.stats()["handovers"] >= 10
    finally:
        worker.close()


@pytest.mark.parametrize("long_every", [1, 2, 3])
def test_under_continuous_short_load_the_long_document_gets_every_nth_turn(long_every):
    """20 clients keep the short lane busy; the long document (30 chunks) still advances, one chunk per
    `long_every` short batches."""
    turns = []

    def backend(docs, options, checkpoint):
        if len(docs[0]) > 100:
            for _ in range(30):
                turns.append("L")
                time.sleep(0.01)
                checkpoint()
        else:
            turns.append("s")
            time.sleep(0.01)
        return [len(d) for d in docs]

    worker = Worker(backend, long_chars=100, max_batch=4, max_wait_s=0.0, long_every=long_every)
    stop = threading.Event()

    def client():
        while not stop.is_set():
            worker.submit(["short"]).result(10)

    clients = [threading.Thread(target=client) for _ in range(20)]
    try:
        for c in clients:
            c.start()
        time.sleep(0.1)
        assert worker.submit(["x" * 1000]).result(30) == [1000]  # no starvation, no deadlock
        stop.set()
        for c in clients:
            c.join(10)
        during = "".join(turns)["".join(turns).index("L"):"".join(turns).rindex("L")]
        runs = [len(r) for r in during.split("L") if r]
        assert runs and max(runs) <= long_every and sum(runs) / len(runs) >= long_every - 0.5, during
    finally:
        stop.set()
        worker.close()


def test_short_documents_of_requests_take_turns():
    batches = []

    def backend(docs, options, checkpoint):
        batches.append(list(docs))
        time.sleep(0.05)
        return docs

    worker = Worker(backend, max_batch=4, max_wait_s=0.0)
    try:
        gate = worker.submit(["gate"])  # occupies the model while the two requests queue up
        time.sleep(0.01)
        big = worker.submit([f"a{i}" for i in range(40)])
        small = worker.submit(["b0"])
        assert small.result(5) == ["b0"] and gate.result(5) == ["gate"]
        assert big.result(10) == [f"a{i}" for i in range(40)]
        first = next(i for i, b in enumerate(batches) if "b0" in b)
        assert first <= 1, batches[:3]  # in the first batch after the gate, not after the 40 documents
    finally:
        worker.close()


def test_options_split_batches():
    seen = []

    def backend(docs, options, checkpoint):
        seen.append((options, list(docs)))
        return [f"{options}:{d}" for d in docs]

    worker = Worker(backend, max_wait_s=0.05)
    try:
        a, b = worker.submit(["x", "y"], options="A"), worker.submit(["z"], options="B")
        assert a.result(5) == ["A:x", "A:y"] and b.result(5) == ["B:z"]
        assert all(len({o for o, _ in seen}) >= 1 for _ in seen) and {o for o, _ in seen} == {"A", "B"}
    finally:
        worker.close()


def test_a_full_queue_is_overloaded_and_a_huge_request_too_large():
    release = threading.Event()

    def backend(docs, options, checkpoint):
        release.wait(10)
        return docs

    worker = Worker(backend, max_queue=4, max_batch=1, max_wait_s=0.0)
    try:
        running = worker.submit(["a"])
        time.sleep(0.1)  # taken by the lane: no longer queued
        queued = [worker.submit([f"q{i}"]) for i in range(4)]
        with pytest.raises(Overloaded) as info:
            worker.submit(["one too many"])
        assert info.value.retry_after_s >= 1
        with pytest.raises(RequestTooLarge, match="5 documents"):
            worker.submit(list("abcde"))
        release.set()
        assert running.result(5) == ["a"] and [f.result(5) for f in queued] == [[f"q{i}"] for i in range(4)]
        assert worker.submit([]).result(1) == []
    finally:
        release.set()
        worker.close()


def test_close_fails_what_is_queued():
    release = threading.Event()
    worker = Worker(plain_backend(lambda docs: release.wait(5) and docs), max_batch=1, max_wait_s=0.0)
    first = worker.submit(["a"])
    time.sleep(0.1)
    waiting = worker.submit(["b"])
    threading.Timer(0.2, release.set).start()
    worker.close()
    assert first.result(5) == ["a"]
    with pytest.raises(DocumentFailed, match="shut down"):
        waiting.result(5)
    with pytest.raises(WorkerClosed):
        worker.submit(["c"])
