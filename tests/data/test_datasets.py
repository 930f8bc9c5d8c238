"""Dataset readers: counts from each dataset's SOURCE.md, independent cross-checks, reference formats."""

import collections
import json
from pathlib import Path

import pytest

from relik_jax.data import corpora as D
from relik_jax.data import jsonl, windowing
from relik_jax.paths import data_path
from relik_jax.text.windows import Window


@pytest.mark.parametrize(
    "split,docs,linked,nil,words",
    [
        ("train", 946, 18541, 4855, 203621),
        ("testa", 216, 4791, 1126, 51362),
        ("testb", 231, 4485, 1131, 46435),
    ],
)
def test_aida_counts(split, docs, linked, nil, words):
    out = list(D.read_aida(split))
    mentions = [m for d in out for m in d.mentions]
    assert len(out) == docs
    assert sum(m.label != D.NME for m in mentions) == linked
    assert sum(m.label == D.NME for m in mentions) == nil
    assert sum(len(d.words) for d in out) == words
    assert all(d.split == split for d in out)
    for d in out[:20]:
        for m in d.mentions:
            assert d.text[m.start : m.end] == m.text


def test_aida_testb_matches_zelda_copy():
    """ZELDA's test_aida-b.jsonl is an independent copy of testb (text + linked char spans)."""
    with open(data_path("aida-conll", "test_aida-b.jsonl"), encoding="utf-8") as f:
        zelda = {row["id"]: row for row in map(json.loads, f)}
    docs = list(D.read_aida("testb"))
    assert {d.doc_id for d in docs} == set(zelda)
    for d in docs:
        z = zelda[d.doc_id]
        assert d.text == z["text"].rstrip(" ")
        assert sorted((m.start, m.end) for m in d.mentions if m.label != D.NME) == sorted(
            map(tuple, z["index"])
        )
    first = docs[0]
    assert first.doc_id == "1163testb SOCCER" and first.topic == "SOCCER"
    japan = next(m for m in first.mentions if m.text == "JAPAN")
    assert japan.label == "Japan national football team"


def test_conll04_counts():
    expected = {"train": (922, 1283, 3377), "dev": (231, 343, 893), "test": (288, 422, 1079)}
    for split, (n, rels, ents) in expected.items():
        docs = list(D.read_conll04(split))
        assert (len(docs), sum(len(d.triplets) for d in docs), sum(len(d.mentions) for d in docs)) == (
            n,
            rels,
            ents,
        )
    by_type = collections.Counter(t.relation for d in D.read_conll04("test") for t in d.triplets)
    assert by_type == {"OrgBased_In": 105, "Live_In": 100, "Located_In": 94, "Work_For": 76, "Kill": 47}
    d = list(D.read_conll04("test"))[1]
    assert d.text == "PERUGIA , Italy ( AP )"
    assert [(t.subject.text, t.relation, t.object.text) for t in d.triplets][0] == (
        "PERUGIA",
        "Located_In",
        "Italy",
    )


def test_nyt_counts_and_entity_location():
    stats = D.LocateStats()
    docs = list(D.read_nyt("test", stats=stats))
    assert len(docs) == 5000 and stats.triplets == 8120
    # every entity is found word-aligned (44 only after accent folding, e.g. "Cancún" in a "Cancun" sentence)
    assert stats.located == 8120 and stats.missing_entities == []
    assert sum(len(d.triplets) for d in docs) == 8120
    dev = D.LocateStats()
    assert len(list(D.read_nyt("dev", stats=dev))) == 5000 and dev.triplets == 7985
    first = docs[0]
    assert ("Bobby Fischer", "country of citizenship", "Iceland") in {
        (t.subject.text, t.relation, t.object.text) for t in first.triplets
    }
    for d in docs[:200]:
        for t in d.triplets:
            for m in (t.subject, t.object):
                assert d.text[m.start : m.end] == m.text
                assert (m.start == 0 or d.text[m.start - 1] == " ") and (
                    m.end == len(d.text) or d.text[m.end] == " "
                )
    names = D.nyt_relation_names()
    assert len(names) == 24 and names["/people/person/children"] == "child"


