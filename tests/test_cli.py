"""`relik-jax convert` / `annotate` on the reference fixtures: the assembled pipeline annotates like the reference."""

import json

import pytest

from relik_jax.cli import _read_documents, main


def test_convert_pipeline_and_annotate(reference_dir, tmp_path):
    manifest = json.loads((reference_dir / "manifest.json").read_text())["pipeline"]["el"]
    call = json.loads((reference_dir / "pipeline" / "el" / "call.json").read_text())
    expected = json.loads((reference_dir / "pipeline" / "el" / "outputs.json").read_text())
    index = reference_dir / manifest["index_dirs"]["span"]
    out = tmp_path / "pipeline"
    main(["convert", "pipeline", str(out), "--reader", str(reference_dir / manifest["reader_dir"]),
          "--span-retriever", str(index.parent / "question_encoder"), "--span-index", str(index),
          "--task", "span", "--top-k", str(manifest["top_k"]), "--window-size", str(manifest["window_size"]),
          "--window-stride", str(manifest["window_stride"])])
    assert (out / "relik.json").is_file() and (out / "reader" / "reader_config.json").is_file()
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(call["texts"])))
    main(["annotate", str(out), str(docs), str(tmp_path / "out.jsonl")])
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"d{i}" for i in range(len(call["texts"]))]
    for row, ref in zip(rows, expected, strict=True):  # public output: the reference's well-formed spans
        assert {tuple(s[:3]) for s in row["spans"]} == {tuple(s[:3]) for s in ref["spans"] if s[0] < s[1]}


def test_annotate_input_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "no text field"}\n')
    with pytest.raises(SystemExit, match="bad.jsonl:2"):
        list(_read_documents(bad))
