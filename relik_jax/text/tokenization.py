"""Tokenizers from local folders, as `tokenizers.Tokenizer` objects (fast, no torch, no hub).

- `tokenizer.json` present: loaded directly.
- BERT-style `vocab.txt` only: converted once through transformers' tokenizer classes.
- DeBERTa-v3 `spm.model` only: converted with `DebertaV2Tokenizer.from_pretrained(folder)`. Never
  `DebertaV2TokenizerFast(vocab_file=...)`: transformers 5 silently ignores `vocab_file` there and returns a
  7-token vocabulary. Added tokens (`added_tokens.json`) come along with `from_pretrained`.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer


def load_tokenizer(folder: str | Path) -> Tokenizer:
    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(folder / "tokenizer.json"))
    if (folder / "spm.model").is_file():
        return deberta_v3_tokenizer(folder)
    if (folder / "vocab.txt").is_file():
        from transformers import BertTokenizer

        return BertTokenizer.from_pretrained(str(folder)).backend_tokenizer
    raise FileNotFoundError(f"{folder}: no tokenizer.json, spm.model or vocab.txt")


def deberta_v3_tokenizer(folder: str | Path) -> Tokenizer:
    """DeBERTa-v3 tokenizer from a folder holding `spm.model` (plus optional added/special token files)."""
    from transformers import DebertaV2Tokenizer

    folder = Path(folder)
    tok = DebertaV2Tokenizer.from_pretrained(str(folder))
    backend = tok.backend_tokenizer
    sp_size = _spm_size(folder / "spm.model")
    if backend.get_vocab_size(with_added_tokens=False) < min(sp_size, 100):
        raise RuntimeError(f"{folder}: spm.model conversion produced a {backend.get_vocab_size()}-token vocabulary")
    return backend


def _spm_size(path: Path) -> int:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(path)).get_piece_size()


def save_tokenizer(tokenizer: Tokenizer, folder: str | Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder / "tokenizer.json"


def special_token_id(tokenizer: Tokenizer, token: str) -> int:
    """Id of a token that must exist (e.g. '[CLS]', '[SEP]', '[E-0]'), or a clear error."""
    idx = tokenizer.token_to_id(token)
    if idx is None:
        raise KeyError(f"token {token!r} is not in the tokenizer vocabulary")
    return idx


def added_tokens(folder: str | Path) -> dict[str, int]:
    path = Path(folder) / "added_tokens.json"
    return json.loads(path.read_text()) if path.is_file() else {}
