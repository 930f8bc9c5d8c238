"""TFDS builders (array_record, no TensorFlow): CoNLL04 and REBEL prepared from the real shared data hold exactly the
windows the in-memory readers make (same count, order and fields), the split label metadata matches the documents,
reader training reads them (`data_format="tfds"`) into the same training batches as the default path, a windowized
JSONL folder round-trips through `relik_windows`, tfrecord is refused, and TensorFlow is never imported.

Needs the `[data]` extra (tensorflow-datasets, array-record, importlib-resources); shared data in ../shared/data."""

import json
import sys

import numpy as np
import pytest

from configs.conll04 import get_config as conll04_config
from relik_jax.data import corpora as D
from relik_jax.data import jsonl, windowing
from relik_jax.data import tfds as T
from relik_jax.data.windowing import LabelledWindow
from relik_jax.engine.buckets import Buckets
from relik_jax.reader.inputs import TokenizerInfo
from relik_jax.training.reader_batching import train_batches
from relik_jax.training.reader_data import load_splits, split_windows
from relik_jax.training.reader_model import build_training_reader
from relik_jax.training.reader_train import train_reader


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tfds")
    T.prepare("rebel", out)
    assert not T.get_builder("conll04", out).is_prepared()
    T.training_windows(cfg("conll04", data_format="tfds", tfds_data_dir=str(out)))  # prepares what is missing
    assert T.get_builder("conll04", out).is_prepared()
    return out


def memory_windows(name: str) -> dict[str, list[dict]]:
    """The in-memory path: datasets.py readers + labelled_windows with each builder's default windowing."""
    if name == "conll04":
        return {s: list(windowing.labelled_windows(D.read_conll04(s), None, None, use_dataset_words=True))
                for s in ("train", "dev", "test")}
    docs = D.rebel_splits(list(D.read_rebel_sample()))
    return {s: list(windowing.labelled_windows(d, 64, 32)) for s, d in docs.items()}


@pytest.mark.parametrize("name", ["conll04", "rebel"])
def test_prepared_windows_equal_the_readers_windows(data_dir, name):
    expected = memory_windows(name)
    builder = T.get_builder(name, data_dir)
    assert builder.info.file_format.value == "array_record"
    assert sorted(builder.info.splits) == sorted(expected)
    for split, rows in expected.items():
        src = T.window_source(name, split, data_dir)
        assert len(src) == len(rows) == builder.info.splits[split].num_examples
        got = list(src)
        assert got == rows  # every field of every window, in order
        assert src[-1] == rows[-1] and src[3:5] == rows[3:5]
        assert src.metadata["windows"] == len(rows)
        assert sum(1 for r in rows for _ in r.get("window_triplet_labels", [])) > 0
    # split label metadata = the documents' labels (reader training builds candidates from it)
    _, labels = split_windows(cfg(name, data_format="jsonl"))
    meta = builder.info.metadata["splits"]
    for split, m in labels.items():
        assert meta[split]["mention_labels"] == m["mention_labels"]
        assert meta[split]["relations"] == m["relations"]
    if name == "conll04":
        assert {s: meta[s]["documents"] for s in meta} == {"train": 922, "dev": 231, "test": 288}


def cfg(name: str, **overrides):
    c = conll04_config("smoke")
    c.init, c.backbone, c.linears_hidden_size = "random", "tiny-bert", 32
    # the toy tokenizer spells real words out in characters: 512 leaves room for CoNLL04's longer sentences
    c.max_length, c.seq_lens, c.token_batch_size, c.max_rows = 512, (512,), 1024, 4
    c.eval_every, c.checkpoint_every, c.final_test, c.verbose = 0, 0, False, False
    c.num_steps, c.warmup_steps, c.max_train_windows = 2, 0, 16
    if name == "rebel":
        c.task, c.dataset, c.window_size, c.window_stride, c.use_dataset_words = "cie", "rebel", 64, 32, False
        c.num_candidates, c.entity_types, c.max_relations = 8, 8, 8
        c.max_length, c.seq_lens, c.token_batch_size = 512, (512,), 2048
    c.update(overrides)
    return c


