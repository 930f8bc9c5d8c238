"""TFDS builders for the reader-training windows: array_record files from the original dataset files, no TensorFlow.

Each builder turns a dataset's original files (`manual_dir`, default: the shared data folder via `relik_jax.paths`)
into the labelled windows that reader training uses: documents from the `relik_jax.data.corpora` readers, windowed by
`datasets.labelled_windows` (the reference's `relik data create-windows`). One example = one window (§4.3 row):
document id, window id, char offset, text, words with absolute char starts / ends, gold spans (`window_labels` chars,
`window_labels_tokens` words), gold triplets (chars and words) and candidates when the source has them.

| builder (`tfds` name) | source (manual_dir) | splits | default config |
| --- | --- | --- | --- |
| `RelikAida` (`relik_aida`) | AIDA-YAGO2-dataset.tsv | train, testa, testb | `w32_s16_relik_words` |
| `RelikConll04` (`relik_conll04`) | {train,valid,test}.CoNLL04.json | train, dev, test | `doc_dataset_words` |
| `RelikNyt` (`relik_nyt`) | exact_data/{valid,test}.json, nyt_relations.json | dev, test | `doc_dataset_words` |
| `RelikRebel` (`relik_rebel`) | sample.jsonl | train, dev, test (80/10/10 by document) | `w64_s32_relik_words` |
| `RelikWindows` (`relik_windows`) | `<split>.jsonl` windowized files (§4.3) | one per file | `default` |

Config names encode the windowing (`window_config`): `doc` = one window per document, `w32_s16` = 32 words, stride 16;
`dataset_words` = the dataset's own tokens (`use_dataset_words=True`), `relik_words` = relik_jax.text.words.
Any windowing can be prepared (`window_config(size, stride, use_dataset_words)`).

Storage is array_record only, written and read without TensorFlow: prepare with `download_and_prepare` (this module
forces `file_format="array_record"` and refuses any other format, since tfrecord needs TensorFlow), read with
`as_data_source` (random access). `as_dataset` needs TensorFlow and is never used. Windows keep their in-memory
order (`disable_shuffling`, key = position), and every example is decoded again at write time and compared with the
in-memory row: a window that would not come back identical fails the build instead of changing silently. Fields that
the typed features do not cover (e.g. `spans`, a retriever's scores) travel as JSON in `extra_json`.

Per split, `info.metadata["splits"]` holds the document and window counts and the sorted mention labels and
relations of the split's documents (reader training builds its candidate lists from them).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from relik_jax.data import corpora as D
from relik_jax.data import jsonl, windowing
from relik_jax.data.tfds_features import decode_window, encode_window, tfds, window_features
from relik_jax.paths import CACHE, data_path

__all__ = [
    "FILE_FORMAT",
    "DEFAULT_DATA_DIR",
    "BUILDERS",
    "WindowConfig",
    "window_config",
    "RelikAida",
    "RelikConll04",
    "RelikNyt",
    "RelikRebel",
    "RelikWindows",
    "get_builder",
    "prepare",
    "WindowSource",
    "window_source",
    "training_windows",
]

FILE_FORMAT = "array_record"
DEFAULT_DATA_DIR = CACHE / "tfds"


def _check_format(file_format: Any) -> None:
    if file_format is None:
        return
    value = getattr(file_format, "value", file_format)
    if value != FILE_FORMAT:
        raise ValueError(
            f"file_format={value!r}: relik_jax TFDS builders write {FILE_FORMAT!r} only (tfrecord needs TensorFlow, "
            "which this project never imports); read the data back with builder.as_data_source(split)"
        )

# ---------------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class WindowConfig(tfds.core.BuilderConfig):
    """Windowing of a prepared dataset: `window_size` words (None = one window per document), `window_stride`,
    and the dataset's own words (`use_dataset_words`) or relik_jax.text.words."""

    window_size: int | None = None
    window_stride: int | None = None
    use_dataset_words: bool = False


def window_config_name(window_size: int | None, window_stride: int | None, use_dataset_words: bool) -> str:
    size = window_size or None
    win = "doc" if size is None else f"w{size}_s{window_stride or size}"
    return f"{win}_{'dataset_words' if use_dataset_words else 'relik_words'}"


