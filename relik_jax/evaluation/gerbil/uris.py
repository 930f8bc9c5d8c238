"""GERBIL's URI handling: Wikipedia title <-> KB URI, the sameAs expansion used before matching, KB membership.

What is replicated from GERBIL (dice-group/gerbil, see shared/reference/gerbil.md §B): URI sets are expanded
before matching (sameAs): `en.dbpedia.org` -> `dbpedia.org`, Wikipedia <-> DBpedia bridging per language,
percent-encoding variants of the last path segment (Java URLEncoder/URLDecoder), the dataset's own `owl:sameAs`
links (OKE) and an optional offline redirect table. A URI is InKB when it starts with a well-known KB namespace.

Not replicated (needs online services GERBIL queries): the DBpedia sameAs/redirect Lucene index, the Wikipedia
redirect API and the entity-existence check; `UriNormalizer(redirects=...)` and `kb_entities` (scoring) take
offline tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote_plus, unquote_plus

# GERBIL's default well-known KBs (gerbil.properties `org.aksw.gerbil.evaluate.DefaultWellKnownKBs`).
KB_PREFIXES: tuple[str, ...] = (
    "http://dbpedia.org/resource/",
    "http://dbpedia.org/ontology/",
    "http://www.wikidata.org/entity/",
    "http://www.ontologydesignpatterns.org/ont/dul/DUL.owl#",
    "http://www.ontologydesignpatterns.org/ont/d0.owl#",
    "http://d-nb.info/",
)
DBPEDIA_RESOURCE = "http://dbpedia.org/resource/"
WIKIPEDIA_PAGE = "http://en.wikipedia.org/wiki/"
NOT_IN_WIKI = "http://aksw.org/notInWiki/"

_WIKI_RE = re.compile(r"^https?://([a-z][a-z-]*)\.wikipedia\.org/wiki/(.*)$", re.DOTALL)
_DBPEDIA_RE = re.compile(r"^https?://(?:([a-z][a-z-]*)\.)?dbpedia\.org/resource/(.*)$", re.DOTALL)
_PERCENT_RE = re.compile(r"%[0-9A-Fa-f]{2}")
_BAD_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def java_url_encode(text: str) -> str:
    """java.net.URLEncoder.encode(text, "UTF-8"): keeps [A-Za-z0-9.*_-], space -> '+', the rest %XX."""
    return quote_plus(text, safe="*").replace("~", "%7E")


def _last_segment_start(uri: str) -> int:
    return max(uri.rfind("/"), uri.rfind("#")) + 1 if ("/" in uri or "#" in uri) else -1


def encoding_variants(uri: str) -> set[str]:
    """GERBIL's UriEncodingHandlingSameAsRetriever: decode the last path segment if it holds %XX, else
    encode it."""
    start = _last_segment_start(uri)
    if start < 0:
        return {uri}
    head, last = uri[:start], uri[start:]
    if _PERCENT_RE.search(last):
        if _BAD_PERCENT_RE.search(last):  # Java's URLDecoder throws on a malformed escape -> no variant
            return {uri}
        return {uri, head + unquote_plus(last, errors="replace")}
    return {uri, head + java_url_encode(last)}


def _bridge(uri: str) -> set[str]:
    """Wikipedia <-> DBpedia (WikiDbPediaBridgingSameAsRetriever) plus the en.dbpedia.org fix
    (ErrorFixing...)."""
    out = set()
    m = _WIKI_RE.match(uri)
    if m:
        lang, title = m.groups()
        out.add(f"http://{'' if lang == 'en' else lang + '.'}dbpedia.org/resource/{title}")
    m = _DBPEDIA_RE.match(uri)
    if m:
        lang, title = m.groups()
        if lang == "en":
            out.add(f"http://dbpedia.org/resource/{title}")
        out.add(f"http://{lang or 'en'}.wikipedia.org/wiki/{title}")
        # Our extension (never changes valid URIs): titles written with spaces mean underscores.
        if " " in title:
            host = "dbpedia.org" if lang in (None, "en") else f"{lang}.dbpedia.org"
            out.add(f"http://{host}/resource/{title.replace(' ', '_')}")
    return out


class UriNormalizer:
    """Expands a URI set to all forms GERBIL treats as the same entity (closure of the sameAs retrievers).

    same_as: dataset links (uri -> other uris, used in both directions), e.g. OKE's owl:sameAs to DBpedia.
    redirects: optional offline redirect/sameAs table (uri -> uris), standing in for GERBIL's DBpedia index.
    """

    def __init__(
        self,
        same_as: Mapping[str, Iterable[str]] | None = None,
        redirects: Mapping[str, Iterable[str]] | None = None,
        max_rounds: int = 6,
    ):
        links: dict[str, set[str]] = {}
        for table in (same_as or {}), (redirects or {}):
            for a, bs in table.items():
                for b in bs:
                    links.setdefault(a, set()).add(b)
                    links.setdefault(b, set()).add(a)
        self._links = links
        self._max_rounds = max_rounds
        self._cache: dict[frozenset[str], frozenset[str]] = {}

    def _neighbours(self, uri: str) -> set[str]:
        out = encoding_variants(uri) | _bridge(uri)
        out |= self._links.get(uri, set())
        return out

    def expand(self, uris: Iterable[str]) -> frozenset[str]:
        key = frozenset(uris)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        result = set(key)
        frontier = set(key)
        for _ in range(self._max_rounds):  # bounded: encode/decode could otherwise ping-pong forever
            new = set()
            for uri in frontier:
                new |= self._neighbours(uri)
            frontier = new - result
            if not frontier:
                break
            result |= frontier
        out = frozenset(result)
        self._cache[key] = out
        return out


def is_kb_uri(uri: str, kb_prefixes: Sequence[str] = KB_PREFIXES) -> bool:
    """InKB test of GERBIL's evaluation: the URI lies in a well-known KB namespace."""
    return uri.startswith(tuple(kb_prefixes))


_IRI_ESCAPES = {c: f"%{ord(c):02X}" for c in '<>"{}|\\^`%'}


def title_to_uri(title: str, uri_style: str = "dbpedia") -> str:
    """Wikipedia title -> DBpedia resource or Wikipedia page URI, in the IRI form the GERBIL datasets use.

    Spaces become underscores (as ReLiK's GERBIL server does); characters a Turtle IRI cannot hold (control
    characters, `<>"{}|\\^`` and `%`) are percent-encoded; other characters, non-ASCII included, stay as
    they are.
    """
    name = "_".join(title.strip().split(" "))
    name = "".join(_IRI_ESCAPES.get(c, c) if ord(c) > 0x20 else f"%{ord(c):02X}" for c in name) or "_"
    if uri_style == "dbpedia":
        return DBPEDIA_RESOURCE + name
    if uri_style == "wikipedia":
        return WIKIPEDIA_PAGE + name
    raise ValueError(f"uri_style must be 'dbpedia' or 'wikipedia', got {uri_style!r}")


def uri_to_title(uri: str) -> str | None:
    """English DBpedia/Wikipedia URI -> Wikipedia title (spaces, decoded); None for other URIs."""
    for pattern in (_DBPEDIA_RE, _WIKI_RE):
        m = pattern.match(uri)
        if m and (m.group(1) in (None, "en")):
            return unquote_plus(m.group(2).replace("+", "%2B")).replace("_", " ")
    return None