def first_batches(c, splits, reader_cfg, tok, n: int = 2) -> list[dict[str, np.ndarray]]:
    info = TokenizerInfo.from_tokenizer(tok)
    windows = splits["train"][: c.max_train_windows]
    buckets = Buckets(seq_lens=tuple(c.seq_lens), token_budget=c.token_batch_size, max_rows=c.max_rows)
    stream = train_batches(windows, reader_cfg, c, tok, info, buckets)
    return [next(stream) for _ in range(n)]


@pytest.mark.parametrize("name", ["conll04", "rebel"])
def test_training_reads_tfds_like_the_default_path(data_dir, name):
    jsonl, tfds_ = cfg(name), cfg(name, data_format="tfds", tfds_data_dir=str(data_dir))
    a, b = load_splits(jsonl), load_splits(tfds_)
    assert {s: len(v) for s, v in a.items()} == {s: len(v) for s, v in b.items()}
    assert all(isinstance(x, LabelledWindow) for x in b["train"])
    assert a == b  # windows, labels, candidates (REBEL: the same random negatives)
    reader_cfg, _, tok, _ = build_training_reader(jsonl)
    for x, y in zip(first_batches(jsonl, a, reader_cfg, tok), first_batches(tfds_, b, reader_cfg, tok), strict=True):
        assert sorted(x) == sorted(y)
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_two_step_training_run_on_tfds_data(data_dir, tmp_path):
    r = train_reader(cfg("conll04", data_format="tfds", tfds_data_dir=str(data_dir)), tmp_path)
    assert r["steps"] == 2 and r["train_step_compiles"] == 1
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and np.isfinite(losses).all()
    assert r["config"]["data_format"] == "tfds"


def test_windows_folder_round_trip_with_candidates(tmp_path):
    """relik_windows stores arbitrary §4.3 rows (candidates, scores, int doc ids, spans) unchanged."""
    rows = list(windowing.labelled_windows(list(D.read_conll04("test"))[:6], 8, 4, use_dataset_words=True))
    for i, r in enumerate(rows):
        r["span_candidates"] = ["Peop", "Org"] if i % 2 else []
        r["triplet_candidates"] = ["Work_For", "Kill"]
        r["window_candidates_scores"] = [0.5, 0.25]
        r["spans"] = [[r["offset"], r["offset"] + 1, "x"]]
    rows[0]["doc_id"] = 7
    del rows[1]["tokens"]
    manual = tmp_path / "manual"
    manual.mkdir()
    for split in ("train", "dev", "test"):
        jsonl.write_jsonl(rows, manual / f"{split}.jsonl")
    T.prepare("windows", tmp_path / "tfds", manual_dir=manual)
    got = list(T.window_source("windows", "dev", tmp_path / "tfds"))
    assert got == rows
    tfds_cfg = _windows_cfg(manual)
    tfds_cfg.update(data_format="tfds", tfds_data_dir=str(tmp_path / "tfds"))
    assert load_splits(tfds_cfg) == load_splits(_windows_cfg(manual))


def _windows_cfg(manual):
    c = conll04_config()
    c.dataset = "windows"
    c.train_windows, c.dev_windows, c.test_windows = (str(manual / f"{s}.jsonl") for s in ("train", "dev", "test"))
    return c


def test_tfrecord_and_missing_data_are_clear_errors(data_dir, tmp_path):
    with pytest.raises(ValueError, match="array_record"):
        T.get_builder("conll04", tmp_path, file_format="tfrecord")
    with pytest.raises(ValueError, match="tfrecord needs TensorFlow"):
        T.get_builder("conll04", tmp_path).download_and_prepare(file_format="tfrecord")
    with pytest.raises(FileNotFoundError, match="python -m relik_jax.data.tfds conll04"):
        T.window_source("conll04", "train", tmp_path / "empty")
    with pytest.raises(ValueError, match="no split 'valid'"):
        T.window_source("conll04", "valid", data_dir)
    with pytest.raises(ValueError, match="data_format"):
        load_splits(cfg("conll04", data_format="parquet"))
    with pytest.raises(ValueError, match="reads prepared conll04, nyt, rebel or windows data, not 'toy'"):
        load_splits(cfg("conll04", data_format="tfds", dataset="toy"))


def test_tensorflow_is_never_imported(data_dir):
    list(T.window_source("conll04", "test", data_dir))
    assert "tensorflow" not in sys.modules
