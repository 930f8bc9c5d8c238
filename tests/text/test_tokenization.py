"""Tokenizers load from local folders; DeBERTa-v3 from spm.model avoids the transformers-5 vocab_file trap."""

import sentencepiece as spm

from relik_jax.text.tokenization import load_tokenizer, special_token_id

TEXTS = ["Barack Obama was born in Honolulu in 1961.", "Paris is the capital of France.",
         "  spaces   and\ttabs ", "Zürich naïve café"]


def _train_spm(folder):
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(f"{t} number {i}" for i in range(300) for t in TEXTS))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "spm"), vocab_size=80,
                                   model_type="unigram", pad_id=0, unk_id=3, bos_id=-1, eos_id=-1,
                                   user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], pad_piece="[PAD]",
                                   unk_piece="[UNK]", minloglevel=2)
    return spm.SentencePieceProcessor(model_file=str(folder / "spm.model"))


def test_deberta_v3_tokenizer_from_spm_matches_sentencepiece(tmp_path):
    sp = _train_spm(tmp_path)
    tok = load_tokenizer(tmp_path)
    assert tok.get_vocab_size() >= sp.get_piece_size()  # not the 7-token placeholder vocabulary
    for text in TEXTS:
        assert tok.encode(text, add_special_tokens=False).ids == sp.encode(text), text
    assert special_token_id(tok, "[SEP]") == sp.piece_to_id("[SEP]")
