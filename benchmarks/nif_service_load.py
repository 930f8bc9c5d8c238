"""Load test of the NIF web service on loopback: malformed requests and concurrent clients.

Starts `serve_nif` on 127.0.0.1 (free port) with a deterministic toy annotator (every capitalised word is a
mention of the entity with that title), then runs `clients` threads at once; each sends its share of the
malformed requests (a fixed catalogue of broken inputs, each with the HTTP status it must get) interleaved
with
well-formed documents (some with characters outside the BMP) whose answers are checked exactly. Prints the
counts
(and writes them as JSON with --json). Used by tests/evaluation/test_nif_service.py with the acceptance sizes.

    PYTHONPATH=$PWD python benchmarks/nif_service_load.py --malformed 1000 --clients 50 --docs-per-client 10
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rdflib  # noqa: E402

from relik_jax.evaluation.gerbil.service import serve_nif  # noqa: E402

NIF_NS = "http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#"
ITS_NS = "http://www.w3.org/2005/11/its/rdf#"
PREFIXES = (
    f"@prefix nif: <{NIF_NS}> .\n@prefix itsrdf: <{ITS_NS}> .\n"
    "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n"
)
WORD = re.compile(r"[A-Z]\w+")


def toy_annotator(texts: list[str]) -> list[list[tuple[int, int, str]]]:
    """Every capitalised word is a mention of the Wikipedia page titled by that word."""
    return [[(m.start(), m.end(), m.group()) for m in WORD.finditer(t)] for t in texts]


def expected_answer(text: str) -> set[tuple[int, int, str]]:
    """Expected (UTF-16 begin, UTF-16 end, URI) of the toy annotator, computed without relik_jax code."""
    out = set()
    for m in WORD.finditer(text):
        begin = len(text[: m.start()].encode("utf-16-le")) // 2
        end = len(text[: m.end()].encode("utf-16-le")) // 2
        out.add((begin, end, "http://dbpedia.org/resource/" + m.group()))
    return out


def turtle_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def request_doc(i: int, text: str) -> tuple[str, bytes]:
    n = len(text.encode("utf-16-le")) // 2
    ctx = f"http://www.aksw.org/gerbil/NifWebService/request_{i}#char=0,{n}"
    body = (
        PREFIXES + f"<{ctx}> a nif:Context, nif:String, nif:RFC5147String ;\n"
        f'  nif:isString "{turtle_string(text)}"^^xsd:string ;\n'
        f'  nif:beginIndex "0"^^xsd:nonNegativeInteger ;\n  nif:endIndex "{n}"^^xsd:nonNegativeInteger .\n'
    )
    return ctx, body.encode("utf-8")


def doc_text(client: int, k: int) -> str:
    extra = " \U0001f600 Emoji" if k % 3 == 0 else ""  # astral character before a mention
    return f"Client{client} sent Doc{k} about Paris and Berlin{extra} to Rome ."


def parse_answer(data: bytes, ctx: str) -> set[tuple[int, int, str]]:
    """Mentions of context `ctx` in an answer, read with plain rdflib (independent of
    relik_jax.evaluation.gerbil.nif)."""
    g = rdflib.Graph()
    g.parse(data=data.decode("utf-8"), format="turtle")
    nif = rdflib.Namespace(NIF_NS)
    its = rdflib.Namespace(ITS_NS)
    out = set()
    for phrase in g.subjects(nif.referenceContext, rdflib.URIRef(ctx)):
        b = int(g.value(phrase, nif.beginIndex))
        e = int(g.value(phrase, nif.endIndex))
        for uri in g.objects(phrase, its.taIdentRef):
            out.add((b, e, str(uri)))
    return out


def malformed_catalogue(i: int) -> tuple[str, bytes, int]:
    """(name, raw HTTP request bytes, expected status) for the i-th malformed request (15 kinds, cycled)."""
    kinds = 15
    kind = i % kinds
    ctx = f"http://x.org/doc{i}#char=0,5"

    def post(
        body: bytes, ctype: str = "application/x-turtle;charset=UTF-8", length: int | None = None
    ) -> bytes:
        n = len(body) if length is None else length
        head = f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\nContent-Length: {n}\r\n\r\n"
        return head.encode("ascii") + body

    phrase = (
        f'<{ctx}> a nif:Context ; nif:isString "Hello" .\n'
        f"<http://x.org/doc{i}#char=0,2> nif:referenceContext <{ctx}> ;\n"
    )
    if kind == 0:
        return "not turtle", post(f"this is not turtle <<< {i}".encode()), 400
    if kind == 1:
        return "empty body", post(b""), 400
    if kind == 2:
        return "not utf-8", post(b"\xff\xfe\xfa" + str(i).encode()), 400
    if kind == 3:
        return (
            "no context",
            post((PREFIXES + f"<http://x.org/{i}> <http://x.org/p> <http://x.org/o> .").encode()),
            400,
        )
    if kind == 4:
        return "context without text", post((PREFIXES + f"<{ctx}> a nif:Context .").encode()), 400
    if kind == 5:
        body = PREFIXES + phrase + ' nif:beginIndex "2"^^xsd:int ; nif:endIndex "99"^^xsd:int .'
        return "span outside text", post(body.encode()), 400
    if kind == 6:
        body = PREFIXES + phrase + ' nif:beginIndex "abc" ; nif:endIndex "2" .'
        return "non-integer offset", post(body.encode()), 400
    if kind == 7:
        body = PREFIXES + phrase + ' nif:beginIndex "3" ; nif:endIndex "1" .'
        return "begin after end", post(body.encode()), 400
    if kind == 8:
        body = PREFIXES + f'<{ctx}> a nif:Context ; nif:isString "Hello" .\n'
        return "wrong content type", post(body.encode(), ctype="application/json"), 415
    if kind == 9:
        body = (
            PREFIXES
            + f"<http://x.org/p{i}> nif:referenceContext <{ctx}> ; nif:beginIndex 0 ; nif:endIndex 1 ."
        )
        return "phrase without context", post(body.encode()), 400
    if kind == 10:
        body = (PREFIXES + f'<{ctx}> a nif:Context ; nif:isString "Hello" .\n').encode()
        return "body shorter than declared", post(body[:-5], length=len(body) - 20), 400
    if kind == 11:
        return "body too large", post(b"", length=10**12), 413
    if kind == 12:
        return "garbage request line", f"THIS IS NOT HTTP {i}\r\n\r\n".encode(), 400
    if kind == 13:
        body = PREFIXES + phrase + ' nif:beginIndex "0" ; nif:endIndex "2" ; itsrdf:taConfidence "high" .'
        return "non-numeric confidence", post(body.encode()), 400
    return "missing content length", b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 411


def raw_request(port: int, data: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else -1
    return status, body


def run_load(n_malformed: int = 1000, n_clients: int = 50, docs_per_client: int = 10) -> dict:
    server = serve_nif(toy_annotator, host="127.0.0.1", port=0, block=False, max_batch=32)
    port = server.httpd.server_address[1]
    lock = threading.Lock()
    stats = {
        "malformed_sent": 0,
        "malformed_expected_status": 0,
        "malformed_wrong_status": [],
        "wellformed_sent": 0,
        "wellformed_correct": 0,
        "wellformed_wrong": [],
        "latencies_ms": [],
    }
    barrier = threading.Barrier(n_clients)

    def client(c: int) -> None:
        mine = list(range(c, n_malformed, n_clients))
        barrier.wait()  # all clients start together
        step = max(1, len(mine) // max(1, docs_per_client))
        k = 0
        for j, i in enumerate(mine):
            name, data, want = malformed_catalogue(i)
            status, body = raw_request(port, data)
            with lock:
                stats["malformed_sent"] += 1
                if status == want and (status != 400 or len(body.strip()) > 0):
                    stats["malformed_expected_status"] += 1
                else:
                    stats["malformed_wrong_status"].append((name, status, want))
            if (j + 1) % step == 0 and k < docs_per_client:
                well_formed(c, k)
                k += 1
        while k < docs_per_client:
            well_formed(c, k)
            k += 1

    def well_formed(c: int, k: int) -> None:
        text = doc_text(c, k)
        ctx, body = request_doc(c * 100000 + k, text)
        head = (
            "POST /dbpedia HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-turtle;charset=UTF-8\r\n"
            f"Accept: application/x-turtle\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        t0 = time.perf_counter()
        status, answer = raw_request(port, head.encode() + body)
        ms = 1000 * (time.perf_counter() - t0)
        ok = status == 200 and parse_answer(answer, ctx) == expected_answer(text)
        with lock:
            stats["wellformed_sent"] += 1
            stats["latencies_ms"].append(ms)
            if ok:
                stats["wellformed_correct"] += 1
            else:
                stats["wellformed_wrong"].append((c, k, status))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    stats["wall_s"] = time.perf_counter() - t0
    # the server must still answer after the storm
    text = "After the Storm in Paris ."
    ctx, body = request_doc(999999999, text)
    head = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-turtle\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    status, answer = raw_request(port, head.encode() + body)
    stats["alive_after"] = status == 200 and parse_answer(answer, ctx) == expected_answer(text)
    stats["annotator_calls"] = server.batcher.calls
    stats["annotated_texts"] = server.batcher.texts
    stats["server_counts"] = server.counts
    server.shutdown()
    lat = stats.pop("latencies_ms")
    stats["latency_ms_median"] = statistics.median(lat) if lat else float("nan")
    stats["latency_ms_max"] = max(lat) if lat else float("nan")
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--malformed", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--docs-per-client", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None, help="write the counts here")
    args = parser.parse_args(argv)
    stats = run_load(args.malformed, args.clients, args.docs_per_client)
    rows = [
        ("malformed requests sent", stats["malformed_sent"]),
        ("  answered with the expected 4xx", stats["malformed_expected_status"]),
        ("well-formed documents sent (concurrently)", stats["wellformed_sent"]),
        ("  answered correctly (exact UTF-16 spans + URIs)", stats["wellformed_correct"]),
        ("concurrent clients", args.clients),
        ("annotator calls (batches)", stats["annotator_calls"]),
        ("texts annotated", stats["annotated_texts"]),
        ("mean batch size", round(stats["annotated_texts"] / max(1, stats["annotator_calls"]), 2)),
        ("server alive afterwards", stats["alive_after"]),
        (
            "well-formed latency median / max (ms)",
            f"{stats['latency_ms_median']:.1f} / {stats['latency_ms_max']:.1f}",
        ),
        ("wall time (s)", round(stats["wall_s"], 2)),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    if stats["malformed_wrong_status"] or stats["wellformed_wrong"]:
        print("wrong:", stats["malformed_wrong_status"][:10], stats["wellformed_wrong"][:10])
    if args.json:
        args.json.write_text(json.dumps(stats, indent=1, default=str))
    ok = (
        stats["malformed_expected_status"] == stats["malformed_sent"] == args.malformed
        and stats["wellformed_correct"] == stats["wellformed_sent"] == args.clients * args.docs_per_client
        and stats["alive_after"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
