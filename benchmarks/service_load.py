"""Load test of both services (NIF for GERBIL and the JSON API) on loopback: no valid document lost, every malformed
request a 4xx with a reason, small-document latency while a 200,000-character document is annotated.

A server process (this script with --serve) loads a tiny random pipeline (tests/inference/tiny_pipeline.py, EL
windows 32/16, top-k 4: model time is milliseconds per document, so the numbers measure the service, not a model)
and runs one worker behind a NIF server and a JSON server on 127.0.0.1, warmed up first (the batch sizes and the
documents once: JAX compiles a program per padded shape, seconds each on CPU, as a server that has run a while has).
Its backend raises on any batch holding the marker POISON-PILL (a simulated model fault on one document). The
client process runs 100 threads over:

- 2,000 valid documents (KORE50, RSS-500, Reuters-128, OKE 2015/2016 cycled; half to each endpoint): each must be
  answered (200, its text unchanged, well-formed mentions inside it), checked after the run so the clients do not
  take the server's CPU; each is also compared with the same document annotated alone (the tiny pipeline in this
  process, same weights): batch composition changes the last bits of the scores, and a near-tie of the random
  model may then flip, so that count is reported, not required;
- 1,000 malformed or poisoned requests, interleaved; per endpoint, of every 20: 15 malformed, 1 model fault, 4
  hostile but valid. Malformed: NIF (the 15 kinds of nif_service_load.py, a lone surrogate escape) and JSON (bad
  JSON / UTF-8 / types / parameters / size / content type, lone surrogate, a record dict, null, numbers) must get 4xx
  with a reason; hostile but valid (a 50,000-character word, control characters, a lone CR, no Content-Type) must
  get 200 and an answer; POISON-PILL documents must get 500 naming the document, and nobody else may;
- one 200,000-character document (Reuters texts concatenated), sent once half the valid documents are answered: the
  small documents answered while it runs give the latency percentiles, those before it the same storm's baseline.

Before the storm, a probe repeats the issue's scenario in process (the long document, then one small document every
0.5 s): with the fair worker, and with one lane and no checkpoints (the service before this change).

    PYTHONPATH=$PWD python benchmarks/service_load.py            # prints a table, writes results/service_load.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests" / "inference")]

import rdflib  # noqa: E402
from nif_service_load import NIF_NS, malformed_catalogue, parse_answer, raw_request, request_doc  # noqa: E402

from relik_jax.evaluation.gerbil.datasets import load_gerbil_dataset  # noqa: E402
from relik_jax.evaluation.gerbil.nif import OffsetMap  # noqa: E402
from relik_jax.evaluation.gerbil.uris import title_to_uri  # noqa: E402
from relik_jax.serve.worker import Worker  # noqa: E402

DATASETS = ("kore50", "rss-500", "reuters-128", "oke-2015", "oke-2016", "oke-2015-train", "oke-2016-train")
POISON = "POISON-PILL"
CONFIG = {"top_k": 4, "window_size": 32, "window_stride": 16}
RESULTS = ROOT / "benchmarks" / "results" / "service_load.json"


# ------------------------------------------------------------------------------------------------- server side


def serve(workdir: Path, n_valid: int) -> None:
    """The server process: one worker, NIF + JSON servers; prints their URLs, serves until stdin closes."""
    from relik_jax.evaluation.gerbil.service import serve_nif
    from relik_jax.inference.pipeline import Relik
    from relik_jax.serve.backends import RelikBackend
    from relik_jax.serve.json_api import serve_json

    relik = Relik.from_pretrained(workdir / "pipeline")
    relik.config.chunk_windows = 64  # the long lane's slice (relik-jax serve --chunk-windows)
    backend = RelikBackend(relik)

    def faulty(docs, options, checkpoint):
        if any(POISON in (d if isinstance(d, str) else " ".join(d)) for d in docs):
            raise RuntimeError("simulated model fault")
        return backend(docs, options, checkpoint)

    texts = [d.text for name in DATASETS for d in load_gerbil_dataset(name).documents]
    # warm-up, as a server that has run a while: JAX compiles one program per padded shape (seconds each on CPU)
    # and the random reader's shapes vary with its predictions, so run the batch sizes and the documents once
    t0 = time.perf_counter()
    backend.warmup(texts[:200:5] * 2, max_batch=32)
    distinct = list(dict.fromkeys(texts[i % len(texts)] for i in range(n_valid)))
    for i in range(0, len(distinct), 32):
        backend(distinct[i:i + 32], None, lambda: None)
    warmup_s = time.perf_counter() - t0
    worker = Worker(faulty, max_batch=32, long_chars=10_000)
    nif = serve_nif(worker=worker, port=0, block=False)
    api = serve_json(worker, backend.limits(), port=0, block=False)
    print(f"READY {nif.url} {api.url} {os.getpid()} {warmup_s:.1f}", flush=True)
    sys.stdin.read()
    api.shutdown()
    nif.shutdown()
    worker.close()


def rss_mb(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    values = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status.splitlines()
              if line.startswith(("VmRSS", "VmHWM"))}
    return {"rss_mb": round(values["VmRSS"], 1), "peak_rss_mb": round(values["VmHWM"], 1)}


# ------------------------------------------------------------------------------------------------- requests


def request(url: str, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def nif_body(i: int, text: str) -> tuple[str, bytes]:
    return request_doc(10_000_000 + i, text)


def json_malformed(k: int) -> tuple[str, str, str, bytes, dict, int]:
    """(kind, method, path, body, headers, expected status) of the k-th malformed JSON request (cycled)."""
    j = {"content-type": "application/json"}
    kinds = [
        ("invalid JSON", "POST", b'{"text": "Paris', j, 400),
        ("not UTF-8", "POST", b'{"text": "\xff\xfe"}', j, 400),
        ("empty body", "POST", b"", j, 400),
        ("body is a list", "POST", b'["Paris"]', j, 422),
        ("text is a number", "POST", b'{"text": 42}', j, 422),
        ("text is a record dict", "POST", b'{"text": {"text": "Obama"}}', j, 422),
        ("text is null", "POST", b'{"text": null}', j, 422),
        ("null document in a list", "POST", b'{"text": ["ok", null]}', j, 422),
        ("bytes as a list of ints", "POST", b'{"text": [79, 98]}', j, 422),
        ("lone surrogate escape", "POST", b'{"text": "Obama \\ud800 x"}', j, 422),
        ("unknown parameter", "POST", b'{"txt": "Paris"}', j, 422),
        ("top_k 0", "POST", b'{"text": "Paris", "top_k": 0}', j, 422),
        ("top_k not a number", "POST", b'{"text": "Paris", "top_k": "many"}', j, 422),
        ("window_size not the loaded one", "POST", b'{"text": "Paris", "window_size": 5}', j, 422),
        ("annotation_type word", "POST", b'{"text": "Paris", "annotation_type": "word"}', j, 422),
        ("wrong content type", "POST", b'{"text": "Paris"}', {"content-type": "text/plain"}, 415),
        ("declared body too large", "POST", b"{}", {**j, "content-length": str(10**9)}, 413),
        ("GET without text", "GET", b"", {}, 422),
        ("GET parameter twice", "GET", b"", {}, 422),
    ]
    name, method, body, headers, status = kinds[k % len(kinds)]
    path = "/api/relik" if name != "GET parameter twice" else "/api/relik?text=a&top_k=1&top_k=2"
    return name, method, path, body, headers, status


def hostile_valid_text(k: int) -> tuple[str, str]:
    """(kind, text) of valid-but-hostile documents: must be answered 200 and correctly."""
    kinds = [("control characters", "Paris\x00 and\x01 Berlin\x7f with \u2028 separators ."),
             ("lone CR inside", "Obama visited Japan\ryesterday ."),
             ("astral characters", "\U0001f600 Obama \U0001d518 Syria .")]
    if k % 40 == 0:
        return "50,000-character word", "Obama " + "x" * 50_000 + " Honolulu ."
    return kinds[k % len(kinds)]


# ------------------------------------------------------------------------------------------------- client side


def head_of_line_probe(backend: Any, long_text: str, texts: list[str], fair: bool) -> dict:
    """The issue's scenario without the storm: the long document alone, then one small document every 0.5 s from 2 s
    on, through a worker (no HTTP). fair=False: one lane and no checkpoints, as the service was before."""
    worker = Worker(backend, long_chars=10_000 if fair else 10**9)
    t0 = time.perf_counter()
    long = worker.submit([long_text])
    time.sleep(2.0)
    ms = []
    while not long.done():
        t = time.perf_counter()
        worker.submit([texts[len(ms) % len(texts)]]).result()
        ms.append(1000 * (time.perf_counter() - t))
        time.sleep(0.5)
    long.result()
    worker.close()
    pct = statistics.quantiles(ms, n=100) if len(ms) >= 2 else [ms[0] if ms else float("nan")] * 99
    return {"long_doc_s": round(time.perf_counter() - t0, 1), "probes": len(ms), "p50_ms": round(pct[49], 1),
            "p99_ms": round(pct[98], 1), "max_ms": round(max(ms), 1) if ms else None}


def answered(data: bytes, endpoint: str, ctx: str | None, text: str) -> bool:
    """The answer holds the document, its text unchanged, and only well-formed mentions inside it."""
    if endpoint == "json":
        out = json.loads(data)
        return (len(out) == 1 and out[0]["text"] == text
                and all(0 <= s < e <= len(text) and text[s:e] == t for s, e, _, t in out[0]["spans"]))
    graph = rdflib.Graph().parse(data=data.decode("utf-8"), format="turtle")
    if str(graph.value(rdflib.URIRef(ctx), rdflib.URIRef(NIF_NS + "isString"))) != text:
        return False
    n = OffsetMap(text).utf16_len
    return all(0 <= b < e <= n for b, e, _ in parse_answer(data, ctx))


def run(n_valid: int = 2000, n_bad: int = 1000, clients: int = 100, long_chars: int = 200_000,
        seed: int = 0, warmup: int = 40) -> dict:
    from tiny_pipeline import save_tiny_pipeline

    from relik_jax.inference.pipeline import Relik
    from relik_jax.serve.backends import JsonOptions, RelikBackend

    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="service-load-"))
    save_tiny_pipeline(workdir / "pipeline", **CONFIG)
    texts = [d.text for name in DATASETS for d in load_gerbil_dataset(name).documents]
    reuters = [d.text for d in load_gerbil_dataset("reuters-128").documents]
    long_text = ""
    while len(long_text) < long_chars:
        long_text += " ".join(reuters) + " "
    long_text = long_text[:long_chars]

    # expected answers: each distinct document annotated alone, same pipeline and weights, in this process
    local = RelikBackend(Relik.from_pretrained(workdir / "pipeline"))
    alone: dict[str, dict] = {}
    t0 = time.perf_counter()
    used = {texts[i % len(texts)] for i in range(n_valid)} | set(texts[:warmup])
    for t in {*used, long_text, *(hostile_valid_text(k)[1] for k in range(n_bad))}:
        (alone[t],) = json.loads(json.dumps(local([t], JsonOptions(), lambda: None)))
    expected_s = time.perf_counter() - t0

    def nif_expected(text: str) -> set:
        m = OffsetMap(text)
        return {(m.to_utf16(s), m.to_utf16(e), title_to_uri(label, "dbpedia"))
                for s, e, label, _ in alone[text]["spans"] if label != "--NME--"}

    local.relik.config.chunk_windows = 64  # as the server
    probe = {"fair": head_of_line_probe(local, long_text, texts, fair=True),
             "one lane, no checkpoints (before)": head_of_line_probe(local, long_text, texts, fair=False)}

    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(workdir), "--valid", str(n_valid)],
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    ready = proc.stdout.readline().split()
    assert ready and ready[0] == "READY", ready
    nif_url, json_url, pid, warmup_s = ready[1], ready[2], int(ready[3]), float(ready[4])
    try:
        for i, t in enumerate(texts[:warmup]):  # warm-up: compile the programs of the usual shapes
            request(json_url, "POST", "/api/relik", json.dumps({"text": t}).encode())
            request(nif_url, "POST", "/", nif_body(i, t)[1], {"Content-Type": "application/x-turtle"})
    except BaseException:
        proc.stdin.close()
        raise
    rss_before = rss_mb(pid)

    # the work: valid documents and bad requests interleaved, shuffled with a fixed seed
    work = [("valid", i) for i in range(n_valid)] + [("bad", k) for k in range(n_bad)]
    rng.shuffle(work)
    lock = threading.Lock()
    results: list[dict] = []
    queue = list(reversed(work))
    long_box: dict = {}
    half = threading.Event()

    def one(kind: str, i: int) -> dict:
        if kind == "valid":  # answers are checked after the run: the clients' CPU is the server's CPU here
            text = texts[i % len(texts)]
            if i % 2:  # NIF
                ctx, body = nif_body(i, text)
                t = time.perf_counter()
                status, data = request(nif_url, "POST", "/dbpedia", body, {"Content-Type": "application/x-turtle"})
                check = ("nif", ctx, text)
            else:
                body = json.dumps({"text": text}).encode()
                t = time.perf_counter()
                status, data = request(json_url, "POST", "/api/relik", body, {"content-type": "application/json"})
                check = ("json", None, text)
            return {"kind": "valid", "endpoint": "nif" if i % 2 else "json", "status": status, "t0": t,
                    "t1": time.perf_counter(), "chars": len(text), "check": check, "data": data}
        endpoint = "nif" if i % 2 else "json"
        sub = i // 2  # per endpoint: of every 20 requests, 15 malformed, 1 model fault, 4 hostile but valid
        group, slot = divmod(sub, 20)
        if slot >= 16:  # valid but hostile: 200 and the right answer
            name, text = hostile_valid_text(4 * group + slot - 16)
            if endpoint == "nif":
                ctx, body = nif_body(500_000 + i, text)
                headers = {} if group % 2 else {"Content-Type": "application/x-turtle"}  # half: no Content-Type
                status, data = request(nif_url, "POST", "/", body, headers)
            else:
                ctx = None
                status, data = request(json_url, "POST", "/api/relik", json.dumps({"text": text}).encode())
            ok = status == 200 and answered(data, endpoint, ctx, text)
            return {"kind": "hostile valid", "name": name, "endpoint": endpoint, "ok": ok, "status": status}
        if slot == 15:  # simulated model fault: 500 naming the document, for this request only
            text = f"Paris {POISON} number {i} ."
            if endpoint == "nif":
                status, data = request(nif_url, "POST", "/", nif_body(600_000 + i, text)[1])
            else:
                status, data = request(json_url, "POST", "/api/relik", json.dumps({"text": ["Paris .", text]}).encode())
            ok = status == 500 and b"simulated model fault" in data
            return {"kind": "fault", "endpoint": endpoint, "ok": ok, "status": status}
        if endpoint == "nif":
            if slot == 14:
                name, want = "lone surrogate escape", 400
                body = (b"@prefix nif: <http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#> .\n"
                        b'<http://x.org/s#char=0,9> a nif:Context ; nif:isString "Obama \\uD800 x" .')
                status, data = request(nif_url, "POST", "/", body, {"Content-Type": "application/x-turtle"})
            else:
                name, raw, want = malformed_catalogue(14 * group + slot)
                status, data = raw_request(int(nif_url.rsplit(":", 1)[1]), raw)
        else:
            name, method, path, body, headers, want = json_malformed(15 * group + slot)
            status, data = request(json_url, method, path, body, headers)
        ok = status == want and 400 <= status < 500 and len(data.strip()) > 0
        return {"kind": "malformed", "name": name, "endpoint": endpoint, "ok": ok, "status": status, "want": want}

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                kind, i = queue.pop()
            try:
                r = one(kind, i)
            except Exception as err:  # a lost request: connection error, timeout
                r = {"kind": kind, "ok": False, "status": -1, "error": f"{type(err).__name__}: {err}"}
            with lock:
                results.append(r)
                if sum(x["kind"] == "valid" for x in results) >= n_valid // 2:
                    half.set()

    def send_long() -> None:  # at half-time: the latency before it is the baseline of the same storm
        half.wait()
        ctx, body = nif_body(999_999, long_text)
        long_box["t0"] = time.perf_counter()
        status, data = request(nif_url, "POST", "/dbpedia", body, {"Content-Type": "application/x-turtle"})
        long_box["t1"] = time.perf_counter()
        long_box["answer"] = (status, data, ctx)

    try:
        start = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)] + [threading.Thread(target=send_long)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        rss_after = rss_mb(pid)
        health = json.loads(request(json_url, "GET", "/health")[1])
    finally:
        proc.stdin.close()  # the server stops when its stdin closes
        proc.wait(timeout=60)

    status, data, ctx = long_box.pop("answer")
    long_box["ok"] = status == 200 and answered(data, "nif", ctx, long_text)
    long_box["identical_to_alone"] = long_box["ok"] and parse_answer(data, ctx) == nif_expected(long_text)
    for r in results:
        if "check" in r:
            endpoint, ctx, text = r.pop("check")
            data = r.pop("data")
            r["ok"] = r["status"] == 200 and answered(data, endpoint, ctx, text)
            r["identical"] = r["ok"] and (parse_answer(data, ctx) == nif_expected(text) if endpoint == "nif"
                                          else json.loads(data) == [alone[text]])
    valid = [r for r in results if r["kind"] == "valid"]
    def latencies(rows: list[dict], endpoint: str | None = None, when: str = "all") -> dict:
        ms = [1000 * (r["t1"] - r["t0"]) for r in rows if "t1" in r and endpoint in (None, r["endpoint"]) and (
            when == "all" or (when == "before" and r["t1"] <= long_box["t0"])
            or (when == "during" and r["t0"] >= long_box["t0"] and r["t1"] <= long_box["t1"]))]
        pct = statistics.quantiles(ms, n=100) if len(ms) >= 2 else [float("nan")] * 99
        return {"n": len(ms), "p50": round(pct[49], 1), "p99": round(pct[98], 1),
                "max": round(max(ms), 1) if ms else None}

    def tally(kind: str) -> dict:
        rows = [r for r in results if r["kind"] == kind]
        return {ep: {"sent": sum(r.get("endpoint") == ep for r in rows),
                     "ok": sum(r.get("endpoint") == ep and r["ok"] for r in rows)} for ep in ("nif", "json")}

    bad = [r for r in results if not r["ok"]]
    identical = [r["identical"] for r in results if r["kind"] == "valid"]
    return {
        "setup": {"clients": clients, "valid_docs": n_valid, "bad_requests": n_bad, "long_doc_chars": len(long_text),
                  "model": "tiny random EL pipeline (tests/inference/tiny_pipeline.py), windows 32/16, top-k 4",
                  "cpu_cores": os.cpu_count(), "chunk_windows": 64, "max_batch": 32},
        "valid": tally("valid"), "malformed": tally("malformed"), "hostile_valid": tally("hostile valid"),
        "fault": tally("fault"),
        "lost": sum(r["status"] == -1 for r in results),
        "failures": bad[:20],
        "valid_identical_to_alone": {"n": len(identical), "identical": sum(identical)},
        "long_doc": {"ok": long_box.get("ok"), "identical_to_alone": long_box.get("identical_to_alone"),
                     "seconds": round(long_box["t1"] - long_box["t0"], 1)},
        "server_warmup_s": warmup_s,
        "head_of_line_probe": probe,
        "small_latency_ms_while_long_runs": latencies(valid, when="during"),
        "small_latency_ms_before_long": latencies(valid, when="before"),
        "small_latency_ms_all": latencies(valid),
        "small_latency_ms_while_long_runs_by_endpoint": {ep: latencies(valid, ep, "during") for ep in ("nif", "json")},
        "load_average": os.getloadavg(),
        "server_rss_before": rss_before, "server_rss_after": rss_after,
        "worker": health, "wall_s": round(wall, 1), "expected_answers_s": round(expected_s, 1),
        "malformed_kinds": sorted({r["name"] for r in results if r["kind"] == "malformed"}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the server process
    parser.add_argument("--valid", type=int, default=2000)
    parser.add_argument("--bad", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--long-chars", type=int, default=200_000)
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.valid)
        return 0
    r = run(args.valid, args.bad, args.clients, args.long_chars)
    lat, before = r["small_latency_ms_while_long_runs"], r["small_latency_ms_before_long"]
    by = r["small_latency_ms_while_long_runs_by_endpoint"]
    rows = [("", "NIF", "JSON")]
    for key, label in (("valid", "valid documents answered correctly"), ("malformed", "malformed -> 4xx w/ reason"),
                       ("hostile_valid", "hostile but valid -> 200, correct"), ("fault", "model fault -> own 500")):
        rows.append((label, *(f"{r[key][ep]['ok']} / {r[key][ep]['sent']}" for ep in ("nif", "json"))))
    same = r["valid_identical_to_alone"]
    rows += [("valid answers identical to the document alone", f"{same['identical']} / {same['n']}", ""),
             ("requests lost (no answer)", str(r["lost"]), ""),
             (f"{r['setup']['long_doc_chars']:,}-char document", f"{r['long_doc']['seconds']} s, "
              f"{'correct' if r['long_doc']['ok'] else 'WRONG'}", ""),
             ("small docs before it (same storm): n / p50 / p99 ms", f"{before['n']} / {before['p50']} / "
              f"{before['p99']}", ""),
             ("small docs while it runs: n / p50 / p99 / max ms", f"{lat['n']} / {lat['p50']} / {lat['p99']} / "
              f"{lat['max']}", ""),
             ("  per endpoint: p50 / p99 ms", *(f"{by[ep]['p50']} / {by[ep]['p99']}" for ep in ("nif", "json"))),
             *((f"probe, no storm, {name}: long s / probes / p50 / max ms",
                f"{v['long_doc_s']} / {v['probes']} / {v['p50_ms']} / {v['max_ms']}", "")
               for name, v in r["head_of_line_probe"].items()),
             ("load average of the machine (1/5/15 min)", " / ".join(f"{x:.1f}" for x in r["load_average"]), ""),
             ("server RSS before / after (peak) MB", f"{r['server_rss_before']['rss_mb']} / "
              f"{r['server_rss_after']['rss_mb']} ({r['server_rss_after']['peak_rss_mb']})", ""),
             ("worker calls / texts / failed / handovers", f"{r['worker']['calls']} / {r['worker']['texts']} / "
              f"{r['worker']['failed']} / {r['worker']['handovers']}", ""),
             ("wall time (s), 100 clients", str(r["wall_s"]), "")]
    width = [max(len(row[c]) for row in rows) for c in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, width, strict=True)))
    if r["failures"]:
        print("failures:", json.dumps(r["failures"][:5], default=str))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(r, indent=1, default=str))
    ok = not r["failures"] and r["lost"] == 0 and r["long_doc"]["ok"] and (lat["p99"] or 0) <= 5000
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
