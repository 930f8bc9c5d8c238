"""Property tests (hypothesis) of `Relik.__call__` / `Relik.stream` on arbitrary Unicode, lone surrogates and
control characters included, with the tiny random pipeline. Example counts are bounded so this takes seconds."""

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from tiny_pipeline import TITLES, tiny_relik  # noqa: E402

from relik_jax.inference.validation import DocumentError  # noqa: E402

SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
CHARS = st.one_of(
    st.characters(exclude_categories=()),  # any code point but surrogates (hypothesis never draws those)
    SURROGATES,
    st.sampled_from("\x00\x01\x7f\r\n\t\u2028\u200b\ufeff \U0001f600"),  # controls, separators, astral
    st.sampled_from(["Barack", "Obama", "Japan", "Syria", ".", ","]),  # words the model knows
)
TEXTS = st.lists(CHARS, max_size=40).map("".join)
PROPERTIES = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


@pytest.fixture(scope="module")
def relik():
    return tiny_relik()


def first_surrogate(text: str) -> int | None:
    return next((i for i, ch in enumerate(text) if 0xD800 <= ord(ch) <= 0xDFFF), None)


def check_output(text, out):
    assert out.error is None
    for span in out.spans:  # well-formed, inside the text, its text sliced from the input
        assert 0 <= span.start < span.end <= len(text) and span.text == text[span.start:span.end]
    spans = set(out.spans)
    assert all(t.subject in spans and t.object in spans for t in out.triplets)


@PROPERTIES
@given(text=TEXTS)
def test_call_answers_or_names_the_surrogate(relik, text):
    bad = first_surrogate(text)
    if bad is None:
        check_output(text, relik(text))
        return
    with pytest.raises(DocumentError) as info:
        relik(text)
    assert info.value.index == 0 and f"at character offset {bad} " in info.value.reason


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(texts=st.lists(TEXTS, max_size=4))
def test_stream_records_exactly_the_bad_documents_and_the_rest_as_if_alone(relik, texts):
    outs = list(relik.stream(texts, on_error="record", candidates=TITLES))
    assert [o.id for o in outs] == list(range(len(texts)))
    for i, (text, out) in enumerate(zip(texts, outs, strict=True)):
        bad = first_surrogate(text)
        if bad is None:
            check_output(text, out)
            assert out.to_dict() == relik(text, candidates=TITLES).to_dict()  # batched == alone
        else:
            assert out.error.startswith(f"document {i}: ") and f"offset {bad} " in out.error
    valid = [t for t in texts if first_surrogate(t) is None]
    assert [o.text for o in relik.stream(texts, on_error="skip", candidates=TITLES)] == \
           [o.text for o in outs if o.error is None] and len(valid) == sum(o.error is None for o in outs)
