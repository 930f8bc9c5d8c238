"""The JSON API (relik `relik serve` shape) on a tiny random pipeline: request / response shape, validation with
reasons, per-document isolation, back-pressure; one test over real loopback HTTP (uvicorn)."""

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from tiny_pipeline import tiny_relik  # noqa: E402

from relik_jax.serve import json_api  # noqa: E402
from relik_jax.serve.backends import JsonOptions, RelikBackend  # noqa: E402
from relik_jax.serve.json_api import build_app, serve_json  # noqa: E402
from relik_jax.serve.worker import Worker  # noqa: E402

DOCS = ["Barack Obama was born in Honolulu , Hawaii .", "Japan beat Syria .", "Steve Jobs founded Apple Inc. ."]
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def relik():
    return tiny_relik()


@pytest.fixture(scope="module")
def service(relik):
    backend = RelikBackend(relik)
    worker = Worker(backend, max_wait_s=0.01)
    yield TestClient(build_app(worker, backend.limits())), relik
    worker.close()


def test_get_and_post_answer_like_relik_serve(service):
    client, relik = service
    expected = [relik(d).to_dict() for d in DOCS]
    got = client.get("/api/relik", params={"text": DOCS})
    assert got.status_code == 200 and got.json() == json.loads(json.dumps(expected))
    assert list(got.json()[0]) == ["text", "tokens", "spans", "triplets", "candidates"]  # relik's keys
    one = client.post("/api/relik", json={"text": DOCS[1], "top_k": 2, "keep_candidates": False})
    assert one.status_code == 200 and len(one.json()) == 1 and one.json()[0]["text"] == DOCS[1]
    assert one.json()[0]["candidates"] == {"span": [], "triplet": []}
    words = client.post("/api/relik", json={"text": DOCS[1].split(), "is_split_into_words": True})
    assert words.status_code == 200 and words.json()[0]["tokens"] == DOCS[1].split()
    # relik's own defaults are accepted (they equal this server's or are ignored)
    assert client.get("/api/relik", params={"text": "a", "relation_threshold": 0.5, "annotation_type": "char",
                                            "reader_batch_size": 32, "window_size": 8}).status_code == 200
    assert client.post("/api/relik", json={"text": []}).json() == []


@pytest.mark.parametrize("body,status,reason", [
    (b'{"text": ["ok", "x\\ud800 y"]}', 422, "document 1: text holds a lone surrogate U+D800 at character offset 1"),
    (b'{"text": 42}', 422, "text must be a string or a list of strings, got int"),
    (b'{"text": {"text": "Obama"}}', 422, "got dict"),
    (b'{"text": ["a", null]}', 422, "document 1: text: expected a str"),
    (b'{"txt": "Obama"}', 422, "unknown parameter(s) 'txt'"),
    (b'{"text": "a", "top_k": 0}', 422, "top_k must be an integer"),
    (b'{"text": "a", "top_k": "many"}', 422, "top_k must be an integer"),
    (b'{"text": "a", "window_size": 5}', 422, "window_size is fixed when the pipeline is loaded (this server: 8)"),
    (b'{"text": "a", "annotation_type": "word"}', 422, "annotation_type must be 'char'"),
    (b'{"text": "a", "return_windows": "maybe"}', 422, "return_windows must be a boolean"),
    (b'["Obama"]', 422, "body must be a JSON object"),
    (b'{"text": "a"', 400, "body is not valid JSON"),
    (b'\xff{"text": "a"}', 400, "body is not UTF-8"),
    (b"", 400, "body is not valid JSON"),
])
def test_malformed_requests_get_a_reason(service, body, status, reason):
    client, _ = service
    got = client.post("/api/relik", content=body, headers=JSON)
    assert got.status_code == status and reason in got.json()["detail"], got.json()


