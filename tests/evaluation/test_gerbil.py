"""GERBIL scorer against hand-computed numbers (every expected value is a literal fraction worked out below).

The corpus: five small NIF documents written as Turtle text (by a helper here, not by relik_jax.evaluation.gerbil.nif),
parsed with relik_jax.evaluation.gerbil.nif, scored with relik_jax.evaluation.gerbil.scoring (URIs:
relik_jax.evaluation.gerbil.uris). Entities: dbr = http://dbpedia.org/resource/.
"""

from fractions import Fraction as F

import pytest

from relik_jax.evaluation.gerbil.nif import NifMention, parse_nif
from relik_jax.evaluation.gerbil.scoring import (
    Counts,
    DatasetResult,
    Marking,
    Scores,
    count_matchings,
    format_details,
    format_table,
    prf,
    score_a2kb,
    score_d2kb,
    score_documents,
    to_markings,
)
from relik_jax.evaluation.gerbil.uris import (
    UriNormalizer,
    encoding_variants,
    java_url_encode,
    title_to_uri,
    uri_to_title,
)

DBR = "http://dbpedia.org/resource/"
PREFIXES = """@prefix nif: <http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#> .
@prefix itsrdf: <http://www.w3.org/2005/11/its/rdf#> .
"""


def turtle(docs):
    """docs: list of (doc_id, text, [(begin, end, uri), ...]); each mention gets its own phrase node."""
    out = [PREFIXES]
    for doc_id, text, mentions in docs:
        n = len(text.encode("utf-16-le")) // 2
        ctx = f"<http://t.org/{doc_id}#char=0,{n}>"
        out.append(f'{ctx} a nif:Context ; nif:isString "{text}" ; nif:beginIndex 0 ; nif:endIndex {n} .')
        for k, (b, e, uri) in enumerate(mentions):
            out.append(
                f"<http://t.org/{doc_id}#m{k}> nif:referenceContext {ctx} ; nif:beginIndex {b} ; "
                f"nif:endIndex {e} ; itsrdf:taIdentRef <{uri}> ."
            )
    return "\n".join(out)


# D1 "😀 Paris is in France."  😀 is 2 UTF-16 units: Paris = code points [2,7) = UTF-16 [3,8);
#    France = code points [14,20) = UTF-16 [15,21).
# D2 "Jobs met Steve Wozniak at Apple Inc today."  Jobs [0,4) (emerging), Steve Wozniak [9,22), Apple Inc
# [26,35).
# D3 "Zorblax visited Narnia."  Zorblax [0,7) (emerging), Narnia [16,22).
# D4 "Nothing here."  no gold, no prediction.
# D5 "Rome."  no gold, one prediction Rome [0,4).
T1, T2, T3, T4, T5 = (
    "😀 Paris is in France.",
    "Jobs met Steve Wozniak at Apple Inc today.",
    "Zorblax visited Narnia.",
    "Nothing here.",
    "Rome.",
)
GOLD = [
    ("d1", T1, [(3, 8, DBR + "Paris"), (15, 21, DBR + "France")]),
    (
        "d2",
        T2,
        [
            (0, 4, "http://aksw.org/notInWiki/Jobs"),
            (9, 22, DBR + "Steve_Wozniak"),
            (26, 35, DBR + "Apple_Inc."),
        ],
    ),
    ("d3", T3, [(0, 7, "http://aksw.org/notInWiki/Zorblax"), (16, 22, DBR + "Narnia_(world)")]),
    ("d4", T4, []),
    ("d5", T5, []),
]
PRED = [
    # Paris twice (duplicate prediction; once as a Wikipedia URL), France as DBpedia resource
    (
        "d1",
        T1,
        [(3, 8, "http://en.wikipedia.org/wiki/Paris"), (3, 8, DBR + "Paris"), (15, 21, DBR + "France")],
    ),
    # overlapping predictions: "Steve" (right entity, partial span) and "Steve Wozniak" (exact span, wrong
    # entity); Apple Inc with a URI outside any KB namespace (-> emerging)
    (
        "d2",
        T2,
        [
            (9, 14, DBR + "Steve_Wozniak"),
            (9, 22, DBR + "Steve_Jobs"),
            (26, 35, "http://example.org/Apple_Inc"),
        ],
    ),
    # emerging gold vs emerging prediction (URIs differ: still a match); Narnia percent-encoded
    ("d3", T3, [(0, 7, "http://example.org/Zorblax"), (16, 22, DBR + "Narnia_%28world%29")]),
    ("d4", T4, []),
    ("d5", T5, [(0, 4, DBR + "Rome")]),
]


