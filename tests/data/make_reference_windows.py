"""Regenerate tests/data/reference_windows.json with the reference relik 1.0.7 WindowManager.

The reference package is not a project dependency. It runs from a private venv holding spaCy, relik (no deps)
and the few pure-Python packages its data modules import (torch is not needed for windowing and merging):
    python3 -m venv /tmp/spacy-venv
    /tmp/spacy-venv/bin/pip install "spacy>=3.7,<3.8" click "transformers==4.41.2" huggingface_hub \
        art==6.2 colorama==0.4.6 termcolor==2.4.0 pprintpp==0.4.0
    /tmp/spacy-venv/bin/pip install --no-deps relik==1.0.7
    /tmp/spacy-venv/bin/python tests/data/make_reference_windows.py
`relik/__init__.py` imports the whole annotator (torch, lightning, hydra); it is bypassed by registering the
`relik` package modules without running their `__init__` files, and the reader class that
`relik.inference.data.objects` imports is replaced by `RelikReaderSample` (the only name used from it).
spaCy's `en_core_web_sm` is replaced by `spacy.blank("en")` (same rule-based tokenizer), as in
reference-env.md.

Cases: documents written for this test (not from any dataset) x window size/stride; each case stores the
reference windows (`to_dict()` of every RelikReaderSample) and, for random predictions given to those windows
(word-aligned spans with conflicting labels, triplets, candidates), the reference's merged
result.
"""

import json
import os
import random
import sys
import types
from pathlib import Path

SITE = next(p for p in sys.path if p.endswith("site-packages"))
RELIK = os.path.join(SITE, "relik")


def _stub(name: str) -> None:
    module = types.ModuleType(name)
    module.__path__ = [os.path.join(RELIK, *name.split(".")[1:])]
    sys.modules[name] = module


for _name in [
    "relik",
    "relik.inference",
    "relik.inference.data",
    "relik.reader",
    "relik.reader.data",
    "relik.common",
    "relik.retriever",
    "relik.retriever.indexers",
    "relik.reader.pytorch_modules",
    "relik.reader.pytorch_modules.hf",
]:
    _stub(_name)

import spacy  # noqa: E402
from relik.reader.data.relik_reader_sample import RelikReaderSample  # noqa: E402

_modeling = types.ModuleType("relik.reader.pytorch_modules.hf.modeling_relik")
_modeling.RelikReaderSample = RelikReaderSample
sys.modules[_modeling.__name__] = _modeling

from relik.inference.data.tokenizers import spacy_tokenizer as st  # noqa: E402

for _key in [("en_core_web_sm", False, False, False, False), ("en_core_web_sm", False, False, False, True)]:
    st.LOADED_SPACY_MODELS[_key] = spacy.blank("en")

from relik.inference.data.splitters.window_based_splitter import WindowSentenceSplitter  # noqa: E402
from relik.inference.data.tokenizers.spacy_tokenizer import SpacyTokenizer  # noqa: E402
from relik.inference.data.window.manager import WindowManager  # noqa: E402

DOCUMENTS = [
    "Obama was born in Hawaii. He was president of the U.S. until 2017, then wrote a book.",
    "SOCCER - JAPAN GET LUCKY WIN , CHINA IN SURPRISE DEFEAT . Nadim Ladki AL-AIN , United Arab Emirates "
    "1996-12-06 Japan began the defence of their Asian Cup title with a lucky 2-1 win against Syria in a "
    "Group C championship match on Friday .",
    "Paris is the capital of France and Paris hosts the Louvre museum; it's visited by millions (e.g. 9.6m "
    "in 2019) who don't mind the queues.",
    "Short one.",
    "Word",
    "Multiple   spaces and\ttabs\nand a new line here, then more text follows to fill the window nicely.",
    "  Leading spaces and trailing ones  ",
    "Zürich, São Paulo and Kraków are cities; Москва is too. 東京 is another!",
    " ".join(f"w{i}" for i in range(97)),
]
CONFIGS = [(8, 4), (5, 2), (7, 3), (16, 16), (32, 16), (6, 0)]
LABELS = ["A", "B", "C", "--NME--"]


def reference_output() -> dict:
    """`RelikOutput.to_dict()` of the reference for a hand-built two-window output (serialisation check)."""
    from relik.inference.data.objects import Candidates, RelikOutput, Span, Triplets
    from relik.retriever.indexers.document import Document

    text = "Paris is the capital of France ."
    tokens = list(spacy.blank("en")(text))
    paris, france = Span(0, 5, "Paris", "Paris"), Span(24, 30, "France", "France")
    docs = [
        [Document("Paris", id=1, metadata={"definition": "capital of France"}), Document("France", id=2)],
        [Document("France", id=2)],
    ]
    out = RelikOutput(
        text=text,
        tokens=tokens,
        id=0,
        spans=[paris, france],
        triplets=[Triplets(paris, "capital of", france, 0.91)],
        candidates=Candidates(span=[docs], triplet=[[[Document("capital of", id=7)]]]),
    )
    return {"text": text, "dict": json.loads(json.dumps(out.to_dict()))}