def window_config(window_size: int | None, window_stride: int | None = None, use_dataset_words: bool = False,
                  builder_cls: type | None = None) -> WindowConfig:
    """The WindowConfig of a windowing (the builder's own instance when it has one of that name; tfds refuses a
    second object with a registered name)."""
    size = window_size or None  # 0 / None: one window per document (as the reader training config)
    stride = (window_stride or size) if size else None
    name = window_config_name(size, stride, use_dataset_words)
    for cfg in getattr(builder_cls, "BUILDER_CONFIGS", []) or []:
        if cfg.name == name:
            return cfg
    what = "one window per document" if size is None else f"windows of {size} words, stride {stride}"
    words = "the dataset's words" if use_dataset_words else "relik_jax.text.words"
    return WindowConfig(name=name, description=f"{what}; {words}", window_size=size, window_stride=stride,
                        use_dataset_words=use_dataset_words)


_RELEASE_NOTES = {"1.0.0": "First release: labelled windows (datasets.labelled_windows) as array_record, typed "
                           "features + extra_json, split label metadata."}


class _WindowsBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared logic: documents of a split (`_documents`) -> labelled windows -> examples (in order)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = _RELEASE_NOTES
    DATA_FOLDER = ""  # under the shared data folder: the default manual_dir
    SPLITS: tuple[str, ...] = ()
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put the dataset's original files in manual_dir (see the builder's docstring)."

    def __init__(self, *, data_dir: str | Path | None = None, config: Any = None, version: Any = None,
                 file_format: Any = None, **kwargs: Any) -> None:
        _check_format(file_format)
        super().__init__(data_dir=str(data_dir or DEFAULT_DATA_DIR), config=config, version=version,
                         file_format=FILE_FORMAT, **kwargs)

    @classmethod
    def default_manual_dir(cls) -> Path:
        return data_path(cls.DATA_FOLDER)

    def download_and_prepare(self, *, download_dir: Any = None, download_config: Any = None,
                             file_format: Any = None, **kwargs: Any) -> None:
        """tfds's `download_and_prepare`, array_record only; manual_dir defaults to the shared data folder."""
        _check_format(file_format)
        download_config = download_config or tfds.download.DownloadConfig()
        if download_config.manual_dir is None:
            download_config = dataclasses.replace(download_config, manual_dir=str(self.default_manual_dir()))
        if not Path(download_config.manual_dir).is_dir():
            raise FileNotFoundError(f"{self.name}: manual_dir {download_config.manual_dir} is not a folder "
                                    f"({self.MANUAL_DOWNLOAD_INSTRUCTIONS})")
        super().download_and_prepare(download_dir=download_dir, download_config=download_config,
                                     file_format=FILE_FORMAT, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        # DatasetInfo(builder=...) directly: dataset_info_from_configs looks for metadata files beside the module
        return tfds.core.DatasetInfo(builder=self, description=self.__doc__, features=window_features(),
                                     disable_shuffling=True, metadata=tfds.core.MetadataDict())

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator]:
        manual = Path(dl_manager.manual_dir)
        return {split: self._generate_examples(manual, split) for split in self._splits(manual)}

    def _splits(self, manual: Path) -> tuple[str, ...]:
        return self.SPLITS

    def _documents(self, manual: Path, split: str) -> list[D.LabelledDocument]:
        raise NotImplementedError

    def _windows(self, manual: Path, split: str) -> tuple[list[dict], dict[str, Any]]:
        """(window rows, split metadata)."""
        docs = self._documents(manual, split)
        cfg = self.builder_config
        rows = list(windowing.labelled_windows(docs, cfg.window_size, cfg.window_stride,
                                       use_dataset_words=cfg.use_dataset_words))
        meta = {"documents": len(docs), "windows": len(rows),
                "mention_labels": sorted({m.label for d in docs for m in d.mentions}),
                "relations": sorted({t.relation for d in docs for t in d.triplets})}
        return rows, meta

    def _generate_examples(self, manual: Path, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
        rows, meta = self._windows(manual, split)
        self.info.metadata.setdefault("splits", {})[split] = meta
        if isinstance(self.builder_config, WindowConfig):
            cfg = self.builder_config
            self.info.metadata["windowing"] = {"window_size": cfg.window_size, "window_stride": cfg.window_stride,
                                               "use_dataset_words": cfg.use_dataset_words}
        for i, row in enumerate(rows):
            yield i, encode_window(row, i)


class RelikAida(_WindowsBuilder):
    """AIDA-CoNLL entity linking windows (gold Wikipedia titles, NME = --NME--), from AIDA-YAGO2-dataset.tsv."""

    name = "relik_aida"
    DATA_FOLDER = "aida-conll"
    SPLITS = ("train", "testa", "testb")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "manual_dir must hold AIDA-YAGO2-dataset.tsv (the official AIDA-YAGO2 TSV)."
    BUILDER_CONFIGS = [window_config(32, 16, False)]  # configs/aida.py windowing

    def _documents(self, manual: Path, split: str) -> list[D.LabelledDocument]:
        return list(D.read_aida(split, manual / "AIDA-YAGO2-dataset.tsv"))


class RelikConll04(_WindowsBuilder):
    """CoNLL04 relation extraction windows (entity types as mention labels), from the unified JSON files."""

    name = "relik_conll04"
    DATA_FOLDER = "conll04"
    SPLITS = ("train", "dev", "test")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "manual_dir must hold {train,valid,test}.CoNLL04.json (unified JSON)."
    BUILDER_CONFIGS = [window_config(None, None, True)]  # configs/conll04.py: one window per sentence

    def _documents(self, manual: Path, split: str) -> list[D.LabelledDocument]:
        return list(D.read_conll04(split, manual / f"{D._CONLL04_FILES[split]}.CoNLL04.json"))


class RelikNyt(_WindowsBuilder):
    """NYT (exact-name) relation extraction windows; relations renamed to REBEL's names (nyt_relations.json)."""

    name = "relik_nyt"
    DATA_FOLDER = "nyt"
    SPLITS = ("dev", "test")  # the train split is not in the shared data
    MANUAL_DOWNLOAD_INSTRUCTIONS = "manual_dir must hold exact_data/{valid,test}.json and nyt_relations.json."
    BUILDER_CONFIGS = [window_config(None, None, True)]  # configs/nyt.py

    def _documents(self, manual: Path, split: str) -> list[D.LabelledDocument]:
        stats = D.LocateStats()
        names = D.nyt_relation_names(manual / "nyt_relations.json")
        file = {"dev": "valid", "test": "test"}[split]
        docs = list(D.read_nyt(split, manual / "exact_data" / f"{file}.json", relation_names=names, stats=stats))
        self.info.metadata.setdefault("located_triplets", {})[split] = [stats.located, stats.triplets]
        return docs


class RelikRebel(_WindowsBuilder):
    """REBEL sample closed-IE windows (mentions labelled with Wikidata QIDs, triplets with property labels);
    train / dev / test = the first 80% / next 10% / last 10% of the documents (relik_jax.data.corpora.rebel_splits)."""

    name = "relik_rebel"
    DATA_FOLDER = "rebel-sample"
    SPLITS = ("train", "dev", "test")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "manual_dir must hold sample.jsonl (REBEL JSONL)."
    BUILDER_CONFIGS = [window_config(64, 32, False)]  # configs/rebel.py windowing

    def _documents(self, manual: Path, split: str) -> list[D.LabelledDocument]:
        stats = D.RebelStats()
        docs = D.rebel_splits(list(D.read_rebel_sample(manual / "sample.jsonl", stats=stats)))[split]
        self.info.metadata["rebel_realigned_mentions"] = [stats.realigned, stats.mentions]
        return docs


class RelikWindows(_WindowsBuilder):
    """Windowized reader rows (§4.3 JSONL, e.g. the reference's create-windows output or AIDA windows with
    retrieved `span_candidates`): one split per `<split>.jsonl` file in manual_dir, rows stored as they are."""

    name = "relik_windows"
    MANUAL_DOWNLOAD_INSTRUCTIONS = "manual_dir must hold one <split>.jsonl windowized file per split."
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="default", description="rows as in the JSONL files")]

    @classmethod
    def default_manual_dir(cls) -> Path:
        raise ValueError("relik_windows has no default manual_dir: pass the folder with <split>.jsonl files")

    def _splits(self, manual: Path) -> tuple[str, ...]:
        splits = tuple(sorted(p.stem for p in manual.glob("*.jsonl")))
        if not splits:
            raise FileNotFoundError(f"relik_windows: no <split>.jsonl file in {manual}")
        return splits

    def _windows(self, manual: Path, split: str) -> tuple[list[dict], dict[str, Any]]:
        rows = list(jsonl.read_jsonl(manual / f"{split}.jsonl"))
        docs = {r.get("doc_id") for r in rows}
        meta = {"documents": len(docs), "windows": len(rows),
                "mention_labels": sorted({str(lab[2]) for r in rows for lab in r.get("window_labels", [])}),
                "relations": sorted({str(t["relation"]) for r in rows for t in r.get("window_triplet_labels", [])})}
        return rows, meta


