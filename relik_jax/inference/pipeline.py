"""End-to-end ReLiK: text -> windows -> retrieve -> read -> merge, as the reference's `Relik.__call__`.

    relik = Relik.from_pretrained("path/to/pipeline")        # our folder (see `save_pretrained`)
    out = relik("Michael Jordan was one of the best players in the NBA.")
    out.spans, out.triplets, out.entities()

Documents stream through in chunks of windows (`chunk_windows`), so a corpus or a single very long document is
annotated with memory bounded by the chunk, not by the input: per document only the merged predictions (and,
unless `keep_candidates=False`, references to the retrieved candidates) are kept until it is complete.
Windows are processed in document order (the reference does not sort at inference either).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from relik_jax.inference.merge import DocumentMerge
from relik_jax.inference.outputs import RelikOutput
from relik_jax.inference.validation import accepts_documents, isolates_documents
from relik_jax.labels import NME
from relik_jax.reader.convert import load_reader, save_reader
from relik_jax.reader.inputs import ReaderWindow
from relik_jax.reader.reader import Reader, SpanWindowPrediction
from relik_jax.retriever.encoder import Retriever, load_encoder, save_encoder
from relik_jax.retriever.index import DocumentIndex
from relik_jax.text.windows import Window, WindowSplitter
from relik_jax.text.words import tokenize

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

    def _tasks(self) -> list[str]:
        return [SPAN, TRIPLET] if self.config.task == BOTH else [self.config.task]

    # ------------------------------------------------------------------------------------------ persistence
    @classmethod
    def from_pretrained(cls, folder: str | Path, *, dtype: str = "fp32", **overrides: Any) -> Relik:
        """Our pipeline folder: `relik.json` + `reader/` + optional `retriever-span/`, `index-span/`, ..."""
        folder = Path(folder)
        cfg_path = folder / "relik.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{folder}: no relik.json (convert a reference pipeline with `relik-jax convert`)")
        raw = json.loads(cfg_path.read_text())
        config = RelikConfig(**{k: v for k, v in raw.items() if k in {f.name for f in dataclasses.fields(RelikConfig)}})
        reader = Reader.from_folder(folder / "reader", dtype=dtype, use_nme=config.use_nme,
                                    relation_threshold=config.relation_threshold)
        retrievers = {}
        for task in (SPAN, TRIPLET):
            enc = folder / f"retriever-{task}"
            if enc.is_dir():
                index = folder / f"index-{task}"
                retrievers[task] = Retriever.from_pretrained(enc, index if index.is_dir() else None)
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
        pending: list[tuple[DocumentMerge, Window]] = []
        open_docs: list[DocumentMerge] = []

        def flush() -> Iterator[RelikOutput]:
            if pending:
                self._process(pending, top_k)
                if progress is not None:
                    progress(len(pending))
                pending.clear()
            # every document except the last opened one is complete once its windows are processed
            while len(open_docs) > 1:
                yield open_docs.pop(0).output()

        for doc_index, text in enumerate(texts):
            if isinstance(text, list):
                text, split = " ".join(text), True
            else:
                split = is_split_into_words
            if not isinstance(text, str):
                raise TypeError(f"document {doc_index}: expected str or list of words, got {type(text).__name__}")
            words = tokenize(text, is_split_into_words=split)
            state = DocumentMerge(doc_index, text, [w.text for w in words], keep_windows=return_windows,
                                  keep_candidates=keep_candidates, raw=self.config.raw_output)
            open_docs.append(state)
            doc_cands = self._doc_candidates(candidates, doc_index)
            for window in self.splitter.split_document(text, doc_index, words):
                window.span_candidates = doc_cands.get(SPAN)
                window.triplet_candidates = doc_cands.get(TRIPLET)
                pending.append((state, window))
                if len(pending) >= self.config.chunk_windows:
                    yield from flush()
        # A blank document has no window: it still gets an (empty) output, in input order.
        yield from flush()
        while open_docs:
            yield open_docs.pop(0).output()

    # ------------------------------------------------------------------------------------------- internals
    def _doc_candidates(self, candidates: Any, doc_index: int) -> dict[str, list[str] | None]:
        if candidates is None:
            return {}
        per_task = candidates if isinstance(candidates, dict) else {t: candidates for t in self._tasks()}
        out = {}
        for task, cands in per_task.items():
            task = {"span": SPAN, "triplet": TRIPLET}.get(str(task).lower(), None)
            if task is None:
                raise ValueError(f"candidate keys must be 'span' or 'triplet', got {list(per_task)}")
            if cands and isinstance(cands[0], (list, tuple)):
                if doc_index >= len(cands):
                    raise ValueError(f"candidates given for {len(cands)} documents, but document {doc_index} "
                                     "has none")
                cands = cands[doc_index]
            out[task] = [str(c) for c in cands]
        return out

    def _candidate_text(self, doc: Any) -> str:
        text = doc.document.text if hasattr(doc, "document") else str(doc)
        if self.config.metadata_fields and hasattr(doc, "document"):
            meta = doc.document.metadata or {}
            text += "".join(str(meta.get(f, "")) for f in self.config.metadata_fields)
        return text

    def _process(self, pending: list[tuple[DocumentMerge, Window]], top_k: int) -> None:
        windows = [w for _, w in pending]
        retrieved: dict[str, list[Any]] = {}
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
                retrieved.setdefault(task, [None] * len(windows))[i] = ds
                texts = [self._candidate_text(d) for d in ds]
                if task == SPAN:
                    windows[i].span_candidates = texts
                else:
                    windows[i].triplet_candidates = texts
        reader_windows = [
            ReaderWindow(list(w.words), [int(s) for s in w.word_starts], [int(e) for e in w.word_ends],
                         first_word_index=w.first_word, span_candidates=w.span_candidates,
                         triplet_candidates=w.triplet_candidates, doc_id=w.doc_id, window_id=w.window_id,
                         offset=w.offset)
            for w in windows
        ]
        predictions = self.reader.read(reader_windows)
        for k, ((merge, window), pred) in enumerate(zip(pending, predictions, strict=True)):
            window.predicted_spans = [(int(s), int(e), str(t)) for s, e, t in pred.spans]
            if isinstance(pred, SpanWindowPrediction):
                window.predicted_span_probs = dict(pred.span_probabilities)
            else:
                window.predicted_triplets = list(pred.triplets)
            # the output reports the retrieved passages (with their scores), not just their texts
            merge.add(window, span_candidates=retrieved[SPAN][k] if SPAN in retrieved else None,
                      triplet_candidates=retrieved[TRIPLET][k] if TRIPLET in retrieved else None)