def _char_doc(doc_id: int, text: str, mentions: list, triplets: list = ()) -> dict:
    """Raw char-level document; mentions are (surface, occurrence, label[, spaces to include around])."""

    def span(surface: str, occurrence: int, label: str, pad: int = 0) -> list:
        start = -1
        for _ in range(occurrence + 1):
            start = text.index(surface, start + 1)
        return [start - pad, start + len(surface) + pad, label]

    spans = [span(*m) for m in mentions]
    return {
        "doc_id": doc_id,
        "doc_text": text,
        "doc_span_annotations": spans,
        "doc_triplet_annotations": [
            {"subject": spans[s], "relation": r, "object": spans[o]} for s, r, o in triplets
        ],
    }


# doc id 0 comes first: the reference replaces a falsy doc id by the document's position in the batch and
# then fails to find the document (KeyError) if that position is not 0
CHAR_DOCS = [
    _char_doc(
        0, "Rome is the capital of Italy .", [("Rome", 0, "Rome"), ("Italy", 0, "Italy")], [(0, "country", 1)]
    ),
    _char_doc(
        3,
        "Barack Obama visited Paris in 2015 and met François Hollande at the Élysée Palace . Obama's aides "
        "said the U.S.-French talks went well , per Reuters .",
        [
            ("Barack Obama", 0, "Barack Obama"),
            ("Paris", 0, "Paris", 1),
            ("François Hollande", 0, "François Hollande"),
            ("Élysée Palace", 0, "Élysée Palace"),
            ("Obama", 1, "Barack Obama"),
            ("Holl", 0, "--NME--"),
            ("U.S.", 0, "United States"),
            ("French", 0, "France"),
            ("Reuters", 0, "Reuters"),
        ],
        [(0, "residence", 1), (2, "work location", 3), (5, "misaligned", 8)],
    ),
    _char_doc(7, "No entities here at all , only words .", []),
    _char_doc(
        8,
        "Ferrari , based in Maranello , races in Formula One ; Maranello is near Modena in Emilia-Romagna .",
        [
            ("Ferrari", 0, "Scuderia Ferrari"),
            ("Maranello", 0, "Maranello"),
            ("Formula One", 0, "Formula One"),
            ("Maranello", 1, "Maranello"),
            ("Modena", 0, "Modena"),
            ("Emilia", 0, "Emilia-Romagna"),
        ],
        [(0, "headquarters location", 1), (3, "located in", 5), (0, "league", 2)],
    ),
]
WORD_DOCS = [
    {
        "doc_id": 1,
        "doc_words": "John Smith works for Acme Corp in New York City".split(),
        "doc_span_annotations": [[0, 2, "Peop"], [4, 6, "Org"], [7, 10, "Loc"]],
        "doc_triplet_annotations": [
            {"subject": [0, 2, "Peop"], "relation": "Work_For", "object": [4, 6, "Org"]},
            {"subject": [4, 6, "Org"], "relation": "OrgBased_In", "object": [7, 10, "Loc"]},
        ],
    },
    {
        "doc_id": 2,
        "doc_words": "PERUGIA , Italy ( AP )".split(),
        "doc_span_annotations": [[0, 1, "Loc"], [2, 3, "Loc"], [4, 5, "Org"]],
        "doc_triplet_annotations": [
            {"subject": [0, 1, "Loc"], "relation": "Located_In", "object": [2, 3, "Loc"]},
            {"subject": [4, 5, "Org"], "relation": "OrgBased_In", "object": [0, 1, "Loc"]},
        ],
    },
]
CREATE_WINDOWS_CASES = [
    {"docs": "char", "window_size": 8, "window_stride": 4},
    {"docs": "char", "window_size": 32, "window_stride": 16},
    {
        "docs": "char",
        "window_size": "none",
        "window_stride": 16,
        "title_mapping": {"Paris": "Paris (France)"},
    },
    {
        "docs": "word",
        "window_size": "none",
        "window_stride": 16,
        "is_split_into_words": True,
        "labels_are_tokens": True,
    },
]


def reference_create_windows() -> list:
    """Outputs of the reference `relik data create-windows` command for the raw documents above."""
    import tempfile

    from relik.cli.data import create_windows

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in CREATE_WINDOWS_CASES:
            docs = CHAR_DOCS if case["docs"] == "char" else WORD_DOCS
            src, dst, mapping = Path(tmp, "in.jsonl"), Path(tmp, "out.jsonl"), Path(tmp, "map.json")
            src.write_text("".join(json.dumps(d) + "\n" for d in docs))
            kwargs = {k: v for k, v in case.items() if k not in ("docs", "title_mapping")}
            if "title_mapping" in case:
                mapping.write_text(json.dumps(case["title_mapping"]))
                kwargs["title_mapping"] = str(mapping)
            create_windows(str(src), str(dst), overwrite=True, **kwargs)
            rows = [json.loads(line) for line in dst.read_text().splitlines()]
            out.append({**case, "input": docs, "output": rows})
    return out


