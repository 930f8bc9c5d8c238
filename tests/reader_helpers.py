"""Tiny in-memory DeBERTa-v3-like tokenizer and random readers for fast unit tests (no reference needed)."""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from relik_jax.models.deberta import DebertaV2Config
from relik_jax.reader.convert import random_reader
from relik_jax.reader.inputs import relation_symbols, span_symbols
from relik_jax.reader.model import ReaderConfig

CORPUS = [
    "Barack Obama was born in Honolulu , Hawaii . He was the 44th president of the United States .",
    "Japan began the defence of their Asian Cup title with a lucky 2-1 win against Syria in a Group C match .",
    "Apple Inc. was founded by Steve Jobs and Steve Wozniak in Cupertino , California .",
    "The European Commission said on Thursday it disagreed with German advice to consumers .",
] * 20


def tiny_tokenizer(symbols: list[str]) -> Tokenizer:
    """Unigram + Metaspace (like DeBERTa-v3): [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3, [MASK] and `symbols` added."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=200, special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]"],
                                      unk_token="[UNK]", show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens([AddedToken("[MASK]", normalized=False, special=True)])
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in symbols])
    return tok


def tiny_backbone(vocab: int, hidden: int = 32, layers: int = 1, heads: int = 2) -> DebertaV2Config:
    return DebertaV2Config(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                           intermediate_size=2 * hidden)


def tiny_span_reader(seed: int = 0, binary_end: bool = False, n_symbols: int = 101):
    symbols = span_symbols(n_symbols - 1)
    tok = tiny_tokenizer(symbols)
    cfg = ReaderConfig(architecture="RelikReaderSpanModel", additional_special_symbols=n_symbols,
                       linears_hidden_size=16, binary_end_logits=binary_end)
    model = random_reader(cfg, tiny_backbone(tok.get_vocab_size()), seed=seed, std=0.2)
    return cfg, model, tok


def tiny_triplet_reader(seed: int = 0, types: int = 0, n_relations: int = 24):
    symbols = relation_symbols(n_relations) + (span_symbols(types - 1) if types else [])
    tok = tiny_tokenizer(symbols)
    cfg = ReaderConfig(architecture="RelikReaderREModel", additional_special_symbols=n_relations,
                       additional_special_symbols_types=types, linears_hidden_size=16, entity_type_loss=types > 0,
                       add_entity_embedding=types > 0)
    model = random_reader(cfg, tiny_backbone(tok.get_vocab_size()), seed=seed, std=0.2)
    return cfg, model, tok