@pytest.fixture(scope="module")
def corpora():
    gold = parse_nif(turtle(GOLD)).documents
    pred = parse_nif(turtle(PRED)).documents
    assert [d.text for d in gold] == [d.text for d in pred] == [T1, T2, T3, T4, T5]
    return gold, pred


def measures(scores):
    return scores.micro, scores.macro


def test_a2kb_strong_annotation_match(corpora):
    s = score_documents(*corpora, matching="Ma")
    a2kb = s["A2KB"]
    # Per document (TP, FP, FN) under Ma:
    #   D1 (2, 1, 0): Paris TP (first prediction at its span), duplicate Paris FP, France TP
    #   D2 (0, 3, 3): Jobs has no prediction; "Steve Wozniak" span right but URI wrong; Apple InKB vs EE
    #   D3 (2, 0, 0): EE-EE match; Narnia_%28world%29 decodes to Narnia_(world)
    #   D4 (0, 0, 0) -> P = R = F1 = 1;  D5 (0, 1, 0) -> 0
    assert [c for c in a2kb["all"].per_doc] == [
        Counts(2, 1, 0),
        Counts(0, 3, 3),
        Counts(2, 0, 0),
        Counts(),
        Counts(0, 1, 0),
    ]
    # micro: TP 4, FP 5, FN 3 -> P = 4/9, R = 4/7, F1 = 2*(16/63)/(4/9+4/7) = (32/63)/(64/63) = 1/2
    # macro: P = (2/3+0+1+1+0)/5 = 8/15; R = (1+0+1+1+0)/5 = 3/5; D1 F1 = 2*(2/3)*1/(5/3) = 4/5,
    #        F1 = (4/5+0+1+1+0)/5 = 14/25
    assert measures(a2kb["all"]) == ((F(4, 9), F(4, 7), F(1, 2)), (F(8, 15), F(3, 5), F(14, 25)))
    # InKB: drop EE on both sides. D1 (2,1,0); D2 (0,2,2) (p3 and Jobs gone); D3 (1,0,0); D4 (0,0,0); D5
    # (0,1,0)
    # micro: TP 3, FP 4, FN 2 -> P = 3/7, R = 3/5, F1 = (18/35)/(36/35) = 1/2
    # macro: P = (2/3+0+1+1+0)/5 = 8/15, R = (1+0+1+1+0)/5 = 3/5, F1 = (4/5+0+1+1+0)/5 = 14/25
    assert [c for c in a2kb["InKB"].per_doc] == [
        Counts(2, 1, 0),
        Counts(0, 2, 2),
        Counts(1, 0, 0),
        Counts(),
        Counts(0, 1, 0),
    ]
    assert measures(a2kb["InKB"]) == ((F(3, 7), F(3, 5), F(1, 2)), (F(8, 15), F(3, 5), F(14, 25)))
    # EE: D1 (0,0,0); D2 (0,1,1): Jobs [0,4) vs example.org/Apple [26,35); D3 (1,0,0); D4, D5 (0,0,0)
    # micro: TP 1, FP 1, FN 1 -> 1/2, 1/2, 1/2; macro: (1+0+1+1+1)/5 = 4/5 for P, R and F1
    assert measures(a2kb["EE"]) == ((F(1, 2), F(1, 2), F(1, 2)), (F(4, 5), F(4, 5), F(4, 5)))


def test_a2kb_weak_annotation_match(corpora):
    s = score_documents(*corpora, matching="Mw")
    # Mw differs only in D2: Steve Wozniak [9,22) takes "Steve" [9,14) (overlap + same URI) -> D2 (1, 2, 2)
    # micro: TP 5, FP 4, FN 2 -> P = 5/9, R = 5/7, F1 = (50/63)/(80/63) = 5/8
    # macro: P = (2/3+1/3+1+1+0)/5 = 3/5; R = (1+1/3+1+1+0)/5 = 2/3; F1 = (4/5+1/3+1+1+0)/5 = (47/15)/5 =
    # 47/75
    assert s["A2KB"]["all"].per_doc[1] == Counts(1, 2, 2)
    assert measures(s["A2KB"]["all"]) == ((F(5, 9), F(5, 7), F(5, 8)), (F(3, 5), F(2, 3), F(47, 75)))


