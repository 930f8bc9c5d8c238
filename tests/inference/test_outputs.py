"""Output objects: `RelikOutput.to_dict()` equals the reference's (fixture from the reference package)."""

import json
from pathlib import Path

from relik_jax.inference.outputs import Candidates, RelikOutput, Span, Triplet
from relik_jax.text.words import tokenize

REFERENCE = (Path(__file__).resolve().parents[1] / "fixtures") / "reference_windows.json"


def test_to_dict_matches_reference():
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))["relik_output"]
    text = ref["text"]
    paris, france = Span(0, 5, "Paris", "Paris"), Span(24, 30, "France", "France")
    out = RelikOutput(
        text=text,
        tokens=[w.text for w in tokenize(text)],
        id=0,
        spans=[paris, france],
        triplets=[Triplet(paris, "capital of", france, 0.91)],
        candidates=Candidates(
            span=[
                [
                    {"text": "Paris", "id": 1, "metadata": {"definition": "capital of France"}},
                    {"text": "France", "id": 2},
                ],
                [{"text": "France", "id": 2}],
            ],
            triplet=[[{"text": "capital of", "id": 7}]],
        ),
    )
    assert json.loads(json.dumps(out.to_dict())) == ref["dict"]


def test_document_level_views():
    text = "Paris and Paris Hilton met in Paris ."
    p1, hilton, p2 = (
        Span(0, 5, "Paris", "Paris"),
        Span(10, 23, "Paris Hilton", "Paris Hilton"),
        Span(30, 35, "Paris", "Paris"),
    )
    nme = Span(10, 15, "--NME--", "Paris")
    out = RelikOutput(
        text=text,
        tokens=[],
        spans=[p2, hilton, nme, p1],
        triplets=[
            Triplet(hilton, "visited", p2, 0.4),
            Triplet(hilton, "visited", p2, 0.7),
            Triplet(p1, "x", p2, 0.5),
        ],
    )
    assert out.entities() == {"Paris": [p1, p2], "Paris Hilton": [hilton]}
    assert "--NME--" in out.entities(include_nme=True)
    assert out.unique_triplets() == [Triplet(p1, "x", p2, 0.5), Triplet(hilton, "visited", p2, 0.7)]
    d = out.to_dict()
    assert d["candidates"] == {"span": [], "triplet": []} and "windows" not in d
