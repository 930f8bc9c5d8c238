"""Inputs at the pipeline's boundary (one test per case of the "no document lost" issue) and per-document isolation
in `Relik.stream`: a bad or failing document gets its own error, every other one is annotated as if alone."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tiny_pipeline import TITLES, tiny_relik  # noqa: E402

from relik_jax.inference.validation import (  # noqa: E402
    DocumentError,
    DocumentTypeError,
    check_text,
    isolate,
    validate_document,
)

DOCS = ["Barack Obama was born in Honolulu , Hawaii .", "Japan beat Syria .", "Steve Jobs founded Apple Inc. ."]


@pytest.fixture(scope="module")
def relik():
    return tiny_relik()


def spans(out):
    return [(s.start, s.end, s.label) for s in out.spans]


# ------------------------------------------------------------------------------------------- Python API inputs


def test_a_record_is_one_document_with_its_id(relik):
    out = relik({"text": "Obama", "id": "doc-1"})  # was: the string "text" annotated silently
    assert out.text == "Obama" and out.id == "doc-1"
    outs = relik([{"text": DOCS[0]}, DOCS[1]])
    assert [o.id for o in outs] == [0, 1] and outs[0].text == DOCS[0]


def test_bytes_is_a_clear_type_error(relik):
    with pytest.raises(TypeError, match=r"document 0: .*got bytes.*decode it first"):
        relik(b"Obama")
    with pytest.raises(DocumentTypeError, match=r"document 1: .*got bytes"):
        relik(["Obama", b"Obama"])


@pytest.mark.parametrize("bad", [42, None, 3.5, object()])
def test_non_documents_are_a_clear_type_error(relik, bad):
    with pytest.raises(TypeError, match=r"document 0: expected a str, a list of words or a \{\"text\""):
        relik(bad)


def test_lone_surrogate_names_the_document_and_offset(relik):
    with pytest.raises(DocumentError, match=r"document 2: text holds a lone surrogate U\+D800 at character offset 6"):
        relik(["fine", "also fine", "Obama \ud800 visited"])
    with pytest.raises(ValueError, match=r"U\+DFFF"):  # a DocumentError is a ValueError
        relik({"text": "x\udfff", "id": "a"})


def test_record_errors_name_the_key(relik):
    with pytest.raises(DocumentError, match=r"document 0 \(id 'a'\): unknown key\(s\) 'txt'"):
        relik({"txt": "Obama", "id": "a"})
    with pytest.raises(DocumentTypeError, match=r'needs a "text" field'):
        relik({"id": 3})
    with pytest.raises(DocumentTypeError, match=r'"id" must be a str or an int'):
        relik({"text": "a", "id": [1]})


def test_stream_refuses_a_bare_string_or_a_non_iterable(relik):
    with pytest.raises(DocumentTypeError, match="iterable of documents"):
        relik.stream("Obama")
    with pytest.raises(DocumentTypeError, match="iterable of documents"):
        relik.stream(42)
    with pytest.raises(ValueError, match="on_error must be one of"):
        relik.stream(DOCS, on_error="ignore")


def test_validate_document_and_check_text():
    assert validate_document(["a", "b"], 4) == (["a", "b"], 4)
    assert validate_document({"text": "a", "id": "x"}, 0) == ("a", "x")
    assert check_text("\x00 control \x7f and \U0001f600") == "\x00 control \x7f and \U0001f600"  # valid Unicode
    with pytest.raises(DocumentError, match="word 1 holds a lone surrogate"):
        validate_document(["a", "\ud801"], 0)


# ------------------------------------------------------------------------------------------------ stream errors


def test_stream_yields_the_documents_before_a_bad_one_then_raises(relik):
    expected = relik(DOCS[:2])
    got = []
    with pytest.raises(DocumentError) as info:
        for out in relik.stream(iter([DOCS[0], DOCS[1], b"bad", DOCS[2]])):
            got.append(out)
    assert [o.to_dict() for o in got] == [o.to_dict() for o in expected]
    assert info.value.index == 2 and "got bytes" in info.value.reason


def test_stream_record_and_skip_go_on(relik):
    docs = [DOCS[0], "x \ud800", {"text": DOCS[1], "id": "b"}, 42, DOCS[2]]
    recorded = list(relik.stream(docs, on_error="record"))
    assert [o.id for o in recorded] == [0, 1, "b", 3, 4]
    assert [o.error is None for o in recorded] == [True, False, True, False, True]
    assert "U+D800 at character offset 2" in recorded[1].error and recorded[1].to_dict()["error"]
    skipped = list(relik.stream(docs, on_error="skip"))
    assert [o.id for o in skipped] == [0, "b", 4]
    alone = [relik(d) for d in (DOCS[0], DOCS[1], DOCS[2])]
    assert [spans(o) for o in skipped] == [spans(o) for o in alone]


def test_per_task_per_document_candidates_reach_their_documents(relik):
    # {"span": [one list per document]}: each document is read with its own list, exactly as when annotated alone
    # (a regression: the per-task lists were copied before the lazily fed documents arrived, so all were empty)
    docs = ["Japan beat Syria .", "Syria beat Japan in Honolulu ."]
    cands = [["Japan", "Syria"], ["Honolulu", "Hawaii"]]
    together = relik.stream(docs, candidates={"span": cands})
    alone = [relik(d, candidates={"span": [c]}) for d, c in zip(docs, cands, strict=True)]
    flat = [relik(d, candidates=c) for d, c in zip(docs, cands, strict=True)]
    for out, one, two, allowed in zip(together, alone, flat, cands, strict=True):
        assert spans(out) == spans(one) == spans(two)
        assert all(c == allowed for c in out.candidates.span) and {s.label for s in out.spans} <= {*allowed, "--NME--"}


def test_a_failing_iterator_still_yields_what_was_read(relik):
    def source():
        yield DOCS[0]
        yield DOCS[1]
        raise OSError("disk went away")

    got = []
    with pytest.raises(OSError, match="disk went away"):
        for out in relik.stream(source()):
            got.append(out.text)
    assert got == DOCS[:2]


# ----------------------------------------------------------------------------------- model faults are isolated


@pytest.fixture
def faulty(relik, monkeypatch):
    """The reader raises on any batch holding a window with the word BOOM (a model fault on one document)."""
    rows = relik.reader.rows
    calls = []

    def boom(windows):
        calls.append(len(windows))
        if any("BOOM" in w.words for w in windows):
            raise RuntimeError("kernel exploded")
        return rows(windows)

    monkeypatch.setattr(relik.reader, "rows", boom)
    return calls


def test_a_model_fault_fails_only_its_document(relik, faulty):
    docs = [DOCS[0], "this one goes BOOM now", DOCS[1], DOCS[2]]
    alone = {d: spans(relik(d, candidates=TITLES)) for d in (DOCS[0], DOCS[1], DOCS[2])}
    outs = list(relik.stream(docs, on_error="record", candidates=TITLES))
    assert [o.id for o in outs] == [0, 1, 2, 3]
    assert outs[1].error.startswith("document 1: annotation failed: RuntimeError: kernel exploded")
    assert [spans(outs[i]) for i in (0, 2, 3)] == [alone[d] for d in (DOCS[0], DOCS[1], DOCS[2])]
    got = []
    with pytest.raises(DocumentError, match="document 1: annotation failed") as info:
        for out in relik.stream(docs, candidates=TITLES):
            got.append(out.id)
    assert got == [0] and isinstance(info.value.__cause__, RuntimeError)


def test_per_document_candidates_survive_the_rerun(relik, faulty):
    docs = ["Japan .", "BOOM .", "Syria .", "Japan and Syria ."]
    cands = [["Japan"], ["Hawaii"], ["Syria"], ["Honolulu"]]
    outs = list(relik.stream(docs, candidates=cands, on_error="skip"))
    assert [o.id for o in outs] == [0, 2, 3]
    for out, allowed in zip(outs, (["Japan"], ["Syria"], ["Honolulu"]), strict=True):
        assert {s.label for s in out.spans} <= {*allowed, "--NME--"}
    with pytest.raises(DocumentError, match="candidates given for 2 documents, not for this one"):
        list(relik.stream(["a", "b", "c"], candidates=[["x"], ["y"]]))


def test_a_global_failure_is_reported_on_the_first_document():
    relik = tiny_relik()
    relik.retrievers["span"] = None
    with pytest.raises(ValueError, match="document 0: annotation failed: ValueError: no span retriever"):
        relik(DOCS)


def test_isolate_bisects_to_the_failing_items():
    calls = []

    def run(items):
        calls.append(list(items))
        if any(i % 7 == 3 for i in items):
            raise ValueError(f"bad in {items}")
        return [i * 10 for i in items]

    results = list(isolate(run, list(range(16))))
    assert [r for r in results if not isinstance(r, Exception)] == [i * 10 for i in range(16) if i % 7 != 3]
    assert [i for i, r in enumerate(results) if isinstance(r, Exception)] == [3, 10]
    assert len(calls) <= 1 + 2 * 2 * 4  # O(failures x log n), not n
    calls.clear()
    first = next(r for r in isolate(run, list(range(16))) if isinstance(r, Exception))
    assert "bad in [3]" in str(first) and len(calls) <= 1 + 2 * 4  # stopping at the first failure: O(log n)
