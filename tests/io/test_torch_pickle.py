"""torch.save zip files read and written without torch, checked against real torch."""

import numpy as np
import pytest
import torch

from relik_jax.io import torch_pickle


def test_reads_what_torch_writes(tmp_path):
    sd = {"w": torch.randn(3, 4), "h": torch.randn(5).half(), "t": torch.arange(6).view(2, 3).t(),
          "b": torch.randn(4, 2).bfloat16(), "mask": torch.tensor([True, False])}
    torch.save(sd, tmp_path / "x.bin")
    out = torch_pickle.load(tmp_path / "x.bin")
    assert list(out) == list(sd)
    for k, v in sd.items():
        np.testing.assert_array_equal(np.asarray(out[k], dtype=np.float32), v.float().numpy())
    assert out["h"].dtype == np.float16


def test_torch_reads_what_we_write(tmp_path):
    emb = np.random.default_rng(0).standard_normal((7, 3)).astype(np.float16)
    torch_pickle.save(emb, tmp_path / "embeddings.pt")
    back = torch.load(tmp_path / "embeddings.pt")  # weights_only=True by default: only safe globals allowed
    assert back.dtype == torch.float16 and torch.equal(back, torch.from_numpy(emb))
    torch_pickle.save({"a": np.ones((2, 2), np.float32)}, tmp_path / "sd.bin")
    assert torch.equal(torch.load(tmp_path / "sd.bin")["a"], torch.ones(2, 2))


def test_refuses_arbitrary_globals(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.bin")
    with pytest.raises(Exception, match="refusing to unpickle"):
        torch_pickle.load(tmp_path / "evil.bin")
