"""Public outputs hold only well-formed spans (start < end, inside the text); raw mode keeps the reference's."""

from relik_jax.inference.merge import DocumentMerge, merge_windows
from relik_jax.text.windows import WindowSplitter

TEXT = "Paris is the capital of France ."


def _window():
    (window,) = WindowSplitter(32, 16).split_document(TEXT, doc_id=0)
    # (0, 5) Paris ok; (24, 24) empty; (30, 24) inverted (the reference's EL end may precede its start);
    # (24, 99) past the end of the text; (24, 30) France ok
    window.predicted_spans = [(0, 5, "Paris"), (24, 24, "X"), (30, 24, "Y"), (24, 99, "Z"), (24, 30, "France")]
    window.predicted_span_probs = {(0, 5): [("Paris", 0.9)], (30, 24): [("Y", 0.5)]}
    window.predicted_triplets = [(0, "capital of", 4, 0.9), (0, "r", 2, 0.8), (1, "r", 4, 0.7)]
    return window


def test_public_output_drops_empty_inverted_and_outside_spans_and_their_triplets():
    merge = DocumentMerge(0, TEXT)
    merge.add(_window())
    out = merge.output()
    assert [(s.start, s.end, s.label, s.text) for s in out.spans] == [(0, 5, "Paris", "Paris"),
                                                                     (24, 30, "France", "France")]
    assert [(t.subject.label, t.label, t.object.label) for t in out.triplets] == [("Paris", "capital of", "France")]
    assert out.span_probabilities == {(0, 5): [("Paris", 0.9)]}


def test_raw_output_keeps_the_reference_spans():
    merge = DocumentMerge(0, TEXT, raw=True)
    merge.add(_window())
    out = merge.output()
    assert len(out.spans) == 5 and len(out.triplets) == 3
    (raw,) = merge_windows([_window()], texts={0: TEXT}, raw=True)
    (public,) = merge_windows([_window()], texts={0: TEXT})
    assert raw.spans == out.spans and len(public.spans) == 2
