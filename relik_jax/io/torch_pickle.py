"""Read and write PyTorch `torch.save` zip files without torch.

Reference checkpoints ship `pytorch_model.bin` (an OrderedDict of tensors) and index folders ship
`embeddings.pt` (a single fp16 tensor). Both are zip archives holding `<name>/data.pkl`, which rebuilds tensors
from raw little-endian storages `<name>/data/<key>`. A restricted unpickler maps the handful of torch globals
those pickles use onto numpy, so no torch (and no arbitrary code execution) is needed at runtime.

torch stores every record uncompressed at a 64-byte aligned offset, so `load(path, mmap=True)` maps the storages
in place (a 9 GB index costs no RAM until rows are used); `save` writes the same aligned layout, streaming large
(memory-mapped) arrays chunk by chunk.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from relik_jax.io import arrays

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.name = name


# torch's writer (caffe2/serialize/inline_container.cc) pads each record's local header with an "FB" extra field
# so that the data starts at a multiple of 64 bytes.
ALIGNMENT = 64
_PAD_FIELD_ID = 0x4246  # b"FB"
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header: 30 bytes, name / extra lengths last


def _np_dtype(spec: Any) -> np.dtype:
    if spec == "bfloat16":
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(spec)


def _contiguous_strides(size: tuple, stride: tuple) -> bool:
    expected = 1
    for n, s in zip(reversed(size), reversed(stride), strict=True):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    if len(size) == 0:
        return storage[offset].copy()
    numel = int(np.prod(size, dtype=np.int64))
    if _contiguous_strides(tuple(size), tuple(stride)):
        # A view, no copy: for a memory-mapped storage the tensor stays on disk.
        return storage[offset : offset + numel].reshape(tuple(size))
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
    )
    return np.ascontiguousarray(view)


def _rebuild_parameter(data: np.ndarray, *_: Any) -> np.ndarray:
    return data


class _Unpickler(pickle.Unpickler):
    """Allows only the globals a tensor/state-dict pickle needs."""

    def __init__(self, file: io.BufferedIOBase, archive: zipfile.ZipFile, prefix: str, path: Path | None):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._path = path  # set: map stored records instead of reading them
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name in ("float32", "float16", "bfloat16", "int64", "bool"):
            return name
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: not a plain tensor checkpoint")

    def persistent_load(self, pid: Any) -> np.ndarray:
        # ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if key not in self._storages:
            dtype_spec = (
                _STORAGE_DTYPES[storage_type.name] if isinstance(storage_type, _StorageType) else None
            )
            if dtype_spec is None:
                # torch>=2 writes TypedStorage with a dtype name instead of a storage class.
                dtype_spec = {
                    "float32": np.float32,
                    "float16": np.float16,
                    "bfloat16": "bfloat16",
                    "int64": np.int64,
                    "bool": np.bool_,
                }[storage_type]
            name, dtype = f"{self._prefix}/data/{key}", _np_dtype(dtype_spec)
            info = self._archive.getinfo(name)
            if self._path is not None and info.compress_type == zipfile.ZIP_STORED:
                offset = record_offset(self._archive, info)
                self._storages[key] = arrays.map_array(self._path, dtype, (info.file_size // dtype.itemsize,), offset)
            else:
                self._storages[key] = np.frombuffer(self._archive.read(name), dtype=dtype)
        return self._storages[key]


def record_offset(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """Byte offset of a stored record's data in the archive file (read from its local header, whose extra field
    may differ from the central directory's)."""
    fp = archive.fp
    fp.seek(info.header_offset)
    header = _LOCAL_HEADER.unpack(fp.read(_LOCAL_HEADER.size))
    if header[0] != b"PK\x03\x04":
        raise ValueError(f"{archive.filename}: bad local header for {info.filename}")
    name_length, extra_length = header[-2], header[-1]
    return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def load(path: str | Path, mmap: bool = False) -> Any:
    """Load a `torch.save` zip file: tensors come back as numpy arrays (dicts stay dicts).

    mmap: tensors are read-only memory maps of the file (contiguous tensors of uncompressed records, i.e. every
    file torch writes); the file must stay in place while they are used.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path}: not a torch zip checkpoint (legacy non-zip torch pickles are not supported)"
        )
    with zipfile.ZipFile(path) as archive:
        pkl = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise ValueError(f"{path}: expected exactly one */data.pkl in the archive, found {pkl}")
        prefix = pkl[0][: -len("/data.pkl")]
        with archive.open(pkl[0]) as f:
            return _Unpickler(io.BytesIO(f.read()), archive, prefix, path if mmap else None).load()


_DTYPE_TO_STORAGE = {_np_dtype(v): k for k, v in _STORAGE_DTYPES.items()}


class _Pickler(
    pickle._Pickler
):  # the pure-Python pickler lets us write torch globals without importing torch
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _StorageRef):
            return ("storage", obj.storage_cls, obj.key, "cpu", obj.numel)
        return None

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


class _StorageRef:
    def __init__(self, storage_cls: Any, key: str, numel: int):
        self.storage_cls, self.key, self.numel = storage_cls, key, numel


class _Global:
    """Pickles as a reference to `module.name` without importing it."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __reduce__(self) -> str:
        return self.name

    def __call__(self, *args: Any) -> Any:  # pickle only checks that a reduce function is callable
        raise TypeError(f"{self.module}.{self.name} is a pickling placeholder")


