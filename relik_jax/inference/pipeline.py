"""End-to-end ReLiK: text -> windows -> retrieve -> read -> merge, as the reference's `Relik.__call__`.

    relik = Relik.from_pretrained("path/to/pipeline")        # our folder (see `save_pretrained`)
    out = relik("Michael Jordan was one of the best players in the NBA.")
    out.spans, out.triplets, out.entities()

Documents stream through in chunks of windows (`chunk_windows`), so a corpus or a single very long document is
annotated with memory bounded by the chunk, not by the input: per document only the merged predictions (and,
unless `keep_candidates=False`, references to the retrieved candidates) are kept until it is complete.
Windows are processed in document order (the reference does not sort at inference either). A background thread
prepares chunk n+1 on the host (words, windows, retrieval, reader rows) while chunk n runs on the device, and the
reader keeps its next batch queued on the device while the host reads back the current one
(`relik_jax.engine.executor`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from relik_jax.engine.executor import prefetch
from relik_jax.engine.sharding import data_mesh
from relik_jax.inference.merge import DocumentMerge
from relik_jax.inference.outputs import RelikOutput
from relik_jax.inference.pretrained import place, pretrained_folder, resolve_device
from relik_jax.inference.validation import accepts_documents, isolates_documents
from relik_jax.labels import NME
from relik_jax.reader.convert import load_reader, save_reader
from relik_jax.reader.reader import Reader, SpanWindowPrediction
from relik_jax.retriever.encoder import Retriever, load_encoder, save_encoder
from relik_jax.retriever.index import DocumentIndex
from relik_jax.text.windows import Window, WindowSplitter
from relik_jax.text.words import tokenize_columns

SPAN, TRIPLET, BOTH = "span", "triplet", "both"
DEFAULT_WINDOWS = {SPAN: (32, 16), TRIPLET: (64, 32), BOTH: (64, 32)}


@dataclasses.dataclass
class RelikConfig:
    task: str = SPAN
    top_k: int = 100
    window_size: int | None = None  # None -> the task default (EL 32/16, RE and cIE 64/32)
    window_stride: int | None = None
    metadata_fields: tuple[str, ...] = ()  # reader candidate text = document text + these metadata values
    use_doc_topic: bool = False
    chunk_windows: int = 1024
    prefetch_chunks: int = 1  # chunks prepared on the host ahead of the device (0: no background thread)
    use_nme: bool | None = None  # reader: None -> the reader's default (EL True; RE/cIE from the checkpoint config)
    relation_threshold: float | None = None  # reader: None -> the checkpoint's `threshold`
    raw_output: bool = False  # True: keep the reference's empty / inverted spans (parity); see inference/merge.py

    def __post_init__(self) -> None:
        if self.task not in DEFAULT_WINDOWS:
            raise ValueError(f"task must be one of {sorted(DEFAULT_WINDOWS)}, got {self.task!r}")
        size, stride = DEFAULT_WINDOWS[self.task]
        self.window_size = size if self.window_size is None else self.window_size
        self.window_stride = stride if self.window_stride is None else self.window_stride
        self.metadata_fields = tuple(self.metadata_fields)
        if self.top_k <= 0:
            raise ValueError(f"top_k must be positive, got {self.top_k}")


class Relik:
    """Retriever(s) + reader. `retrievers` maps 'span' / 'triplet' to a `Retriever` with an index."""

    def __init__(self, reader: Reader, retrievers: dict[str, Retriever] | None = None,
                 config: RelikConfig | None = None, **overrides: Any):
        self.reader = reader
        self.retrievers = dict(retrievers or {})
        self.config = dataclasses.replace(config or RelikConfig(), **overrides)
        for task in self._tasks():
            if task not in self.retrievers:
                self.retrievers.setdefault(task, None)  # candidates must then be passed at call time
        self.splitter = WindowSplitter(self.config.window_size, self.config.window_stride)
        self.times = reader.times  # one account of the host's time per stage, shared with the reader

    def _tasks(self) -> list[str]:
        return [SPAN, TRIPLET] if self.config.task == BOTH else [self.config.task]

    # ------------------------------------------------------------------------------------------ persistence
    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, dtype: str = "fp32", index_dtype: str | None = None,
                        device: Any = None, devices: Any = None, revision: str | None = None,
                        local_files_only: bool | None = None, progress: bool | None = None,
                        **overrides: Any) -> Relik:
        """A pipeline by folder or hub id: ours (`relik.json` + `reader/` + `retriever-<task>/` + `index-<task>/`),
        or relik's (`config.yaml`, e.g. "sapienzanlp/relik-entity-linking-large"), converted once and cached with
        its settings (top_k, windows, use_nme, metadata fields); components come from local paths, the Hugging
        Face cache, or a download unless `local_files_only` (default: HF_HUB_OFFLINE); `revision`: of the pipeline's
        hub repo. Resolution, cache and the one error naming every missing repository: `inference.pretrained`.

        dtype: reader and encoder compute dtype; index_dtype: on-device dtype of exact search, None = as stored:
        fp16 for the published indexes and `relik-jax index build`'s default, fp32 where an index was saved so (as
        the reference searches it); device: a jax.Device or "cpu" / "gpu" / "tpu" ("gpu:1"): the reader's and
        encoders' parameters and the index vectors are placed there, so every compiled call runs there (None =
        JAX's default device, the index sharded over all local devices); devices: data-parallel reader and
        question encoding over several devices (an int: the first n, a list of devices, or a `jax.sharding.Mesh`
        with a "data" axis; engine/sharding.py), the index sharded over them; overrides: RelikConfig fields."""
        if device is not None and devices is not None:
            raise ValueError("give device= (one device) or devices= (data-parallel), not both")
        folder = pretrained_folder(name_or_path, revision=revision, local_files_only=local_files_only,
                                   progress=progress)
        raw = json.loads((folder / "relik.json").read_text())
        config = RelikConfig(**{k: v for k, v in raw.items() if k in {f.name for f in dataclasses.fields(RelikConfig)}})
        device = resolve_device(device)
        index_kwargs = {"dtype": index_dtype, **({"devices": [device]} if device is not None else {})}
        parallel = {"devices": data_mesh(devices)} if devices is not None else {}
        reader = Reader.from_folder(folder / "reader", dtype=dtype, use_nme=config.use_nme,
                                    relation_threshold=config.relation_threshold, **parallel)
        retrievers = {}
        for task in (SPAN, TRIPLET):
            enc = folder / f"retriever-{task}"
            if enc.is_dir():
                index = folder / f"index-{task}"
                retrievers[task] = Retriever.from_pretrained(enc, index if index.is_dir() else None, dtype=dtype,
                                                             index_kwargs=index_kwargs, **parallel)
        place(device, reader, retrievers.values())
        return cls(reader, retrievers, config, **overrides)

    @staticmethod
    def assemble(folder: str | Path, config: RelikConfig, *, reader: str | Path,
                 span_retriever: str | Path | None = None, span_index: str | Path | None = None,
                 triplet_retriever: str | Path | None = None, triplet_index: str | Path | None = None) -> Path:
        """Write a pipeline folder from component folders (reference or ours), converting each to our format."""

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        raw = Path(reader) / "config.json"
        if config.use_nme is None and raw.is_file():  # reference cIE checkpoints carry `use_nme: true`
            use_nme = json.loads(raw.read_text()).get("use_nme")
            config = dataclasses.replace(config, use_nme=use_nme)
        save_reader(folder / "reader", *load_reader(reader))
        for task, enc, index in ((SPAN, span_retriever, span_index), (TRIPLET, triplet_retriever, triplet_index)):
            if enc is None:
                continue
            cfg, model = load_encoder(enc)
            save_encoder(model, cfg, folder / f"retriever-{task}", tokenizer_folder=enc)
            if index is not None:
                loader = DocumentIndex.load if (Path(index) / "index.json").is_file() else DocumentIndex.from_reference
                loader(index).save(folder / f"index-{task}")
        (folder / "relik.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
        return folder

    def annotator(self, top_k: int | None = None):
        """`texts -> [[(start, end, title), ...]]` for the GERBIL scorer / NIF service: NME and empty or inverted
        spans (the reference's EL end may precede its start) are not annotations, so they are dropped."""

        def annotate(texts: list[str]) -> list[list[tuple[int, int, str]]]:
            outs = self.stream(list(texts), top_k=top_k, keep_candidates=False)
            return [[(s.start, s.end, s.label) for s in o.spans if s.label != NME and s.end > s.start]
                    for o in outs]

        return annotate

    # ------------------------------------------------------------------------------------------------ calls
    @accepts_documents  # inference/validation.py: records, clear TypeErrors (bytes, None, 42), on_error=
    def __call__(self, text: str | Sequence[str], candidates: Any = None, **kwargs: Any) -> RelikOutput | list:
        """Annotate one text (-> RelikOutput) or a list of texts (-> list). See `stream` for the arguments."""
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        outputs = list(self.stream(texts, candidates=candidates, **kwargs))
        return outputs[0] if single else outputs

    @isolates_documents  # inference/validation.py: lazy per-document checks; one failing document fails alone
    def stream(self, texts: Iterable[str | list[str]], *, candidates: Any = None, top_k: int | None = None,
               is_split_into_words: bool = False, return_windows: bool = False, keep_candidates: bool = True,
               progress: Any = None) -> Iterator[RelikOutput]:
        """Annotate documents lazily, yielding one `RelikOutput` per input document, in input order.

        `candidates`: None (retrieve), a list of strings (the same candidates for every document), a list of
        such lists (one per document), or a dict {'span'|'triplet': either form}.
        `progress`: a callable advanced by the number of windows processed (e.g. from rich.progress).
        """
        top_k = top_k or self.config.top_k
        chunks = self._chunks(texts, candidates, is_split_into_words, return_windows, keep_candidates)
        # Host work for chunk n+1 (words, windows, retrieval, rows) runs in a background thread while chunk n is on
        # the device; one chunk ahead bounds the memory.
        for chunk in prefetch((self._prepare(c, top_k) for c in chunks), depth=self.config.prefetch_chunks):
            if chunk.windows:
                self._finish(chunk)
                if progress is not None:
                    progress(len(chunk.windows))
            for merge in chunk.done:
                t = time.perf_counter()
                out = merge.output()
                self.times.add("merge", t)
                yield out

    def _chunks(self, texts: Iterable[str | list[str]], candidates: Any, is_split_into_words: bool,
                return_windows: bool, keep_candidates: bool) -> Iterator[Chunk]:
        """Documents -> windows, cut into chunks of `chunk_windows`; each chunk lists the documents it completes."""
        pending: list[tuple[DocumentMerge, Window]] = []
        done: list[DocumentMerge] = []
        current: DocumentMerge | None = None
        doc_candidates = self._candidate_lookup(candidates)
        for doc_index, text in enumerate(texts):
            if isinstance(text, list):
                text, split = " ".join(text), True
            else:
                split = is_split_into_words
            if not isinstance(text, str):
                raise TypeError(f"document {doc_index}: expected str or list of words, got {type(text).__name__}")
            if current is not None:
                done.append(current)
            t = time.perf_counter()
            words, starts, ends = tokenize_columns(text, is_split_into_words=split)
            t = self.times.add("words", t)
            current = DocumentMerge(doc_index, text, words, keep_windows=return_windows,
                                    keep_candidates=keep_candidates, raw=self.config.raw_output)
            doc_cands = doc_candidates(doc_index)
            for window in self.splitter.split_columns(text, doc_index, words, starts, ends):
                window.span_candidates = doc_cands.get(SPAN)
                window.triplet_candidates = doc_cands.get(TRIPLET)
                pending.append((current, window))
                if len(pending) >= self.config.chunk_windows:
                    self.times.add("windows", t)
                    yield Chunk(pending, done)
                    pending, done = [], []
                    t = time.perf_counter()
            self.times.add("windows", t)
        # A blank document has no window: it still gets an (empty) output, in input order.
        yield Chunk(pending, done + ([current] if current is not None else []))

    # ------------------------------------------------------------------------------------------- internals
    def _candidate_lookup(self, candidates: Any) -> Callable[[int], dict[str, list[str]]]:
        """doc index -> {task: candidate strings}. Read per document: per-document lists may still be growing (the
        validation wrapper feeds them lazily). A list that document after document reads (the same object) is
        converted once; each document gets its own copy."""
        if candidates is None:
            return lambda _: {}
        last: dict[str, tuple[Any, list[str], int]] = {}  # per task: the last list converted, strings, length

        def strings(task: str, cands: Sequence[Any]) -> list[str]:
            hit = last.get(task)
            if hit is None or hit[0] is not cands or hit[2] != len(cands):
                hit = last[task] = (cands, [str(c) for c in cands], len(cands))
            return list(hit[1])

        def lookup(doc_index: int) -> dict[str, list[str]]:
            per_task = candidates if isinstance(candidates, dict) else {t: candidates for t in self._tasks()}
            out = {}
            for key, cands in per_task.items():
                task = {"span": SPAN, "triplet": TRIPLET}.get(str(key).lower(), None)
                if task is None:
                    raise ValueError(f"candidate keys must be 'span' or 'triplet', got {list(per_task)}")
                if cands and isinstance(cands[0], (list, tuple)):
                    if doc_index >= len(cands):
                        raise ValueError(f"candidates given for {len(cands)} documents, but document {doc_index} "
                                         "has none")
                    cands = cands[doc_index]
                out[task] = strings(task, cands)
            return out

        return lookup

    def _candidate_text(self, doc: Any) -> str:
        text = doc.document.text if hasattr(doc, "document") else str(doc)
        if self.config.metadata_fields and hasattr(doc, "document"):
            meta = doc.document.metadata or {}
            text += "".join(str(meta.get(f, "")) for f in self.config.metadata_fields)
        return text

    def _prepare(self, chunk: Chunk, top_k: int) -> Chunk:
        """Host side of a chunk: candidates retrieved where none were given, reader rows built."""
        windows = chunk.windows
        t = time.perf_counter()
        for task in self._tasks():
            need = [i for i, w in enumerate(windows)
                    if (w.span_candidates if task == SPAN else w.triplet_candidates) is None]
            if not need:
                continue
            retriever = self.retrievers.get(task)
            if retriever is None:
                raise ValueError(f"no {task} retriever loaded and no {task} candidates given")
            topics = [windows[i].doc_topic for i in need] if self.config.use_doc_topic else None
            docs = retriever.retrieve([windows[i].text for i in need], k=top_k, doc_topics=topics)
            for i, ds in zip(need, docs, strict=True):
                chunk.retrieved.setdefault(task, [None] * len(windows))[i] = ds
                texts = [self._candidate_text(d) for d in ds]
                if task == SPAN:
                    windows[i].span_candidates = texts
                else:
                    windows[i].triplet_candidates = texts
        self.times.add("retrieval", t)
        chunk.rows = self.reader.rows(windows) if windows else []
        return chunk

    def _finish(self, chunk: Chunk) -> None:
        """Device side of a chunk, then decoding and merging into its documents."""
        windows, retrieved = chunk.windows, chunk.retrieved
        predictions = self.reader.decode(len(windows), chunk.rows, self.reader.forward(chunk.rows))
        t = time.perf_counter()
        for k, ((merge, window), pred) in enumerate(zip(chunk.pending, predictions, strict=True)):
            window.predicted_spans = list(pred.spans)  # decoding gives Python ints and strs
            if isinstance(pred, SpanWindowPrediction):
                window.predicted_span_probs = dict(pred.span_probabilities)
            else:
                window.predicted_triplets = list(pred.triplets)
            # the output reports the retrieved passages (with their scores), not just their texts
            merge.add(window, span_candidates=retrieved[SPAN][k] if SPAN in retrieved else None,
                      triplet_candidates=retrieved[TRIPLET][k] if TRIPLET in retrieved else None)
        self.times.add("merge", t)


@dataclasses.dataclass
class Chunk:
    """Up to `chunk_windows` windows on their way through the pipeline, and the documents they complete."""

    pending: list[tuple[DocumentMerge, Window]]  # (its document's merge, window), in document order
    done: list[DocumentMerge]  # documents whose every window is in this chunk or an earlier one
    rows: list[Any] = dataclasses.field(default_factory=list)
    retrieved: dict[str, list[Any]] = dataclasses.field(default_factory=dict)

    @property
    def windows(self) -> list[Window]:
        return [w for _, w in self.pending]
