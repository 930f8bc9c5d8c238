"""The client side of the NIF web service, as GERBIL's NIFBasedAnnotatorWebservice: one POST per document."""

from __future__ import annotations

import http.client
import itertools
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from relik_jax.evaluation.gerbil.nif import NifDocument, NifMention, parse_nif, utf16_len, write_nif
from relik_jax.evaluation.gerbil.service import TURTLE  # the service defines the wire format

_request_ids = itertools.count()


def gerbil_request(doc: NifDocument, with_gold_spans: bool = False) -> tuple[str, str]:
    """(context URI, NIF Turtle) of GERBIL's request for a document: the context only (A2KB) or with the gold
    phrases minus their URIs (D2KB)."""
    uri = (
        f"http://www.aksw.org/gerbil/NifWebService/request_{next(_request_ids)}#char=0,{utf16_len(doc.text)}"
    )
    mentions = [NifMention(m.begin, m.end) for m in doc.mentions] if with_gold_spans else []
    return uri, write_nif(NifDocument(uri, doc.text, mentions))


class NifClient:
    """POSTs documents to a NIF service and parses the answers (as GERBIL's NIFBasedAnnotatorWebservice)."""

    def __init__(self, url: str, timeout_s: float = 300.0):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"NIF service URL must be http://host:port/path, got {url!r}")
        self.host, self.port, self.path = parts.hostname, parts.port or 80, parts.path or "/"
        self.timeout_s = timeout_s

    def post(self, body: bytes, content_type: str = TURTLE) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request(
                "POST", self.path, body=body, headers={"Content-Type": content_type, "Accept": TURTLE}
            )
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def annotate(self, doc: NifDocument, with_gold_spans: bool = False) -> NifDocument:
        """The service's answer for `doc` (mentions in UTF-16 offsets); raises on HTTP errors or bad
        answers."""
        uri, body = gerbil_request(doc, with_gold_spans)
        status, data = self.post(body.encode("utf-8"))
        if status != 200:
            raise RuntimeError(f"NIF service answered HTTP {status}: {data[:300].decode('utf-8', 'replace')}")
        answer = {d.uri: d for d in parse_nif(data.decode("utf-8"), strict=True).documents}
        if uri not in answer:
            raise RuntimeError(f"NIF service answer lacks the request context <{uri}>")
        got = answer[uri]
        if got.text != doc.text:
            raise RuntimeError(f"NIF service changed the text of <{uri}>")
        return NifDocument(doc.uri, doc.text, got.mentions)

    def annotate_many(
        self,
        docs: Sequence[NifDocument],
        clients: int = 4,
        with_gold_spans: bool = False,
        timings_ms: list[float] | None = None,
    ) -> list[NifDocument | None]:
        """Answers for all documents (None where the request failed: GERBIL's error count); the time of each
        request (ms, POST to parsed answer) is appended to timings_ms, in document order."""

        def one(doc: NifDocument) -> tuple[NifDocument | None, float]:
            t0 = time.perf_counter()
            try:
                answer = self.annotate(doc, with_gold_spans)
            except Exception:
                answer = None
            return answer, 1000 * (time.perf_counter() - t0)

        with ThreadPoolExecutor(max_workers=max(1, clients)) as pool:
            results = list(pool.map(one, docs))
        if timings_ms is not None:
            timings_ms.extend(ms for _, ms in results)
        return [answer for answer, _ in results]
