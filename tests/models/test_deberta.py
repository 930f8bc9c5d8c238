"""DeBERTa-v2/v3 parity against transformers.DebertaV2Model (PyTorch, fp32, random init)."""

import json

import numpy as np
import pytest
import torch
from flax import nnx
from transformers import DebertaV2Config as TorchConfig
from transformers import DebertaV2Model as TorchModel
from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

from relik_jax.engine.compiled import CompiledForward
from relik_jax.io import hf_io
from relik_jax.models import backbones
from relik_jax.models.deberta import DebertaV2Config, relative_positions, set_attention_blocking

V3 = dict(relative_attention=True, position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
          pos_att_type=["p2c", "c2p"], position_biased_input=False, max_relative_positions=-1,
          type_vocab_size=0, layer_norm_eps=1e-7, max_position_embeddings=512, pad_token_id=0)
CONFIGS = {
    "tiny-v3": dict(V3, vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=128),
    "v3-base-shape-2-layers": dict(V3, vocab_size=1200, hidden_size=768, num_hidden_layers=2,
                                   num_attention_heads=12, intermediate_size=3072),
    # v2-style variant: no log buckets, c2p only, absolute positions, token types, factorised embeddings.
    "v2-variant": dict(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=96, relative_attention=True, position_buckets=-1, max_relative_positions=96,
                       share_att_key=True, pos_att_type=["c2p"], norm_rel_ebd="none", position_biased_input=True,
                       type_vocab_size=2, embedding_size=32, layer_norm_eps=1e-7, max_position_embeddings=1024),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def models(request, tmp_path_factory):
    cfg = TorchConfig(**CONFIGS[request.param])
    torch.manual_seed(int(np.random.default_rng().integers(1 << 30)))
    torch_model = TorchModel(cfg).eval()
    with torch.no_grad():  # HF zero-inits LayerNorm biases; randomise them so the test sees every term
        for name, p in torch_model.named_parameters():
            if "LayerNorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp(request.param)
    torch_model.save_pretrained(folder)
    _, model = backbones.load_deberta(folder)
    return request.param, torch_model, CompiledForward(model), folder


def _compare(name, torch_model, forward, length):
    seed = int(np.random.default_rng().integers(1 << 30))
    rng = np.random.default_rng(seed)
    vocab = torch_model.config.vocab_size
    ids = rng.integers(1, vocab, size=(3, length))
    mask = np.ones((3, length), dtype=np.int64)
    mask[1, max(1, length // 2):] = 0  # padded rows
    mask[2, max(1, length - 3):] = 0
    types = (np.arange(length)[None] >= length // 2).astype(np.int64).repeat(3, 0)
    with torch.no_grad():
        ref = torch_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                          token_type_ids=torch.tensor(types)).last_hidden_state.numpy()
    ours = np.asarray(forward(ids, mask, types))
    err = np.abs(ours - ref)[mask.astype(bool)].max()
    print(f"{name} L={length}: max abs diff {err:.2e}")
    assert err <= 1e-4, f"{name} L={length} seed={seed}: max abs diff {err}"


@pytest.mark.parametrize("length", [1, 7, 300, 700])
def test_last_hidden_state_matches_transformers(models, length):
    name, torch_model, forward, _ = models
    _compare(name, torch_model, forward, length)


@pytest.mark.parametrize("heads_per_step", [1, 4])
def test_cpu_attention_blocking_matches_transformers(models, heads_per_step):
    """The CPU inference path (attention one row and `heads_per_step` heads at a time, `Reader` on CPU)."""
    name, torch_model, _, folder = models
    _, model = backbones.load_deberta(folder)
    set_attention_blocking(model, heads_per_step)
    steps = {m.heads_per_step for _, m in nnx.iter_graph(model) if hasattr(m, "heads_per_step")}
    heads = torch_model.config.num_attention_heads
    assert steps == {max(s for s in range(1, min(heads_per_step, heads) + 1) if heads % s == 0)}
    forward = CompiledForward(model)
    for length in (7, 300):
        _compare(name, torch_model, forward, length)


def test_log_buckets_match_transformers_exactly():
    # The ceil() of a float32 log is precision-sensitive: compare every relative distance up to 2047.
    for bucket, max_pos in [(256, 512), (256, 1024), (64, 128)]:
        ours = relative_positions(2048, bucket, max_pos)
        rel = torch.arange(2048)[:, None] - torch.arange(2048)[None, :]
        ref = make_log_bucket_position(rel, bucket, max_pos).to(torch.long).numpy()
        np.testing.assert_array_equal(ours, ref)


def test_bf16_relative_error_is_bounded(tmp_path):
    cfg = TorchConfig(**CONFIGS["tiny-v3"])
    torch.manual_seed(0)
    TorchModel(cfg).save_pretrained(tmp_path)
    _, fp32 = backbones.load_deberta(tmp_path)
    _, bf16 = backbones.load_deberta(tmp_path, dtype="bf16")
    ids = np.random.default_rng(1).integers(1, 1000, size=(2, 128))
    mask = np.ones_like(ids)
    a = np.asarray(CompiledForward(fp32)(ids, mask))
    b = np.asarray(CompiledForward(bf16)(ids, mask))
    rel = np.linalg.norm(b - a) / np.linalg.norm(a)
    print(f"DeBERTa bf16 vs fp32 relative error: {rel:.2e}")
    assert 0 < rel <= 2e-2


@pytest.mark.parametrize("bad, message", [
    ({"conv_kernel_size": 3}, "ConvLayer"),
    ({"share_att_key": False}, "share_att_key"),
    ({"pos_att_type": ["p2p"]}, "pos_att_type"),
    ({"relative_attention": False}, "relative_attention"),
    ({"model_type": "deberta"}, "model_type"),
])
def test_unsupported_configs_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        DebertaV2Config.from_dict({**CONFIGS["tiny-v3"], "model_type": "deberta-v2", **bad})


def test_export_round_trips_through_transformers(tmp_path):
    cfg = TorchConfig(**CONFIGS["tiny-v3"])
    torch.manual_seed(3)
    ref = TorchModel(cfg).eval()
    ref.save_pretrained(tmp_path / "a")
    config, model = backbones.load_deberta(tmp_path / "a")
    hf_io.save_folder(model, config.to_dict(), tmp_path / "b")
    assert json.loads((tmp_path / "b" / "config.json").read_text())["model_type"] == "deberta-v2"
    back = TorchModel.from_pretrained(tmp_path / "b").eval()
    for (k, v), (k2, v2) in zip(ref.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2), k


def test_fp64_needs_x64_and_says_so():
    import jax
    import pytest

    from relik_jax.models import layers

    with jax.enable_x64(False), pytest.raises(ValueError, match="jax_enable_x64"):
        layers.compute_dtype("fp64")
    with jax.enable_x64(True):
        assert layers.compute_dtype("fp64") == jax.numpy.float64
        assert layers.wide(layers.compute_dtype("fp64")) == jax.numpy.float64
    assert layers.wide(layers.compute_dtype("bf16")) == jax.numpy.float32
