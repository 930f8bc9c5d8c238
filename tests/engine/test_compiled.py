"""The jitted encoders compile once per padded shape; compiled programs persist across processes."""

import os
import subprocess
import sys

import numpy as np
from flax import nnx

from relik_jax import paths
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


def _cache_dir_in_fresh_process(env_value: str | None, user_dir: str | None = None) -> str:
    code = ("import jax\n"
            + (f"jax.config.update('jax_compilation_cache_dir', {user_dir!r})\n" if user_dir else "")
            + "from flax import nnx\nfrom relik_jax.engine.compiled import CompiledForward\n"
              "CompiledForward(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))\nprint(jax.config.jax_compilation_cache_dir)")
    env = {k: v for k, v in os.environ.items() if k != "RELIK_JAX_COMPILATION_CACHE"}
    if env_value is not None:
        env["RELIK_JAX_COMPILATION_CACHE"] = env_value
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def test_persistent_compilation_cache_on_by_default_and_configurable(tmp_path):
    assert _cache_dir_in_fresh_process(None) == str(paths.CACHE / "xla")
    assert _cache_dir_in_fresh_process(str(tmp_path / "x")) == str(tmp_path / "x")
    assert _cache_dir_in_fresh_process("0") == "None"
    assert _cache_dir_in_fresh_process(None, user_dir=str(tmp_path / "mine")) == str(tmp_path / "mine")