BUILDERS: dict[str, type[_WindowsBuilder]] = {"aida": RelikAida, "conll04": RelikConll04, "nyt": RelikNyt,
                                              "rebel": RelikRebel, "windows": RelikWindows}


def _builder_cls(dataset: str) -> type[_WindowsBuilder]:
    if dataset not in BUILDERS:
        raise ValueError(f"dataset {dataset!r}: expected one of {sorted(BUILDERS)}")
    return BUILDERS[dataset]


def get_builder(dataset: str, data_dir: str | Path | None = None, config: str | tfds.core.BuilderConfig | None = None,
                file_format: str | None = None) -> _WindowsBuilder:
    """The builder of `dataset` ('aida', 'conll04', 'nyt', 'rebel', 'windows') in `data_dir` (default
    ~/.cache/relik-jax/tfds). `config`: None (the dataset's default windowing), a config name or a `window_config`."""
    cls = _builder_cls(dataset)
    if isinstance(config, WindowConfig):
        config = window_config(config.window_size, config.window_stride, config.use_dataset_words, cls)
    return cls(data_dir=data_dir, config=config, file_format=file_format)


def prepare(dataset: str, data_dir: str | Path | None = None, config: str | tfds.core.BuilderConfig | None = None,
            manual_dir: str | Path | None = None) -> tuple[_WindowsBuilder, float]:
    """Build `dataset` (array_record) from the original files in `manual_dir` (default: the shared data folder).
    Returns (builder, seconds). A prepared dataset is reused (tfds's default download mode)."""
    builder = get_builder(dataset, data_dir, config)
    t = time.perf_counter()
    cfg = tfds.download.DownloadConfig(manual_dir=str(manual_dir) if manual_dir else None)
    builder.download_and_prepare(download_config=cfg)
    return builder, time.perf_counter() - t


