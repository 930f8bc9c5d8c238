"""Large arrays on disk: memory maps, streaming copies and `.npy` files written chunk by chunk.

A published index holds millions of rows (5.9M × 768 fp16 = 9 GB). Reading it whole, or converting it with
`astype`, needs several times the file size in RAM. Here arrays are memory-mapped and walked in row chunks; after
a chunk has been used its pages are dropped from this process' mapping (`madvise(MADV_DONTNEED)`), so the resident
set stays at one chunk while the kernel keeps the file in its page cache for the next reader.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# 32 Mi elements a chunk (64 MB of fp16): large enough for full disk / memcpy speed, small next to the array.
CHUNK_ELEMENTS = 1 << 25


def open_npy(path: str | Path, dtype: np.dtype | None = None) -> np.ndarray:
    """A `.npy` file as a read-only memory map (nothing is read until used).

    dtype: reinterpret the stored items (`.npy` headers cannot name ml_dtypes' bfloat16: np.save writes it as
    2-byte void, which this views back as `dtype`)."""
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    return array if dtype is None or array.dtype == dtype else array.view(dtype)


def map_array(path: str | Path, dtype: np.dtype, shape: tuple[int, ...], offset: int) -> np.ndarray:
    """Read-only memory map of `shape` `dtype` elements stored at byte `offset` of `path`."""
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def rows_per_chunk(array: np.ndarray, elements: int = CHUNK_ELEMENTS) -> int:
    """Rows of `array` in one chunk of about `elements` elements (at least one row)."""
    row = int(np.prod(array.shape[1:], dtype=np.int64)) if array.ndim > 1 else 1
    return max(1, elements // max(row, 1))


def _mapping(array: np.ndarray) -> mmap.mmap | None:
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


def release(array: np.ndarray) -> None:
    """Drop the resident pages behind `array` if it is (a view of) a read-only memory map; else nothing.

    Only this process' page-table entries go: the file stays in the page cache and the next access faults the
    pages back in, so this never changes what the array reads.
    """
    mapping = _mapping(array)
    if mapping is None or array.size == 0 or not hasattr(mmap, "MADV_DONTNEED"):
        return
    start_address = np.frombuffer(mapping, np.uint8, count=1).ctypes.data
    begin = array.ctypes.data - start_address
    end = begin + array.nbytes
    begin -= begin % mmap.PAGESIZE
    end = min(end, len(mapping))
    if 0 <= begin < end:
        mapping.madvise(mmap.MADV_DONTNEED, begin, end - begin)


def iter_chunks(
    array: np.ndarray, rows: int | None = None, dtype: np.dtype | str | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows [r, r + rows) as `dtype`) of `array` as C-contiguous in-memory copies; mapped pages are
    released after each chunk has been copied, so a memory-mapped source never becomes resident as a whole."""
    rows = rows or rows_per_chunk(array)
    for start in range(0, array.shape[0], rows):
        view = array[start : start + rows]
        chunk = np.array(view, dtype=dtype or view.dtype, order="C")
        release(view)
        yield start, chunk


def write_npy(path: str | Path, array: np.ndarray, dtype: np.dtype | str | None = None) -> None:
    """`np.save(path, array.astype(dtype))` written chunk by chunk (bounded memory for memory-mapped sources)."""
    dtype = np.dtype(dtype or array.dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(array.shape)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for _, chunk in iter_chunks(array, dtype=dtype):
            f.write(chunk.reshape(-1).view(np.uint8))


def create_npy(path: str | Path, shape: tuple[int, ...], dtype: np.dtype | str) -> np.ndarray:
    """A new zero-filled `.npy` file of `shape`, mapped for writing (sparse on disk until written)."""
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=shape)


def open_npy_for_update(path: str | Path, dtype: np.dtype | None = None) -> np.ndarray:
    """An existing `.npy` file mapped read-write (resume a partly written array); dtype as in `open_npy`."""
    array = np.load(path, mmap_mode="r+", allow_pickle=False)
    return array if dtype is None or array.dtype == dtype else array.view(dtype)