def test_content_type_size_and_query_errors(service):
    client, _ = service
    plain = client.post("/api/relik", content=b'{"text": "a"}', headers={"content-type": "text/plain"})
    assert plain.status_code == 415
    assert client.post("/api/relik", content=b'{"text": "a"}').status_code == 200  # no Content-Type: accepted
    got = client.get("/api/relik", params={"text": "a", "top_k": ["1", "2"]})
    assert got.status_code == 422 and "given twice" in got.json()["detail"]
    assert "required" in client.get("/api/relik").json()["detail"]
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["queued"] == 0


def test_a_model_fault_fails_only_its_request(relik, monkeypatch):
    rows = relik.reader.rows

    def boom(windows):
        if any("BOOM" in w.words for w in windows):
            raise RuntimeError("kernel exploded")
        return rows(windows)

    monkeypatch.setattr(relik.reader, "rows", boom)
    backend = RelikBackend(relik)
    worker = Worker(backend, max_wait_s=0.2)  # a wide window: the requests below share batches
    client = TestClient(build_app(worker, backend.limits()))
    try:
        with ThreadPoolExecutor(8) as pool:
            valid = [pool.submit(client.post, "/api/relik", json={"text": DOCS[i % 3]}) for i in range(6)]
            poison = pool.submit(client.post, "/api/relik", json={"text": [DOCS[0], "it goes BOOM ."]})
            valid += [pool.submit(client.post, "/api/relik", json={"text": DOCS[i % 3]}) for i in range(6)]
        expected = [json.loads(json.dumps([relik(DOCS[i % 3]).to_dict()])) for i in range(6)] * 2
        assert [f.result().json() for f in valid] == expected
        bad = poison.result()
        assert bad.status_code == 500 and bad.json()["detail"].startswith("document 1: annotation failed: Runtime")
        assert worker.stats()["calls"] < 13  # batched
    finally:
        worker.close()


def test_a_full_queue_answers_503_with_retry_after():
    release = threading.Event()

    def backend(docs, options, checkpoint):
        release.wait(10)
        return [{"text": d} for d in docs]

    worker = Worker(backend, max_queue=2, max_batch=1, max_wait_s=0.0)
    client = TestClient(build_app(worker))
    try:
        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(client.post, "/api/relik", json={"text": "a"})
            time.sleep(0.2)
            queued = pool.submit(client.post, "/api/relik", json={"text": ["b", "c"]})
            time.sleep(0.2)
            full = client.post("/api/relik", json={"text": "d"})
            assert full.status_code == 503 and int(full.headers["retry-after"]) >= 1 and "busy" in full.text
            too_large = client.post("/api/relik", json={"text": ["x"] * 3})
            assert too_large.status_code == 413
            release.set()
            assert first.result().json() == [{"text": "a"}] and queued.result().status_code == 200
    finally:
        release.set()
        worker.close()


def test_over_loopback_http_with_a_shared_worker(relik):
    backend = RelikBackend(relik)
    worker = Worker(backend)
    with serve_json(worker, backend.limits(), port=0, block=False, max_body_bytes=10_000) as server:
        assert server.url.startswith("http://127.0.0.1:")
        got = httpx.post(server.url + "/api/relik", json={"text": DOCS[2]}, timeout=60)
        assert got.status_code == 200 and got.json() == json.loads(json.dumps([relik(DOCS[2]).to_dict()]))
        big = httpx.post(server.url + "/api/relik", content=b"x" * 20_000, headers=JSON, timeout=60)
        assert big.status_code == 413
        assert httpx.get(server.url + "/health", timeout=10).json()["status"] == "ok"
        # NIF spans and JSON outputs from one worker: options tell them apart
        assert worker.submit([DOCS[2]]).result(60) == [[(s.start, s.end, s.label) for s in relik(DOCS[2]).spans
                                                         if s.label != "--NME--"]]
        assert worker.submit([DOCS[2]], JsonOptions()).result(60)[0]["text"] == DOCS[2]
    worker.close()


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(ImportError, match=r"relik-jax\[serve\]"):
        json_api.build_app(worker := Worker(lambda d, o, c: d))
    worker.close()
