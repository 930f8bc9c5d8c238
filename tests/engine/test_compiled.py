"""The jitted encoders compile once per padded shape."""

import numpy as np
from flax import nnx

from relik_jax.engine.compiled import CompiledForward
from relik_jax.models.bert import BertConfig, BertModel
from relik_jax.models.deberta import DebertaV2Config, DebertaV2Model


def test_same_bucketed_shape_compiles_once():
    deberta = DebertaV2Model(DebertaV2Config(vocab_size=100, hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64), rngs=nnx.Rngs(0))
    bert = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64), rngs=nnx.Rngs(0))
    for model in (deberta, bert):
        forward = CompiledForward(model)
        rng = np.random.default_rng(0)
        outs = []
        for _ in range(3):  # different contents and padding, same padded shape
            ids = rng.integers(1, 100, size=(4, 64))
            mask = (np.arange(64)[None] < rng.integers(1, 65, size=(4, 1))).astype(np.int32)
            outs.append(forward(ids, mask))
        assert forward.num_compiles == 1
        assert forward._run._cache_size() == 1
        forward(np.ones((4, 128), np.int32), np.ones((4, 128), np.int32))  # a new bucket compiles once more
        assert forward.num_compiles == 2
        assert not np.allclose(outs[0], outs[1])