# ---------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------


class WindowSource(Sequence):
    """Random access to the window rows of one prepared split (`as_data_source`), in the in-memory order.

    `source[i]` is the §4.3 dict `datasets.labelled_windows` yields for window i (what
    `relik_jax.text.windows.Window.from_dict` takes); `metadata` is the split's entry of `info.metadata`."""

    def __init__(self, data_source: Any, metadata: dict[str, Any], name: str = "") -> None:
        self.data_source = data_source
        self.metadata = metadata
        self.name = name

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        k = i + n if i < 0 else i
        if not 0 <= k < n:
            raise IndexError(f"{self.name}: window {i} out of range ({n} windows)")
        return self._decode(k, self.data_source[k])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # batched reads (one array_record call per chunk): ~1.5x faster than one record at a time
        n, chunk = len(self), 1024
        for lo in range(0, n, chunk):
            keys = list(range(lo, min(lo + chunk, n)))
            for k, ex in zip(keys, self.data_source.__getitems__(keys), strict=True):
                yield self._decode(k, ex)

    def _decode(self, k: int, ex: dict[str, Any]) -> dict[str, Any]:
        if int(ex["index"]) != k:  # written with disable_shuffling: record k is window k
            raise ValueError(f"{self.name}: record {k} holds window {int(ex['index'])}: files written out of order")
        return decode_window(ex)


