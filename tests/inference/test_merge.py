"""The one merge of window predictions into documents (reference `WindowManager.merge_windows`)."""

import json
from pathlib import Path

from relik_jax.inference.merge import DocumentMerge, merge_windows
from relik_jax.text.windows import WindowSplitter
from relik_jax.text.words import tokenize

REFERENCE = (Path(__file__).resolve().parents[1] / "fixtures") / "reference_windows.json"


def _predict(windows, spans_by_window, triplets_by_window=None):
    for w in windows:
        w.predicted_spans = spans_by_window.get(w.window_id, [])
        w.predicted_triplets = (triplets_by_window or {}).get(w.window_id, [])
    return windows


def test_merge_union_conflicts_and_triplets():
    text = "Paris is the capital of France and Paris hosts the Louvre museum today ."
    windows = list(WindowSplitter(10, 5).split_document(text, doc_id="d"))
    assert len(windows) == 2
    paris, france, paris2 = (0, 5, "Paris"), (24, 30, "France"), (35, 40, "Paris")
    louvre = (51, 57, "Louvre")
    _predict(
        windows,
        {
            0: [paris, france, paris2],
            # the overlap predicts France again, plus a conflicting label for the same span
            1: [france, (24, 30, "France national football team"), paris2, louvre],
        },
        {0: [(0, "capital", 1, 0.914)], 1: [(2, "located in", 3, 0.5), (0, "capital", 2, 0.3)]},
    )
    (out,) = merge_windows(reversed(windows), texts={"d": text})  # order of arrival does not matter
    expected = sorted({paris, france, paris2, louvre, (24, 30, "France national football team")})
    assert [s[:3] for s in out.spans] == expected
    assert [s.text for s in out.spans] == ["Paris", "France", "France", "Paris", "Louvre"]
    assert {(t.subject.text, t.label, t.object.text, t.confidence) for t in out.triplets} == {
        ("Paris", "capital", "France", 0.91),
        ("Paris", "located in", "Louvre", 0.5),
        ("France", "capital", "Paris", 0.3),
    }
    assert out.tokens == [w.text for w in tokenize(text)]
    ents = out.entities()
    assert [s.start for s in ents["Paris"]] == [0, 35]
    assert set(ents) == {"Paris", "France", "Louvre", "France national football team"}


def test_merge_keeps_duplicate_triplets_with_different_confidence_but_view_dedups():
    text = "Rome is in Italy and Italy is in Europe ."
    windows = list(WindowSplitter(6, 3).split_document(text))
    rome, italy = (0, 4, "Rome"), (11, 16, "Italy")
    _predict(
        windows,
        {0: [rome, italy], 1: [rome, italy]},
        {0: [(0, "country", 1, 0.8)], 1: [(0, "country", 1, 0.6)]},
    )
    (out,) = merge_windows(windows, texts={0: text})
    assert len(out.triplets) == 2  # reference: set union of (.., confidence) tuples keeps both
    (best,) = out.unique_triplets()
    assert best.confidence == 0.8 and best.subject.text == "Rome" and best.object.text == "Italy"


def test_merged_text_matches_document():
    text = "One two three four five six seven eight nine ten eleven twelve"
    windows = list(WindowSplitter(5, 2).split_document(text))
    (merged,) = merge_windows(windows)
    assert merged.text == text


def test_windows_and_merge_match_reference_package():
    """Fixture written by the reference relik 1.0.7 WindowManager (tests/fixtures/make_reference_windows.py)."""
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))
    docs = ref["documents"]
    for case in ref["cases"]:
        splitter = WindowSplitter(case["window_size"], case["window_stride"])
        # the reference gives every document of a call the first document's first word as doc_topic
        ours = list(splitter.split_documents(docs, batch_doc_topic=True))
        assert len(ours) == len(case["windows"]), case["window_size"]
        for w, row in zip(ours, case["windows"], strict=True):
            mine = w.to_dict()
            assert list(mine) == list(row)  # same keys in the same order (byte-identical JSONL)
            assert mine == row, (
                case["window_size"],
                case["window_stride"],
                row["doc_id"],
                row["window_id"],
            )
        for w, pred in zip(ours, case["predictions"], strict=True):
            w.predicted_spans = [tuple(s) for s in pred["predicted_spans"]]
            w.predicted_triplets = [tuple(t) for t in pred["predicted_triplets"]]
            w.span_candidates = pred["span_candidates"]
        merged = merge_windows(ours, raw=True)  # the fixture's synthetic predictions fall outside the text too
        assert len(merged) == len(case["merged"])
        for m, exp in zip(merged, case["merged"], strict=True):
            assert m.id == exp["doc_id"]
            assert m.text == exp["text"]
            assert [list(s[:3]) for s in m.spans] == exp["predicted_spans"]
            assert sorted([list(s[:3]), r, list(o[:3]), c] for s, r, o, c in m.triplets) == sorted(
                exp["predicted_triplets"]
            )
            assert m.candidates.span == exp["span_candidates"]


def test_span_probabilities_first_window_wins():
    windows = list(WindowSplitter(4, 2).split_document("a b c d e f"))
    for w, p in zip(windows, [0.9, 0.1], strict=True):
        w.predicted_spans = [(4, 5, "C")]
        w.predicted_span_probs = {(4, 5): [("C", p)]}
    (merged,) = merge_windows(windows)
    assert [s[:3] for s in merged.spans] == [(4, 5, "C")] and merged.span_probabilities == {(4, 5): [("C", 0.9)]}


def test_streaming_merge_with_the_document_text_equals_the_batch_merge():
    text = "Paris is the capital of France and Paris hosts the Louvre museum today ."
    windows = _predict(list(WindowSplitter(10, 5).split_document(text, doc_id=3)),
                       {0: [(0, 5, "Paris"), (24, 30, "France")], 1: [(24, 30, "France"), (51, 57, "Louvre")]},
                       {1: [(0, "located in", 1, 0.5)]})
    merge = DocumentMerge(3, text, [w.text for w in tokenize(text)])
    for w in windows:
        merge.add(w)
    assert merge.output() == merge_windows(windows, texts={3: text})[0]
