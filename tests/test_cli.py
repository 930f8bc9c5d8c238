"""`relik-jax convert` / `annotate` / `serve`: the assembled reference pipeline annotates like the reference;
`annotate` loses no document (per-line errors, explicit line endings, resumable after kill -9); `serve` answers
JSON and NIF from one process."""

import importlib.util
import json
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from relik_jax.cli import main
from relik_jax.evaluation.gerbil.client import NifClient
from relik_jax.evaluation.gerbil.nif import NifDocument
from relik_jax.inference.pipeline import Relik

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "inference"))
from tiny_pipeline import save_tiny_pipeline  # noqa: E402


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


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return save_tiny_pipeline(tmp_path_factory.mktemp("pipeline"), top_k=3)


def annotate(pipeline, src, dst, *extra):
    """(exit code, output rows) of `relik-jax annotate`."""
    code = 0
    try:
        main(["annotate", str(pipeline), str(src), str(dst), *map(str, extra)])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]


def test_annotate_txt_invalid_utf8_line_is_an_error_record_and_the_rest_annotated(pipeline, tmp_path, capsys):
    src, dst = tmp_path / "docs.txt", tmp_path / "out.jsonl"
    src.write_bytes(b"Barack Obama was born in Honolulu .\nJapan beat Syria .\nbad \xff byte\nSteve Jobs .\n")
    with pytest.raises(SystemExit, match=r"annotate: 1 of 4 documents failed, e\.g\. document 2: .*docs.txt:3"):
        main(["annotate", str(pipeline), str(src), str(dst)])  # was: a traceback and an empty output
    rows = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2, 3] and "4 documents written" in capsys.readouterr().err
    assert "error" not in rows[0] and rows[1]["text"] == "Japan beat Syria ." and rows[3]["text"] == "Steve Jobs ."
    assert set(rows[2]) == {"id", "error"} and f"{src}:3: not valid UTF-8: byte 0xff" in rows[2]["error"]
    assert all(s[0] < s[1] for r in rows if "spans" in r for s in r["spans"])  # public output: well-formed spans


def test_annotate_jsonl_lone_surrogate_and_unknown_key_are_error_records(pipeline, tmp_path):
    src, dst = tmp_path / "docs.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"text": "Japan beat Syria .", "id": "a"}\n{"text": "x \\ud800 y", "id": "b"}\n'
                   '{"txt": "typo", "id": "c"}\n\n{"text": "Steve Jobs .", "id": "d"}\n', encoding="utf-8")
    code, rows = annotate(pipeline, src, dst)
    assert code == 1 and [r["id"] for r in rows] == ["a", "b", "c", "d"]
    assert "lone surrogate U+D800 at character offset 2" in rows[1]["error"] and "docs.jsonl:2" in rows[1]["error"]
    assert "unknown key(s) 'txt'" in rows[2]["error"] and "docs.jsonl:3" in rows[2]["error"]
    assert rows[0]["text"] == "Japan beat Syria ." and rows[3]["text"] == "Steve Jobs ."


def test_annotate_a_lone_cr_stays_inside_its_document(pipeline, tmp_path):
    src, dst = tmp_path / "docs.txt", tmp_path / "out.jsonl"
    src.write_bytes(b"one\rstill one\r\ntwo\n")
    code, rows = annotate(pipeline, src, dst)
    assert code == 0 and [(r["id"], r["text"]) for r in rows] == [(0, "one\rstill one"), (1, "two")]


def test_annotate_on_error_fail_stops_at_the_first_failure(pipeline, tmp_path):
    src, dst = tmp_path / "docs.txt", tmp_path / "out.jsonl"
    src.write_bytes(b"Japan .\n\xff\nSyria .\n")
    with pytest.raises(SystemExit, match="stopped at document 1: .*docs.txt:2: not valid UTF-8"):
        main(["annotate", str(pipeline), str(src), str(dst), "--on-error", "fail"])
    assert [json.loads(line)["id"] for line in dst.read_text().splitlines()] == [0]


def test_annotate_honours_the_saved_top_k(pipeline, tmp_path, monkeypatch):
    seen = []
    load = Relik.from_pretrained

    def spy(*args, **kwargs):
        relik = load(*args, **kwargs)
        seen.append(relik.config.top_k)
        return relik

    monkeypatch.setattr(Relik, "from_pretrained", spy)
    src = tmp_path / "docs.txt"
    src.write_text("Japan .\n")
    annotate(pipeline, src, tmp_path / "a.jsonl")
    annotate(pipeline, src, tmp_path / "b.jsonl", "--top-k", 2)
    assert seen == [3, 2]  # was: 100 unless --top-k


def test_annotate_resume_continues_a_torn_output(pipeline, tmp_path):
    src, full, part = tmp_path / "docs.txt", tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    src.write_text("".join(f"Barack Obama visited Japan {i} times .\n" for i in range(23)))
    assert annotate(pipeline, src, full, "--group-size", 5)[0] == 0
    lines = full.read_bytes().splitlines(keepends=True)
    part.write_bytes(b"".join(lines[:12]) + lines[12][:17])  # crashed while appending line 13
    assert annotate(pipeline, src, part, "--group-size", 5, "--resume")[0] == 0
    assert part.read_bytes() == full.read_bytes()
    other = tmp_path / "other.txt"
    other.write_text("different\n" * 30)
    with pytest.raises(SystemExit, match="not the output of this input"):
        main(["annotate", str(pipeline), str(other), str(part), "--resume"])
    short = tmp_path / "short.txt"
    short.write_text("".join(src.read_text().splitlines(True)[:2]))
    with pytest.raises(SystemExit, match="has 23 records but .* only 2 documents"):
        main(["annotate", str(pipeline), str(short), str(part), "--resume"])


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_annotate_killed_with_sigkill_and_resumed_equals_an_uninterrupted_run(tmp_path):
    """3 kills on 150 documents here; benchmarks/annotate_resume.py --docs 2000 --kills 10 is the full run."""
    report = load_script("annotate_resume").run(docs=150, kills=3, workdir=tmp_path, seed=1)
    assert report["identical"] and report["ids_in_order"] and report["lines"] == 150, report
    assert report["error_records"] == 0 and report["final_exit"] == 0, report  # no bad line among the first 150
    assert sum(k["exit"] == -9 for k in report["kill_log"]) >= 2, report


def test_serve_json_and_nif_from_one_process(pipeline):
    cmd = [sys.executable, "-m", "relik_jax.cli", "serve", "--json", "--nif", "--model", str(pipeline),
           "--port", "0", "--nif-port", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        urls = {}

        def read():
            for line in proc.stdout:
                if line.startswith(("NIF service on", "JSON service on")):
                    urls[line.split()[0]] = line.split()[3].rstrip("/")
                if len(urls) == 2:
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout=120)
        assert len(urls) == 2, (urls, proc.poll())
        json_url = urls["JSON"].removesuffix("/api/relik")
        got = httpx.get(json_url + "/api/relik", params={"text": "Japan beat Syria ."}, timeout=60)
        assert got.status_code == 200 and got.json()[0]["text"] == "Japan beat Syria ."
        bad = httpx.post(json_url + "/api/relik", content=b'{"text": "\\ud800"}', timeout=60)
        assert bad.status_code == 422 and "lone surrogate" in bad.json()["detail"]
        answer = NifClient(urls["NIF"]).annotate(NifDocument("http://t.org/d", "Japan beat Syria ."))
        assert answer.text == "Japan beat Syria ."
        assert httpx.get(json_url + "/health", timeout=10).json()["texts"] >= 2  # one worker behind both
    finally:
        proc.terminate()
        proc.wait(timeout=30)
