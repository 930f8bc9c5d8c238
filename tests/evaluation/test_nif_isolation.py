"""The NIF service on the real (tiny random) pipeline: one bad document among concurrent valid ones fails alone
(the cases of the "no document lost" issue), and a long document does not block short requests."""

import http.client
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from tiny_pipeline import tiny_relik  # noqa: E402

from relik_jax.evaluation.gerbil.client import NifClient, gerbil_request  # noqa: E402
from relik_jax.evaluation.gerbil.datasets import load_gerbil_dataset  # noqa: E402
from relik_jax.evaluation.gerbil.nif import NifDocument, parse_nif  # noqa: E402
from relik_jax.evaluation.gerbil.service import serve_nif  # noqa: E402
from relik_jax.serve.backends import RelikBackend  # noqa: E402
from relik_jax.serve.worker import Worker  # noqa: E402

PREFIX = "@prefix nif: <http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#> .\n"


@pytest.fixture(scope="module")
def relik():
    relik = tiny_relik()
    relik.config.chunk_windows = 64  # the service's slice: a long document pauses every 64 windows
    return relik


@pytest.fixture(scope="module")
def rss():
    return load_gerbil_dataset("rss-500").documents[:20]


def alone(relik, text):
    """The service's answer for a text sent alone: (UTF-16 begin, end, URI) per mention."""
    (spans,) = RelikBackend(relik)([text], None, lambda: None)
    with serve_nif(lambda texts: [spans], port=0, block=False) as server:
        answer = NifClient(server.url).annotate(NifDocument("http://t.org/a", text))
    return [(m.begin, m.end, m.uris) for m in answer.mentions]