def save(
    obj: np.ndarray | dict[str, np.ndarray],
    path: str | Path,
    archive_name: str = "archive",
    dtype: np.dtype | str | None = None,
) -> None:
    """Write numpy arrays (or a flat dict of them) as a `torch.save`-compatible zip (torch.load reads it).

    Records are stored uncompressed at 64-byte aligned offsets, as torch writes them (so `load(mmap=True)` and
    torch's own mmap loading work), and streamed chunk by chunk: a memory-mapped array is never copied whole.
    dtype: store every tensor as this dtype (converted chunk by chunk, e.g. fp32 vectors → fp16 on disk).
    """
    rebuild = _Global("torch._utils", "_rebuild_tensor_v2")
    records: dict[str, tuple[np.ndarray, np.dtype]] = {}

    def tensor(array: np.ndarray) -> _Reduce:
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        target = np.dtype(dtype or array.dtype)
        key = str(len(records))
        records[key] = (array, target)
        storage_cls = _Global("torch", _DTYPE_TO_STORAGE[target])
        strides = tuple(int(np.prod(array.shape[i + 1 :], dtype=np.int64)) for i in range(array.ndim))
        return _Reduce(
            rebuild,
            (_StorageRef(storage_cls, key, array.size), 0, array.shape, strides, False, collections.OrderedDict()),
        )

    if isinstance(obj, np.ndarray):
        payload: Any = tensor(obj)
    else:
        payload = collections.OrderedDict((k, tensor(np.asarray(v))) for k, v in obj.items())
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(payload)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        _write_record(archive, f"{archive_name}/data.pkl", buf.getvalue())
        _write_record(archive, f"{archive_name}/byteorder", b"little")
        for key, (array, target) in records.items():
            _write_record(archive, f"{archive_name}/data/{key}", array, target)
        _write_record(archive, f"{archive_name}/version", b"3\n")


def _write_record(
    archive: zipfile.ZipFile, name: str, data: bytes | np.ndarray, dtype: np.dtype | None = None
) -> None:
    """One stored record whose data starts at a multiple of ALIGNMENT (padding in an "FB" extra field)."""
    nbytes = data.size * np.dtype(dtype or data.dtype).itemsize if isinstance(data, np.ndarray) else len(data)
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = nbytes
    zip64 = nbytes * 1.05 > zipfile.ZIP64_LIMIT  # the rule zipfile applies when opening a record to write
    # header = 30 bytes + name + extra (+ 20 bytes of zip64 sizes, which zipfile appends after our extra)
    header = _LOCAL_HEADER.size + len(name.encode("utf-8")) + (20 if zip64 else 0)
    pad = -(archive.fp.tell() + header + 4) % ALIGNMENT  # the extra field itself has a 4-byte id + length
    info.extra = struct.pack("<HH", _PAD_FIELD_ID, pad) + b"Z" * pad
    with archive.open(info, "w", force_zip64=zip64) as out:
        if isinstance(data, np.ndarray):
            rows = data.reshape(1) if data.ndim == 0 else data  # C order: rows in sequence = the flat buffer
            for _, chunk in arrays.iter_chunks(rows, dtype=dtype):
                out.write(chunk.reshape(-1).view(np.uint8))
        else:
            out.write(data)


class _Reduce:
    def __init__(self, fn: Any, args: tuple):
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple:
        return (self.fn, self.args)
