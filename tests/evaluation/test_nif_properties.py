"""Property tests (hypothesis) of the NIF parser and the NIF service on arbitrary Unicode (lone surrogates and
control characters included): the parser raises nothing but NifError, documents round-trip, and the service
answers 200 with the text unchanged or 400 with a reason, never 500. Bounded example counts (seconds)."""

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relik_jax.evaluation.gerbil.client import NifClient
from relik_jax.evaluation.gerbil.nif import NifDocument, NifError, NifMention, parse_nif, utf16_len, write_nif
from relik_jax.evaluation.gerbil.service import serve_nif

SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
CONTROLS = st.sampled_from("\x00\x01\x7f\r\n\t\"\\\u2028 \U0001f600")  # controls, quote, backslash, astral
VALID_CHARS = st.one_of(st.characters(exclude_categories=()), CONTROLS)
VALID_TEXTS = st.lists(VALID_CHARS, max_size=30).map("".join)
TEXTS = st.lists(st.one_of(VALID_CHARS, SURROGATES), max_size=30).map("".join)
PREFIX = "@prefix nif: <http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#> .\n"
TURTLE_BITS = st.sampled_from([PREFIX, "<http://x.org/d#char=0,3>", " a nif:Context ;", ' nif:isString "', '" .',
                               " nif:beginIndex ", ' "3"', " nif:referenceContext ", " ; ", " . ", "\\u", "\\U",
                               "\"\"\"", "@prefix", "<", ">", "^^", "nif:endIndex", "-1", "99999999999999999999"])
FAST = settings(max_examples=150, deadline=None, database=None)


def escaped(text: str) -> str:
    """A Turtle string literal body with every non-printable-ASCII character as a \\u / \\U escape (a lone
    surrogate included, as a Java client may send it)."""
    def esc(ch: str) -> str:
        if 0x20 <= ord(ch) < 0x7F and ch not in '"\\':
            return ch
        return f"\\u{ord(ch):04X}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08X}"

    return "".join(map(esc, text))


@FAST
@given(data=st.one_of(st.text(), st.lists(st.one_of(TURTLE_BITS, VALID_TEXTS), max_size=12).map("".join),
                      st.binary(max_size=60)))
def test_parser_raises_nothing_but_nif_error(data):
    try:
        corpus = parse_nif(data, strict=True)
    except NifError:
        return
    for doc in corpus.documents:
        assert isinstance(doc.text, str)
        assert all(0 <= m.begin <= m.end <= utf16_len(doc.text) for m in doc.mentions)


@FAST
@given(text=VALID_TEXTS, data=st.data())
def test_documents_round_trip_through_nif(text, data):
    n = utf16_len(text)
    begin = data.draw(st.integers(0, n))
    end = data.draw(st.integers(begin, n))
    uris = ("http://dbpedia.org/resource/X",)
    doc = NifDocument(f"http://t.org/doc#char=0,{n}", text, [NifMention(begin, end, uris)])
    (back,) = parse_nif(write_nif(doc)).documents
    assert back.text == text and [(m.begin, m.end, m.uris) for m in back.mentions] == [(begin, end, uris)]


def test_service_answers_or_gives_a_reason_never_500():
    word = re.compile(r"\w+")

    def annotator(texts):
        return [[(m.start(), m.end(), m.group()) for m in word.finditer(t)][:3] for t in texts]

    with serve_nif(annotator, port=0, block=False) as server:
        client = NifClient(server.url)

        @settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(text=TEXTS)
        def check(text):
            ctx = f"http://t.org/d#char=0,{utf16_len(text)}"
            body = f'{PREFIX}<{ctx}> a nif:Context ; nif:isString "{escaped(text)}" .\n'.encode("ascii")
            status, answer = client.post(body)
            surrogate = next((i for i, ch in enumerate(text) if 0xD800 <= ord(ch) <= 0xDFFF), None)
            if surrogate is not None:
                assert status == 400 and f"lone surrogate U+{ord(text[surrogate]):04X} at character offset " \
                                          f"{surrogate}".encode() in answer
                return
            assert status == 200, answer
            (doc,) = parse_nif(answer.decode("utf-8")).documents
            assert doc.text == text and len(doc.mentions) == len(annotator([text])[0])

        check()
        assert not any(k.startswith("errors_5") for k in server.counts), server.counts
