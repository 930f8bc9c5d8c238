"""`TripletReader.relate_pairs` (real pairs only, flattened across rows) equals `relate` bit for bit."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from relik_jax.models.deberta import DebertaV2Config
from relik_jax.reader.model import TRIPLET_ARCH, ReaderConfig, build_reader


def _flatten(counts: np.ndarray, chunk: int):
    flat_row = np.concatenate([np.full(n, b) for b, n in enumerate(counts)]).astype(np.int32)
    flat_slot = np.concatenate([np.arange(n) for n in counts]).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    subj, obj = [], []
    for b, n in enumerate(counts):
        i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        subj.append(offsets[b] + i.ravel())
        obj.append(offsets[b] + j.ravel())
    subj, obj = np.concatenate(subj), np.concatenate(obj)
    padded = -(-len(subj) // chunk) * chunk
    pad = lambda a: np.concatenate([a, np.zeros(padded - len(a), np.int64)]).astype(np.int32)  # noqa: E731
    return flat_row, flat_slot, pad(subj), pad(obj), np.arange(padded) < len(subj)


@pytest.mark.parametrize("typed", [False, True])
def test_relate_pairs_equals_relate(typed):
    cfg = ReaderConfig(architecture=TRIPLET_ARCH, additional_special_symbols=6,
                       additional_special_symbols_types=5 if typed else 0, linears_hidden_size=32,
                       entity_type_loss=typed, add_entity_embedding=typed)
    backbone = DebertaV2Config(vocab_size=200, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64)
    model = build_reader(cfg, backbone, rngs=nnx.Rngs(0))
    model.eval()
    rng = np.random.default_rng(0)
    b, length, s, lt, t, r = 3, 40, 8, 16, 5, 6
    features = jnp.asarray(rng.normal(size=(b, length, 32)), jnp.float32)
    starts = jnp.asarray(np.sort(rng.choice(lt, size=(b, s)), axis=1), jnp.int32)
    end_pred = jnp.asarray(rng.random((b, s, lt)) < 0.15)
    type_pos = jnp.asarray(np.tile(np.arange(20, 25), (b, 1)), jnp.int32)
    rel_pos = jnp.asarray(np.tile(np.arange(30, 36), (b, 1)), jnp.int32)
    rel_valid = jnp.asarray(rng.random((b, r)) < 0.8)
    counts = np.asarray(end_pred.sum((1, 2)))
    m = int(counts.max())
    ref = model.relate(features, starts, end_pred, type_pos, jnp.ones((b, t), bool), rel_pos, rel_valid, m, chunk=99)
    flat_row, flat_slot, subj, obj, valid = _flatten(counts, chunk=16)
    out = model.relate_pairs(features, starts, end_pred, m, flat_row, flat_slot, type_pos, jnp.ones((b, t), bool),
                             rel_pos, rel_valid, subj, obj, valid, 16, with_logits=True)
    k = 0
    for row, n in enumerate(counts):
        np.testing.assert_array_equal(np.asarray(out["re_probs"][k:k + n * n]),
                                      np.asarray(ref["re_probs"][row, :n, :n]).reshape(-1, r))
        np.testing.assert_array_equal(np.asarray(out["re_logits"][k:k + n * n]),
                                      np.asarray(ref["re_logits"][row, :n, :n]).reshape(-1, r, 2))
        k += n * n
    assert not np.asarray(out["re_probs"][k:]).any()  # padding pairs score nothing
    if typed:
        want = np.concatenate([np.asarray(ref["type_logits"][i, :n]) for i, n in enumerate(counts)])
        np.testing.assert_array_equal(np.asarray(out["type_logits"]), want)