def window_source(dataset: str, split: str, data_dir: str | Path | None = None,
                  config: str | tfds.core.BuilderConfig | None = None) -> WindowSource:
    """The prepared windows of one split; a FileNotFoundError saying how to prepare them when missing."""
    builder = get_builder(dataset, data_dir, config)
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"{builder.name}/{builder.builder_config.name} is not prepared in {builder.data_dir}: run "
            f"`python -m relik_jax.data.tfds {dataset} --data_dir {Path(builder.data_dir).parents[2]}"
            + _cli_window_args(builder.builder_config) + "` (or relik_jax.data.tfds.prepare)")
    splits = builder.info.metadata.get("splits", {})
    if split not in builder.info.splits:
        raise ValueError(f"{builder.name}: no split {split!r} (prepared splits: {sorted(builder.info.splits)})")
    return WindowSource(builder.as_data_source(split), dict(splits.get(split, {})),
                        f"{builder.name}/{builder.builder_config.name}[{split}]")


def _cli_window_args(cfg: Any) -> str:
    if not isinstance(cfg, WindowConfig):
        return " --manual_dir <folder with <split>.jsonl>"
    out = f" --window_size {cfg.window_size or 0}"
    if cfg.window_size:
        out += f" --window_stride {cfg.window_stride}"
    return out + (" --use_dataset_words" if cfg.use_dataset_words else "")


def training_windows(config: Any, prepare_missing: bool = True) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """Window rows and split metadata for `relik_jax.training.reader_data.load_splits` with
    `config.data_format == "tfds"`:
    ({"train" | "dev" | "test": rows}, {same: metadata}) from `config.tfds_data_dir`, with the windowing of
    `config.window_size` / `window_stride` / `use_dataset_words` and the dataset's `<s>_split` names (as the jsonl
    path). Missing data is prepared first from the shared data folder (`prepare_missing`)."""
    name = config.dataset
    data_dir = config.get("tfds_data_dir", "") or None
    if name == "windows":
        wcfg: Any = None
    elif name in ("conll04", "nyt", "rebel"):
        wcfg = window_config(config.window_size or None, config.window_stride, bool(config.use_dataset_words))
    else:
        raise ValueError(f"data_format='tfds' supports datasets conll04, nyt, rebel and windows, not {name!r}")
    if prepare_missing and name != "windows" and not get_builder(name, data_dir, wcfg).is_prepared():
        prepare(name, data_dir, wcfg)
    rows, meta = {}, {}
    for s in ("train", "dev", "test"):
        src = window_source(name, config.get(f"{s}_split", s), data_dir, wcfg)
        rows[s] = list(src)
        meta[s] = src.metadata
    return rows, meta


# ---------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m relik_jax.data.tfds",
                                description="Prepare relik_jax TFDS datasets (array_record, no TensorFlow).")
    p.add_argument("dataset", choices=sorted(BUILDERS))
    p.add_argument("--data_dir", default=None, help=f"output root (default {DEFAULT_DATA_DIR})")
    p.add_argument("--manual_dir", default=None, help="folder with the original files (default: shared data)")
    p.add_argument("--window_size", type=int, default=None, help="words per window; 0 = one per document")
    p.add_argument("--window_stride", type=int, default=None)
    p.add_argument("--use_dataset_words", action="store_true")
    a = p.parse_args(argv)
    config = None
    if a.window_size is not None:
        config = window_config(a.window_size or None, a.window_stride, a.use_dataset_words)
    builder, seconds = prepare(a.dataset, a.data_dir, config, a.manual_dir)
    splits = {k: v.num_examples for k, v in builder.info.splits.items()}
    print(f"{builder.name}/{builder.builder_config.name} {builder.version}: {splits} windows in {seconds:.1f} s "
          f"-> {builder.data_dir}")


if __name__ == "__main__":
    main()