PASSAGES = [
    {"text": "Barack Obama", "id": 0, "metadata": {"definition": "44th president of the United States"}},
    {"text": "Paris (France)", "id": 1, "metadata": {"definition": "capital of France"}},
    {"text": "France", "id": 2},
    {"text": "Reuters", "id": 3, "metadata": {"definition": "news agency"}},
    {"text": "Maranello", "id": 4, "metadata": {"definition": "town in Italy"}},
    {"text": "Maranello", "id": 5, "metadata": {"definition": "duplicate text: the later passage wins"}},
    {"text": "residence", "id": 10, "metadata": {"definition": "place where the person lives"}},
    {"text": "located in", "id": 11},
    {"text": "league", "id": 12, "metadata": {"definition": "league the team plays in"}},
]


def reference_dpr(create_windows_cases: list) -> list:
    """Outputs of the reference `relik data convert-to-dpr` on the char-level windows made above."""
    import tempfile

    from relik.cli.data import convert_to_dpr

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "windows.jsonl"), Path(tmp, "dpr.jsonl")
        docs, mapping = Path(tmp, "documents.jsonl"), Path(tmp, "map.json")
        docs.write_text("".join(json.dumps(p) + "\n" for p in PASSAGES))
        mapping.write_text(json.dumps({"Paris": "Paris (France)"}))
        for case in create_windows_cases[:2]:
            src.write_text("".join(json.dumps(r) + "\n" for r in case["output"]))
            for label_type in ("span", "triplet"):
                convert_to_dpr(str(src), str(dst), str(docs), title_map=str(mapping), label_type=label_type)
                rows = [json.loads(line) for line in dst.read_text().splitlines()]
                out.append({"window_size": case["window_size"], "label_type": label_type, "output": rows})
    return out


def main() -> None:
    rng = random.Random(0)
    tokenizer = SpacyTokenizer(language="en")
    cases = []
    for size, stride in CONFIGS:
        manager = WindowManager(tokenizer, WindowSentenceSplitter(window_size=size, window_stride=stride))
        windows, _, _ = manager.create_windows(DOCUMENTS, size, stride)
        rows = [dict(w.to_dict()) for w in windows]
        predictions = []
        for w in windows:
            starts = [int(v) for v in w.token2char_start.values()]
            ends = [int(v) for v in w.token2char_end.values()]
            spans = []
            for _ in range(rng.randint(0, 4)):
                a = rng.randrange(len(starts))
                b = min(len(starts) - 1, a + rng.randint(0, 2))
                spans.append((starts[a], ends[b], rng.choice(LABELS)))
            spans = sorted(set(spans))
            triplets = []
            if len(spans) >= 2:
                for _ in range(rng.randint(0, 2)):
                    i, j = rng.sample(range(len(spans)), 2)
                    triplets.append((i, rng.choice(["r1", "r2"]), j, round(rng.random(), 2)))
            w._d["predicted_spans"] = spans
            w._d["predicted_triplets"] = triplets
            w._d["span_candidates"] = [f"cand-{w.doc_id}-{w.window_id}-{k}" for k in range(2)]
            predictions.append(
                {
                    "predicted_spans": spans,
                    "predicted_triplets": triplets,
                    "span_candidates": w._d["span_candidates"],
                }
            )
        windows.sort(key=lambda x: (x.doc_id, x.offset))
        merged = manager.merge_windows(windows)
        merged_rows = []
        for m in merged:
            spans = [list(s) for s in m.predicted_spans]
            merged_rows.append(
                {
                    "doc_id": m.doc_id,
                    "text": m.text,
                    "predicted_spans": spans,
                    # triplets resolved to span tuples so that they do not depend on list positions
                    "predicted_triplets": [
                        [spans[s], r, spans[o], c] for s, r, o, c in (m.predicted_triplets or [])
                    ],
                    "span_candidates": m.span_candidates,
                }
            )
        cases.append(
            {
                "window_size": size,
                "window_stride": stride,
                "windows": rows,
                "predictions": predictions,
                "merged": merged_rows,
            }
        )
    out = Path(__file__).with_name("reference_windows.json")
    payload = {
        "documents": DOCUMENTS,
        "cases": cases,
        "relik_output": reference_output(),
        "create_windows": reference_create_windows(),
    }
    payload["dpr"] = {
        "passages": PASSAGES,
        "title_map": {"Paris": "Paris (France)"},
        "cases": reference_dpr(payload["create_windows"]),
    }
    out.write_text(json.dumps(payload, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} cases, {sum(len(c['windows']) for c in cases)} windows to {out}")


if __name__ == "__main__":
    main()