def post(url, body: bytes, content_type: str | None = "application/x-turtle"):
    parts = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(parts[0], int(parts[1]), timeout=120)
    headers = {"Content-Length": str(len(body))}
    if content_type:
        headers["Content-Type"] = content_type
    conn.request("POST", "/", body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


def mentions(doc: NifDocument, status: int, data: bytes):
    assert status == 200, data[:300]
    (answer,) = [d for d in parse_nif(data.decode("utf-8")).documents if d.text == doc.text]
    return [(m.begin, m.end, m.uris) for m in answer.mentions]


def run_together(url, valid, extra):
    """POST the valid documents and the extra (body, content type) requests at once (21+ clients)."""
    with ThreadPoolExecutor(len(valid) + len(extra)) as pool:
        futures = [pool.submit(post, url, gerbil_request(d)[1].encode("utf-8")) for d in valid[:10]]
        extras = [pool.submit(post, url, body, ctype) for body, ctype in extra]
        futures += [pool.submit(post, url, gerbil_request(d)[1].encode("utf-8")) for d in valid[10:]]
    return [f.result() for f in futures], [f.result() for f in extras]


def test_a_50k_character_word_and_a_lone_surrogate_do_not_fail_their_batch_mates(relik, rss):
    expected = [alone(relik, d.text) for d in rss]
    long_word = NifDocument("http://t.org/long", "Obama " + "x" * 50_000 + " Honolulu")
    surrogate = (PREFIX + '<http://t.org/s#char=0,9> a nif:Context ; nif:isString "Obama \\uD800 x" .').encode()
    worker = Worker(RelikBackend(relik), max_wait_s=0.05)
    with serve_nif(worker=worker, port=0, block=False) as server:
        answers, (long_answer, bad) = run_together(server.url, rss, [
            (gerbil_request(long_word)[1].encode("utf-8"), "application/x-turtle"),
            (surrogate, "application/x-turtle")])
    worker.close()
    assert [mentions(d, *a) for d, a in zip(rss, answers, strict=True)] == expected
    assert long_answer[0] == 200  # the tiny model handles it; what matters is that it fails nobody else
    assert bad[0] == 400 and b"lone surrogate U+D800 at character offset 6" in bad[1]


def test_a_model_fault_on_one_document_is_its_own_500(relik, rss):
    expected = [alone(relik, d.text) for d in rss]
    backend = RelikBackend(relik)

    def faulty(docs, options, checkpoint):  # as a real model failing on a 50k-character word
        if any(len(w) > 10_000 for d in docs for w in d.split()):
            raise RuntimeError("sequence longer than the position embeddings")
        return backend(docs, options, checkpoint)

    worker = Worker(faulty, max_wait_s=0.05, long_chars=100_000)  # one lane: the long word joins the batch
    with serve_nif(worker=worker, port=0, block=False) as server:
        long_word = NifDocument("http://t.org/long", "Obama " + "x" * 50_000)
        answers, (failed,) = run_together(server.url, rss, [(gerbil_request(long_word)[1].encode(), None)])
    worker.close()
    assert [mentions(d, *a) for d, a in zip(rss, answers, strict=True)] == expected
    assert failed[0] == 500 and b"position embeddings" in failed[1]
    assert worker.stats()["failed"] == 1


def test_a_valid_document_without_content_type_is_answered_whatever_its_batch_mates(relik, rss):
    backend = RelikBackend(relik)

    def faulty(docs, options, checkpoint):
        if any("POISON" in d for d in docs):
            raise RuntimeError("poisoned")
        return backend(docs, options, checkpoint)

    worker = Worker(faulty, max_wait_s=0.05)
    poison = NifDocument("http://t.org/p", "POISON pill")
    with serve_nif(worker=worker, port=0, block=False) as server:
        answers, extras = run_together(server.url, rss[:4], [
            (gerbil_request(rss[5])[1].encode("utf-8"), None), (gerbil_request(poison)[1].encode(), None)])
    worker.close()
    assert [s for s, _ in answers] == [200] * 4 and extras[0][0] == 200 and extras[1][0] == 500
    assert mentions(rss[5], *extras[0]) == alone(relik, rss[5].text)


def test_a_long_document_does_not_block_a_small_request(relik):
    text = " ".join(["Barack Obama was born in Honolulu , Hawaii ."] * 1400)  # 63k characters, ~13k words
    worker = Worker(RelikBackend(relik), long_chars=10_000)
    small = NifDocument("http://t.org/small", "Japan beat Syria .")
    latencies = []
    with serve_nif(worker=worker, port=0, block=False) as server:
        client = NifClient(server.url)
        client.annotate(small)  # warm-up: compile the programs of a small batch and of a 64-window chunk
        client.annotate(NifDocument("http://t.org/warm", " ".join(["Barack Obama was born in Honolulu ."] * 45)))
        done = threading.Event()
        t0 = time.perf_counter()
        thread = threading.Thread(target=lambda: (client.annotate(NifDocument("http://t.org/long", text)),
                                                  done.set()))
        thread.start()
        deadline = time.perf_counter() + 60  # the small requests start once the long document is in the model
        while worker.stats()["lane"] != "long" and not done.is_set() and time.perf_counter() < deadline:
            time.sleep(0.01)
        while not done.is_set() and len(latencies) < 8:
            t = time.perf_counter()
            client.annotate(small)
            latencies.append(time.perf_counter() - t)
        thread.join(300)
        long_s = time.perf_counter() - t0
    worker.close()
    assert done.is_set() and latencies, "the small requests must run while the long document is annotated"
    # the long document takes seconds; each small request waits for about one chunk of 64 windows, not for it all
    # (bounds relative to the long document's time: a loaded machine slows both alike)
    assert max(latencies) < long_s / 2 and statistics.median(latencies) < long_s / 10, (latencies, long_s)
    assert worker.stats()["handovers"] >= 1


def test_a_full_queue_answers_503_with_retry_after_and_health_reports_it():
    release = threading.Event()

    def blocked(docs, options, checkpoint):
        release.wait(10)
        return [[] for _ in docs]

    worker = Worker(blocked, max_queue=1, max_batch=1, max_wait_s=0.0)
    with serve_nif(worker=worker, port=0, block=False) as server, ThreadPoolExecutor(2) as pool:
        body = gerbil_request(NifDocument("http://t.org/a", "Paris ."))[1].encode()
        first = pool.submit(post, server.url, body)
        time.sleep(0.3)
        queued = pool.submit(post, server.url, body)
        time.sleep(0.3)
        parts = server.url.split("//")[1].split(":")
        conn = http.client.HTTPConnection(parts[0], int(parts[1]), timeout=30)
        conn.request("POST", "/", body=body, headers={"Content-Type": "application/x-turtle"})
        full = conn.getresponse()
        assert full.status == 503 and int(full.getheader("Retry-After")) >= 1 and b"queue full" in full.read()
        conn.request("GET", "/health")
        health = conn.getresponse().read().decode()
        assert "status ok" in health and "queued 1" in health
        release.set()
        assert first.result()[0] == 200 and queued.result()[0] == 200
    worker.close()
