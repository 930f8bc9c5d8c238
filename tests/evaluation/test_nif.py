"""NIF I/O: UTF-16 offsets (as Java counts them), reading, writing, rejecting malformed NIF."""

import pytest
import rdflib

from relik_jax.evaluation.gerbil.nif import (
    ITSRDF,
    NIF,
    NifDocument,
    NifError,
    NifMention,
    OffsetMap,
    parse_nif,
    py_to_utf16,
    utf16_len,
    utf16_slice,
    utf16_to_py,
    write_nif,
)

PREFIXES = """@prefix nif: <http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#> .
@prefix itsrdf: <http://www.w3.org/2005/11/its/rdf#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
"""

# "😀" (U+1F600) is one Python character but two UTF-16 code units (a surrogate pair), like Java's String.
TEXT = "😀 Paris, 𝔘nicode and Berlin."


def test_utf16_offsets_by_hand():
    # code points: 😀=0 ' '=1 P=2..s=6 ','=7 ' '=8 𝔘=9 n=10 ... e=15 ' '=16 a=17 n=18 d=19 ' '=20 B=21..n=26
    # '.'=27
    # UTF-16 adds 1 after 😀 and 2 after 𝔘 (both astral)
    assert len(TEXT) == 28 and utf16_len(TEXT) == 30
    assert py_to_utf16(TEXT, 2) == 3  # "Paris" starts after one surrogate pair
    assert py_to_utf16(TEXT, 9) == 10  # "𝔘nicode" starts after one pair
    assert py_to_utf16(TEXT, 16) == 18  # after "𝔘nicode": two pairs before
    assert py_to_utf16(TEXT, 21) == 23  # "Berlin"
    assert utf16_to_py(TEXT, 23) == 21 and utf16_to_py(TEXT, 30) == 28
    assert utf16_slice(TEXT, 23, 29) == "Berlin" and utf16_slice(TEXT, 10, 18) == "𝔘nicode"
    with pytest.raises(ValueError, match="surrogate pair"):
        utf16_to_py(TEXT, 1)  # between the two halves of 😀
    with pytest.raises(ValueError, match="outside"):
        py_to_utf16(TEXT, 29)
    bmp = OffsetMap("plain")
    assert bmp.to_utf16(5) == 5 and bmp.to_py(3) == 3


def test_write_then_read_round_trip_with_astral_characters():
    doc = NifDocument(
        "http://example.org/doc1#char=0,30",
        TEXT,
        [
            NifMention(3, 8, ("http://dbpedia.org/resource/Paris",)),
            NifMention(23, 29, ("http://dbpedia.org/resource/Berlin",), score=0.5),
        ],
    )
    ttl = write_nif(doc)
    # read back with plain rdflib: offsets on the wire are the UTF-16 numbers
    g = rdflib.Graph().parse(data=ttl, format="turtle")
    spans = {
        (int(g.value(p, NIF.beginIndex)), int(g.value(p, NIF.endIndex)), str(g.value(p, NIF.anchorOf)))
        for p in g.subjects(NIF.referenceContext, None)
    }
    assert spans == {(3, 8, "Paris"), (23, 29, "Berlin")}
    ctx = rdflib.URIRef(doc.uri)
    assert str(g.value(ctx, NIF.isString)) == TEXT and int(g.value(ctx, NIF.endIndex)) == 30
    corpus = parse_nif(ttl)
    assert len(corpus.documents) == 1
    back = corpus.documents[0]
    assert back.uri == doc.uri and back.text == TEXT
    assert [(m.begin, m.end, m.uris, m.score) for m in back.mentions] == [
        (3, 8, ("http://dbpedia.org/resource/Paris",), None),
        (23, 29, ("http://dbpedia.org/resource/Berlin",), 0.5),
    ]
    assert any(True for _ in g.objects(None, ITSRDF.taConfidence))