def test_rebel_sample_and_relation_definitions():
    stats = D.RebelStats()
    docs = list(D.read_rebel_sample(stats=stats))
    assert len(docs) == 1000
    # 1,711 of the sample's boundaries miss their surface form (mostly shifted 2 chars); all are re-found
    assert (stats.mentions, stats.realigned, stats.unlocated) == (10977, 1711, 0)
    raw = [json.loads(line) for line in data_path("rebel-sample", "sample.jsonl").read_text().splitlines()]
    surfaces = {(r["docid"], e["uri"], e["surfaceform"]) for r in raw for e in r["entities"]}
    assert {(d.doc_id, m.label, m.text) for d in docs for m in d.mentions} == surfaces
    assert sum(len(d.mentions) for d in docs) == 10977
    # 20 spans carry two QIDs: mentions are ordered by (start, end, label), not by set order (PYTHONHASHSEED)
    assert sum(len(d.mentions) - len({(m.start, m.end) for m in d.mentions}) for d in docs) == 20
    assert all(d.mentions == sorted(d.mentions, key=lambda m: (m.start, m.end, m.label)) for d in docs)
    assert sum(len(d.triplets) for d in docs) == 2868
    assert len({t.relation for d in docs for t in d.triplets}) == 186
    t = docs[0].triplets[0]
    assert (t.subject.text, t.relation, t.object.text) == (
        "Transportation Journal",
        "publisher",
        "Penn State University Press",
    )
    props = D.read_wikidata_properties()
    assert len(props) == 13099 and sum(bool(p.description) for p in props) == 13002
    assert len(D.read_wikidata_properties(item_valued_only=True)) == 1717
    counts = D.read_rebel_relation_counts()
    assert len(counts) == 230 and counts["country"] == 1323211
    # SOURCE.md: 209 of REBEL's 230 labels are current Wikidata labels; 16 of NYT's 24 names are
    defs = D.relation_definitions(counts, props)
    assert sum(bool(v) for v in defs.values()) == 209
    assert defs["country"].startswith("sovereign state")
    nyt = D.relation_definitions(set(D.nyt_relation_names().values()), props)
    assert len(nyt) == 24 and sum(bool(v) for v in nyt.values()) == 16


def test_raw_formats():
    doc = next(D.read_aida("testb"))
    raw = windowing.to_raw_el(doc)
    assert raw["doc_text"] == doc.text
    s, e, title = raw["doc_span_annotations"][0]
    assert doc.text[s:e] == "JAPAN" and title == "Japan national football team"
    re_doc = list(D.read_conll04("test"))[1]
    raw_re = windowing.to_raw_re(re_doc)
    assert raw_re["doc_words"] == ["PERUGIA", ",", "Italy", "(", "AP", ")"]
    assert raw_re["doc_span_annotations"] == [[0, 1, "Loc"], [2, 3, "Loc"], [4, 5, "Org"]]
    assert raw_re["doc_triplet_annotations"][0] == {
        "subject": [0, 1, "Loc"],
        "relation": "Located_In",
        "object": [2, 3, "Loc"],
    }
    # NYT has no dataset words beyond the whitespace split; REBEL is re-tokenized with relik_jax.text.words
    rebel = next(D.read_rebel_sample())
    raw_rebel = windowing.to_raw_re(rebel)
    (trip,) = raw_rebel["doc_triplet_annotations"]
    assert raw_rebel["doc_words"][trip["subject"][0] : trip["subject"][1]] == ["Transportation", "Journal"]


def test_labelled_windows_cover_all_gold_and_roundtrip(tmp_path):
    docs = list(D.read_aida("testb"))[:40]
    rows = list(windowing.labelled_windows(docs, 32, 16))
    covered = {(r["doc_id"], s, e, label) for r in rows for s, e, label in r["window_labels"]}
    assert covered == {(d.doc_id, m.start, m.end, m.label) for d in docs for m in d.mentions}
    for r in rows:
        for (s, e, _), (ws, we, _) in zip(r["window_labels"], r["window_labels_tokens"], strict=True):
            assert r["token2char_start"][str(ws)] == s and r["token2char_end"][str(we - 1)] == e
    path = tmp_path / "windows.jsonl"
    assert jsonl.write_jsonl(rows, path) == len(rows)
    back = list(jsonl.read_jsonl(path))
    assert back == json.loads(json.dumps(rows))
    w = Window.from_dict(back[5])
    assert w.to_dict() == back[5]
    assert [x.to_dict() for x in jsonl.read_windows(path)] == back
    # RE windows: triplets only where both arguments are inside; word-level labels are window-relative
    re_rows = list(windowing.labelled_windows(D.read_conll04("test"), 8, 4, use_dataset_words=True))
    whole = list(windowing.labelled_windows(D.read_conll04("test"), None, None, use_dataset_words=True))
    assert len(whole) == 288 and sum(len(r["window_triplet_labels"]) for r in whole) == 422
    assert 0 < sum(len(r["window_triplet_labels"]) for r in re_rows)
    for r in re_rows:
        for t, tc in zip(r["window_triplet_labels_tokens"], r["window_triplet_labels"], strict=True):
            for key in ("subject", "object"):
                ws, we, _ = t[key]
                assert 0 <= ws < we <= len(r["words"])
                assert (
                    r["token2char_start"][str(ws)] == tc[key][0]
                    and r["token2char_end"][str(we - 1)] == tc[key][1]
                )


