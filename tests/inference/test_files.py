"""Reading documents for `annotate` (bytes, per-line decoding, explicit line endings) and resuming its output."""

import json

import pytest

from relik_jax.inference.files import ResumeError, completed_records, read_documents
from relik_jax.inference.validation import DocumentError


def docs(path):
    return [(i, d if isinstance(d, DocumentError) else d["text"]) for i, d in read_documents(path)]


def test_txt_lines_end_only_at_newline_and_a_lone_cr_stays_inside(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"\xef\xbb\xbfone\r\ntwo\rstill two\nthree\n\nfive")
    assert docs(src) == [(0, "one"), (1, "two\rstill two"), (2, "three"), (3, ""), (4, "five")]


def test_invalid_utf8_is_that_lines_error_naming_file_and_line(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"first\nsecond\nbad \xff here\nfourth\n")
    got = docs(src)
    assert [g[1] for g in got if not isinstance(g[1], DocumentError)] == ["first", "second", "fourth"]
    err = got[2][1]
    assert got[2][0] == 2 and err.index == 2 and f"{src}:3: not valid UTF-8: byte 0xff at byte 4" in str(err)


def test_jsonl_records_errors_per_line(tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [b'{"text": "fine", "id": "a"}', b"", b'{"text": "lone \\ud800 here", "id": "b"}',
             b'{"txt": "typo", "id": "c"}', b"not json", b'["a list"]', b'{"text": "x\xfe", "id": "e"}',
             b'{"text": 42, "id": "f"}', b'{"text": "no id"}', b'{"text": "bad id", "id": "\\udc80"}']
    src.write_bytes(b"\n".join(lines) + b"\n")
    got = list(read_documents(src))
    assert [i for i, _ in got] == ["a", "b", "c", 3, 4, "e", "f", 7, 8]  # blank line 2 is not a document
    assert got[0][1] == {"text": "fine", "id": "a"} and got[7][1] == {"text": "no id", "id": 7}
    reasons = {i: str(d) for i, d in got if isinstance(d, DocumentError)}
    assert f"{src}:3: \"text\" holds a lone surrogate U+D800 at character offset 5" in reasons["b"]
    assert f"{src}:4: unknown key(s) 'txt'" in reasons["c"]
    assert f"{src}:5: not valid JSON" in reasons[3]
    assert f"{src}:6: expected an object" in reasons[4]
    assert f"{src}:7: not valid UTF-8: byte 0xfe" in reasons["e"]  # the id read despite the bad byte
    assert f"{src}:8: \"text\": expected a str" in reasons["f"]
    assert f"{src}:10: \"id\" holds a lone surrogate" in reasons[8]


def test_folder_of_txt_files(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"bee\nline")
    (tmp_path / "a.txt").write_bytes(b"\xff")
    (tmp_path / "skip.md").write_text("not a document")
    got = docs(tmp_path)
    assert got[1] == ("b.txt", "bee\nline") and got[0][0] == "a.txt" and "a.txt: not valid UTF-8" in str(got[0][1])


def test_completed_records_cut_a_torn_last_line_and_refuse_damage_before_it(tmp_path):
    out = tmp_path / "out.jsonl"
    good = b"".join(json.dumps({"text": f"t{i}", "id": i}).encode() + b"\n" for i in range(2))
    good += b'{"id": 2, "error": "bad"}\n'
    expected = [(0, "t0"), (1, "t1"), (2, None)]
    out.write_bytes(good + b'{"id": 3, "sp')
    assert completed_records(out) == expected and out.read_bytes() == good
    out.write_bytes(good + b"garbage\n")  # a complete but garbled last line (e.g. zeros after a power loss)
    assert completed_records(out) == expected and out.read_bytes() == good
    out.write_bytes(b"garbage\n" + good)
    with pytest.raises(ResumeError, match="out.jsonl:1: not a complete output record"):
        completed_records(out)
    assert completed_records(tmp_path / "missing.jsonl") == []