def test_same_span_twice_stays_two_mentions():
    uris = ("http://dbpedia.org/resource/A",), ("http://dbpedia.org/resource/B",)
    doc = NifDocument(
        "http://x.org/d#char=0,5", "Hello", [NifMention(0, 5, uris[0]), NifMention(0, 5, uris[1])]
    )
    back = parse_nif(write_nif(doc)).documents[0]
    assert [m.uris for m in back.mentions] == list(uris)


def test_read_several_uris_and_same_as():
    ttl = PREFIXES + (
        '<http://x.org/d#char=0,11> a nif:Context ; nif:isString "Ada and Bob" .\n'
        "<http://x.org/d#char=0,3> nif:referenceContext <http://x.org/d#char=0,11> ;\n"
        '  nif:beginIndex "0"^^xsd:nonNegativeInteger ; nif:endIndex "3"^^xsd:nonNegativeInteger ;\n'
        "  itsrdf:taIdentRef <http://oke.org/Ada>, <http://oke.org/Ada_2> .\n"
        "<http://oke.org/Ada> <http://www.w3.org/2002/07/owl#sameAs> "
        "<http://dbpedia.org/resource/Ada_Lovelace> .\n"
    )
    corpus = parse_nif(ttl)
    (doc,) = corpus.documents
    assert doc.mentions == [NifMention(0, 3, ("http://oke.org/Ada", "http://oke.org/Ada_2"))]
    assert corpus.same_as == {"http://oke.org/Ada": {"http://dbpedia.org/resource/Ada_Lovelace"}}
    assert corpus.n_links == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("this is <not turtle", "not valid turtle"),
        ("<http://x.org/c> a nif:Context .", "no nif:isString"),
        (
            '<http://x.org/c> nif:isString "Hi" .\n<http://x.org/p> nif:referenceContext <http://x.org/c> ;'
            ' nif:beginIndex "0" ; nif:endIndex "3" .',
            "does not fit",
        ),
        (
            '<http://x.org/c> nif:isString "Hi" .\n<http://x.org/p> nif:referenceContext <http://x.org/c> ;'
            ' nif:beginIndex "one" ; nif:endIndex "2" .',
            "not an integer",
        ),
        (
            '<http://x.org/c> nif:isString "Hi" .\n<http://x.org/p> nif:referenceContext <http://x.org/c> ;'
            ' nif:endIndex "2" .',
            "exactly one nif:beginIndex",
        ),
        (
            "<http://x.org/p> nif:referenceContext <http://x.org/c> ; nif:beginIndex 0 ; nif:endIndex 1 .",
            "not a nif",
        ),
        (
            '<http://x.org/c> nif:isString "Hi" .\n<http://x.org/p> nif:referenceContext <http://x.org/c> ;'
            ' nif:beginIndex "0" ; nif:endIndex "2" ; itsrdf:taConfidence "high" .',
            "taConfidence is not a number",
        ),
        ('<http://x.org/c> nif:isString "Hi", "Ho" .', "exactly one literal nif:isString"),
    ],
)
def test_malformed_nif_is_rejected_with_reason(body, reason):
    with pytest.raises(NifError, match=reason):
        parse_nif(PREFIXES + body, strict=True)


def test_lenient_mode_keeps_dataset_offsets_and_drops_orphans():
    body = (
        '<http://x.org/c> nif:isString "Hi" .\n'
        '<http://x.org/p> nif:referenceContext <http://x.org/c> ; nif:beginIndex "0" ; nif:endIndex "3" ;'
        " itsrdf:taIdentRef <http://dbpedia.org/resource/Hi> .\n"
        '<http://x.org/q> nif:referenceContext <http://x.org/gone> ; nif:beginIndex "0" ; nif:endIndex "1" ;'
        " itsrdf:taIdentRef <http://dbpedia.org/resource/H> .\n"
    )
    corpus = parse_nif(PREFIXES + body, strict=False)
    assert [m.end for m in corpus.documents[0].mentions] == [3]  # as written, like GERBIL
    assert corpus.orphan_phrases == 1 and corpus.orphan_links == 1
