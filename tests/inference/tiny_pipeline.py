"""A tiny random EL pipeline (reader + retriever + 8-title index) for tests and the service benchmark: model time is
milliseconds per document, so tests exercise the pipeline's code paths, not its accuracy."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reader_helpers import tiny_span_reader, tiny_tokenizer  # noqa: E402

from relik_jax.inference.pipeline import Relik, RelikConfig  # noqa: E402
from relik_jax.models.bert import BertConfig  # noqa: E402
from relik_jax.reader.convert import save_reader  # noqa: E402
from relik_jax.reader.reader import Reader  # noqa: E402
from relik_jax.retriever.encoder import GoldenRetrieverModel, Retriever, save_encoder  # noqa: E402
from relik_jax.retriever.index import Document  # noqa: E402
from relik_jax.text.tokenization import save_tokenizer  # noqa: E402

TITLES = ["Barack Obama", "Honolulu", "Hawaii", "United States", "Japan", "Syria", "Apple Inc.", "Steve Jobs"]


def tiny_parts(seed: int = 3):
    cfg, model, tok = tiny_span_reader(seed=seed)
    enc_tok = tiny_tokenizer([])
    enc_cfg = BertConfig(vocab_size=enc_tok.get_vocab_size(), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64)
    enc = GoldenRetrieverModel(enc_cfg, rngs=nnx.Rngs(0))
    retriever = Retriever(enc, enc_tok, batch_size=8)
    retriever.build_index([Document(text=t, id=i) for i, t in enumerate(TITLES)], progress=None)
    return (cfg, model, tok), (enc_cfg, enc, enc_tok), retriever


def tiny_relik(seed: int = 3, **overrides) -> Relik:
    (cfg, model, tok), _, retriever = tiny_parts(seed)
    overrides = {"top_k": 4, "window_size": 8, "window_stride": 4, **overrides}
    return Relik(Reader(cfg, model, tok), {"span": retriever}, **overrides)


def save_tiny_pipeline(folder: str | Path, seed: int = 3, **config) -> Path:
    """A pipeline folder `Relik.from_pretrained` (and `relik-jax annotate / serve`) loads."""
    folder = Path(folder)
    (cfg, model, tok), (enc_cfg, enc, enc_tok), retriever = tiny_parts(seed)
    save_reader(folder / "reader", cfg, model, tok)
    tok_folder = save_tokenizer(enc_tok, folder / "retriever-tokenizer").parent
    save_encoder(enc, enc_cfg, folder / "retriever-span", tokenizer_folder=tok_folder)
    retriever.index.save(folder / "index-span")
    config = RelikConfig(**{"top_k": 4, "window_size": 8, "window_stride": 4, **config})
    (folder / "relik.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    return folder
