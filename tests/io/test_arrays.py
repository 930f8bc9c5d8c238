"""Memory maps, page release and streamed writes (relik_jax.io.arrays) and torch zip records mapped in place."""

from __future__ import annotations

import zipfile

import ml_dtypes
import numpy as np
import pytest
import torch

from relik_jax.io import arrays, torch_pickle


def _rss_file_kb() -> int:
    """Resident file-backed pages of this process (kB), from /proc."""
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


def test_write_npy_streams_and_casts(tmp_path):
    a = np.random.default_rng(0).standard_normal((1000, 24)).astype(np.float32)
    arrays.write_npy(tmp_path / "a.npy", a, "float16")
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), a.astype(np.float16))
    mapped = arrays.open_npy(tmp_path / "a.npy")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    arrays.write_npy(tmp_path / "b.npy", mapped)  # memory map in, file out
    assert (tmp_path / "b.npy").read_bytes() == (tmp_path / "a.npy").read_bytes()
    arrays.write_npy(tmp_path / "empty.npy", np.zeros((0, 3), np.float32))
    assert np.load(tmp_path / "empty.npy").shape == (0, 3)


def test_bfloat16_npy_round_trip(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4).astype(ml_dtypes.bfloat16)
    arrays.write_npy(tmp_path / "a.npy", a)
    back = arrays.open_npy(tmp_path / "a.npy", np.dtype(ml_dtypes.bfloat16))
    assert back.dtype == ml_dtypes.bfloat16 and np.array_equal(back.astype(np.float32), a.astype(np.float32))


def test_release_drops_resident_pages_but_not_data(tmp_path):
    a = np.random.default_rng(1).standard_normal((4096, 1024)).astype(np.float32)  # 16 MB
    np.save(tmp_path / "a.npy", a)
    m = arrays.open_npy(tmp_path / "a.npy")
    before = _rss_file_kb()
    total = float(np.asarray(m, np.float64).sum())  # touches every page
    touched = _rss_file_kb()
    arrays.release(m)
    released = _rss_file_kb()
    assert touched - before > 12_000 and touched - released > 12_000, (before, touched, released)
    assert float(np.asarray(m, np.float64).sum()) == total  # pages fault back in from the page cache
    arrays.release(np.zeros(3))  # not a memory map: nothing happens


def test_iter_chunks_bounds_resident_pages(tmp_path):
    a = np.random.default_rng(2).standard_normal((8192, 1024)).astype(np.float32)  # 32 MB
    np.save(tmp_path / "a.npy", a)
    m = arrays.open_npy(tmp_path / "a.npy")
    base, peak, rows = _rss_file_kb(), 0, []
    for start, chunk in arrays.iter_chunks(m, rows=512, dtype=np.float16):
        peak = max(peak, _rss_file_kb() - base)
        rows.append((start, chunk.shape[0], chunk.dtype))
    assert rows[0] == (0, 512, np.float16) and len(rows) == 16
    assert peak < 8_000, f"{peak} kB of the 32 MB file stayed resident"  # ≈ one 2 MB chunk


@pytest.mark.parametrize("dtype", [np.float16, np.float32, ml_dtypes.bfloat16])
def test_torch_zip_records_are_aligned_and_mapped(tmp_path, dtype):
    a = np.random.default_rng(3).standard_normal((333, 17)).astype(dtype)
    torch_pickle.save(a, tmp_path / "e.pt")
    with zipfile.ZipFile(tmp_path / "e.pt") as z:
        assert all(torch_pickle.record_offset(z, info) % torch_pickle.ALIGNMENT == 0 for info in z.infolist())
    mapped = torch_pickle.load(tmp_path / "e.pt", mmap=True)
    assert isinstance(mapped, np.memmap) and mapped.dtype == dtype
    assert np.array_equal(mapped.view(np.uint8), a.view(np.uint8))
    t = torch.load(tmp_path / "e.pt", weights_only=True, mmap=True)  # torch's mmap loader needs the alignment
    assert np.array_equal(t.float().numpy(), a.astype(np.float32))


def test_torch_written_file_is_mapped_without_reading(tmp_path):
    x = torch.randn(300, 24).half()
    torch.save(x, tmp_path / "embeddings.pt")
    mapped = torch_pickle.load(tmp_path / "embeddings.pt", mmap=True)
    assert isinstance(mapped, np.memmap) and str(mapped.filename).endswith("embeddings.pt")
    np.testing.assert_array_equal(mapped, x.numpy())
    sd = {"t": torch.arange(6).view(2, 3).t(), "w": torch.randn(3, 4)}  # a strided tensor is copied
    torch.save(sd, tmp_path / "sd.bin")
    out = torch_pickle.load(tmp_path / "sd.bin", mmap=True)
    np.testing.assert_array_equal(out["t"], sd["t"].numpy())
    np.testing.assert_array_equal(out["w"], sd["w"].numpy())


def test_save_casts_while_streaming(tmp_path):
    a = np.random.default_rng(4).standard_normal((100, 8)).astype(np.float32)
    torch_pickle.save(a, tmp_path / "c.pt", dtype="float16")
    back = torch.load(tmp_path / "c.pt", weights_only=True)
    assert back.dtype == torch.float16 and np.array_equal(back.numpy(), a.astype(np.float16))