def test_dpr_rows_match_reference_command():
    """Fixture written by the reference `relik data convert-to-dpr` on the windows of the create-windows
    fixture, with a hand-written passage store (duplicate texts, missing titles, a title map)."""
    ref = json.loads(
        ((Path(__file__).resolve().parents[1] / "fixtures") / "reference_windows.json").read_text(encoding="utf-8")
    )
    windows = {c["window_size"]: c["output"] for c in ref["create_windows"][:2]}
    for case in ref["dpr"]["cases"]:
        missing: set[str] = set()
        ours = list(
            windowing.to_dpr(
                windows[case["window_size"]],
                ref["dpr"]["passages"],
                label_type=case["label_type"],
                title_map=ref["dpr"]["title_map"],
                missing=missing,
            )
        )
        assert ours == case["output"], (case["window_size"], case["label_type"])
        assert missing  # some titles and relations have no passage
    assert any(len(r["positive_ctxs"]) > 1 for c in ref["dpr"]["cases"] for r in c["output"])


def test_dpr_rows_from_aida():
    docs = list(D.read_aida("testb"))[:5]
    windows = list(windowing.labelled_windows(docs, 32, 16))
    titles = sorted({m.label for d in docs for m in d.mentions if m.label != D.NME})
    passages = [{"text": t, "id": i, "metadata": {"definition": ""}} for i, t in enumerate(titles)]
    rows = list(windowing.to_dpr(windows, passages))
    assert 0 < len(rows) <= len(windows)
    first = rows[0]
    assert first["id"] == "1163testb SOCCER_0" and first["question"] == windows[0]["text"]
    assert first["positive_ctxs"][0]["text"] == "Japan national football team"
    assert first["positive_ctxs"][0]["id"] == titles.index("Japan national football team")
    assert D.NME not in {p["text"] for r in rows for p in r["positive_ctxs"]}
    re_rows = list(
        windowing.to_dpr(
            windowing.labelled_windows(D.read_conll04("test"), None, None), [{"text": "Kill", "id": 0}], "triplet"
        )
    )
    assert len(re_rows) == sum(
        1 for d in D.read_conll04("test") if any(t.relation == "Kill" for t in d.triplets)
    )


def test_bad_split_names_raise():
    with pytest.raises(ValueError, match="AIDA split"):
        next(D.read_aida("dev"))
    with pytest.raises(ValueError, match="train split is not available"):
        next(D.read_nyt("train"))


def test_create_windows_matches_reference_command():
    """Fixture written by the reference `relik data create-windows` (tests/fixtures/make_reference_windows.py) on
    hand-written raw documents: padded, misaligned and sub-word labels, char and word-level triplets."""
    ref = json.loads(
        ((Path(__file__).resolve().parents[1] / "fixtures") / "reference_windows.json").read_text(encoding="utf-8")
    )
    assert len(ref["create_windows"]) == 4
    for case in ref["create_windows"]:
        ours = list(
            windowing.create_windows(
                case["input"],
                window_size=case["window_size"],
                window_stride=case["window_stride"],
                is_split_into_words=case.get("is_split_into_words", False),
                labels_are_tokens=case.get("labels_are_tokens", False),
                title_mapping=case.get("title_mapping"),
            )
        )
        assert len(ours) == len(case["output"])
        for mine, theirs in zip(ours, case["output"], strict=True):
            assert list(mine) == list(theirs)
            assert mine == theirs, (case["window_size"], theirs["doc_id"], theirs["window_id"])