def test_sub_experiments_erec_and_d2kb(corpora):
    s = score_documents(*corpora, matching="Ma")
    # ERec (spans only): D1 (2,1,0); D2 (2,1,1): Wozniak and Apple spans found, "Steve" FP, Jobs FN;
    # D3 (2,0,0); D4 (0,0,0); D5 (0,1,0). micro: TP 6, FP 3, FN 1 -> P = 2/3, R = 6/7, F1 = (24/21)/(32/21)
    # = 3/4
    assert s["ERec"]["all"].micro == (F(2, 3), F(6, 7), F(3, 4))
    # D2KB: predictions not at a still unclaimed gold span are dropped (GERBIL's one-to-one filter): the 2nd
    # Paris in D1 (its gold span is claimed by the first), "Steve" in D2, Rome in D5. Counting then uses weak
    # spans (GERBIL's "Me"), which changes nothing here (no two gold spans overlap).
    # D1 (2,0,0); D2 (0,2,3); D3 (2,0,0); D4 (0,0,0); D5 (0,0,0)
    # micro: TP 4, FP 2, FN 3 -> P = 4/6 = 2/3, R = 4/7, F1 = 2*(8/21)/(2/3+4/7) = (16/21)/(26/21) = 8/13
    # macro F1 = (1+0+1+1+1)/5 = 4/5
    d2kb = s["D2KB"]
    assert [c for c in d2kb["all"].per_doc] == [
        Counts(2, 0, 0),
        Counts(0, 2, 3),
        Counts(2, 0, 0),
        Counts(),
        Counts(),
    ]
    assert d2kb["all"].micro == (F(2, 3), F(4, 7), F(8, 13))
    assert d2kb["all"].macro[2] == F(4, 5)
    # GSInKB: gold InKB only; predictions classified by the gold span they sit on (p3 "Apple Inc" sits on an
    # InKB gold span, so it stays, and still fails the meaning match as it is EE).
    # D1 (2,0,0); D2 (0,2,2); D3 (1,0,0); D4, D5 (0,0,0) -> micro: TP 3, FP 2, FN 2 -> 3/5, 3/5, 3/5
    assert d2kb["GSInKB"].micro == (F(3, 5), F(3, 5), F(3, 5))


def test_greedy_gold_order_matching_is_one_to_one_and_order_dependent():
    a = frozenset({DBR + "A"})
    b = frozenset({DBR + "B"})
    ab = frozenset({DBR + "A", DBR + "B"})
    # weak matching: gold G1 [0,10) A+B, G2 [5,8) A; predictions P1 [5,8) A, P2 [0,3) B
    g1, g2 = Marking(0, 10, ab, True), Marking(5, 8, a, True)
    p1, p2 = Marking(5, 8, a, True), Marking(0, 3, b, True)
    # G1 takes the first matching prediction P1; G2 then finds nothing -> TP 1, FP 1 (P2), FN 1
    assert count_matchings([g1, g2], [p1, p2], "weak") == Counts(1, 1, 1)
    # in the other gold order both match: G2 takes P1, G1 takes P2 -> TP 2
    assert count_matchings([g2, g1], [p1, p2], "weak") == Counts(2, 0, 0)
    # duplicates: one gold, the same prediction three times -> TP 1, FP 2
    assert count_matchings([g2], [p1, p1, p1], "strong") == Counts(1, 2, 0)
    assert count_matchings([], [], "strong") == Counts(0, 0, 0)
    # D2KB: P1 sits on G2's span (kept by the filter) but names G1's entity. GERBIL's "Me" uses weak spans:
    # G1 [0,10) takes P1 (overlap, A) -> TP 1, FN 1 (G2); with strong spans nothing matches -> FP 1, FN 2
    g2b = Marking(5, 8, b, True)
    assert score_d2kb([[g1, g2b]], [[p1]])["D2KB"]["all"].per_doc == [Counts(1, 0, 1)]
    assert score_d2kb([[g1, g2b]], [[p1]], span="strong")["D2KB"]["all"].per_doc == [Counts(0, 1, 2)]
    assert prf(Counts(0, 0, 0)) == (1.0, 1.0, 1.0) and prf(Counts(0, 1, 0)) == (0.0, 0.0, 0.0)
    assert prf(Counts(0, 0, 2)) == (0.0, 0.0, 0.0)


def test_uri_normalisation():
    # Java's URLEncoder: space -> '+', keeps . - * _, UTF-8 %XX (uppercase) otherwise
    assert java_url_encode("São Paulo (city)~") == "S%C3%A3o+Paulo+%28city%29%7E"
    assert encoding_variants(DBR + "S%C3%A3o_Paulo") == {DBR + "S%C3%A3o_Paulo", DBR + "São_Paulo"}
    assert encoding_variants(DBR + "AT&T") == {DBR + "AT&T", DBR + "AT%26T"}
    assert encoding_variants(DBR + "100%_x") == {DBR + "100%_x", DBR + "100%25_x"}  # no %XX part: encode
    assert encoding_variants(DBR + "5%25_%zz") == {
        DBR + "5%25_%zz"
    }  # malformed escape: Java throws, no variant
    n = UriNormalizer({"http://oke.org/Bologna": {DBR + "Bologna"}})
    exp = n.expand(["http://en.wikipedia.org/wiki/S%C3%A3o_Paulo"])
    assert {DBR + "São_Paulo", DBR + "S%C3%A3o_Paulo", "http://en.wikipedia.org/wiki/São_Paulo"} <= exp
    assert DBR + "Berlin" in n.expand(["http://en.dbpedia.org/resource/Berlin"])  # en.dbpedia.org fix
    assert "http://de.wikipedia.org/wiki/Berlin" in n.expand(["http://de.dbpedia.org/resource/Berlin"])
    assert DBR + "Bologna" in n.expand(["http://oke.org/Bologna"])  # dataset owl:sameAs
    assert DBR + "New_York" in n.expand([DBR + "New York"])  # spaces in a title mean underscores
    assert title_to_uri("Thomas Müller (footballer)") == DBR + "Thomas_Müller_(footballer)"
    assert (
        title_to_uri('A "quoted" <x>', "wikipedia") == "http://en.wikipedia.org/wiki/A_%22quoted%22_%3Cx%3E"
    )
    assert uri_to_title(DBR + "AT%26T") == "AT&T" and uri_to_title(DBR + "C++") == "C++"
    assert uri_to_title("http://aksw.org/notInWiki/X") is None


def test_inkb_ee_classification_and_missing_class_is_omitted():
    n = UriNormalizer({"http://oke.org/Bologna": {DBR + "Bologna"}})
    gold = to_markings(
        [
            NifMention(0, 7, ("http://oke.org/Bologna",)),  # sameAs DBpedia -> InKB
            NifMention(8, 12, ("http://oke.org/Girl_1",)),  # no sameAs -> EE
            NifMention(13, 20, ("http://dbpedia.org/page/Nebraska",)),  # /page/ is no KB namespace -> EE
            NifMention(21, 25, ()),  # no URI: not a meaning-carrying marking, dropped
        ],
        n,
    )
    assert [m.in_kb for m in gold] == [True, False, False]
    only_kb = [[m for m in gold if m.in_kb]]
    s = score_a2kb(only_kb, [[]])
    assert "EE" not in s["A2KB"] and "InKB" in s["A2KB"]  # GERBIL reports no class without markings
    # kb_entities: an InKB gold URI unknown to the KB becomes an emerging entity (GERBIL's entity checker)
    checked = to_markings([NifMention(0, 7, (DBR + "Unknown_Thing",))], n, kb_entities={DBR + "Bologna"})
    assert checked[0].in_kb is False


def test_table_lists_measures():
    res = DatasetResult(
        "toy",
        "A2KB",
        "Ma",
        1,
        2,
        {"A2KB": {"all": Scores([Counts(1, 1, 1)]), "InKB": Scores([Counts(1, 0, 1)])}},
    )
    table = format_table([res])
    # micro P = R = F1 = 1/2 -> 50.00; InKB P = 1, R = 1/2, F1 = 2/3 -> 66.67
    assert "50.00" in table and "66.67" in table and "toy" in table
    assert res.measures()["InKB Micro F1 score"] == pytest.approx(2 / 3)
    details = format_details(res)
    assert "InKB Micro F1 score" in details and "66.67" in details and "EE Micro F1 score" not in details
