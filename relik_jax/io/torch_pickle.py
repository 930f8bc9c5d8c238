"""Read and write PyTorch `torch.save` zip files without torch.

Reference checkpoints ship `pytorch_model.bin` (an OrderedDict of tensors) and index folders ship
`embeddings.pt` (a single fp16 tensor). Both are zip archives holding `<name>/data.pkl`, which rebuilds tensors
from raw little-endian storages `<name>/data/<key>`. A restricted unpickler maps the handful of torch globals
those pickles use onto numpy, so no torch (and no arbitrary code execution) is needed at runtime.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

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


def _np_dtype(spec: Any) -> np.dtype:
    if spec == "bfloat16":

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(spec)


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    if len(size) == 0:
        return storage[offset].copy()
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
    )
    return np.ascontiguousarray(view)


def _rebuild_parameter(data: np.ndarray, *_: Any) -> np.ndarray:
    return data


class _Unpickler(pickle.Unpickler):
    """Allows only the globals a tensor/state-dict pickle needs."""

    def __init__(self, file: io.BufferedIOBase, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
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
            raw = self._archive.read(f"{self._prefix}/data/{key}")
            self._storages[key] = np.frombuffer(raw, dtype=_np_dtype(dtype_spec))
        return self._storages[key]


def load(path: str | Path) -> Any:
    """Load a `torch.save` zip file: tensors come back as numpy arrays (dicts stay dicts)."""
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
            return _Unpickler(io.BytesIO(f.read()), archive, prefix).load()


class _TensorRef:
    """Stands for a tensor while pickling; `persistent_id` turns it into a storage reference."""

    def __init__(self, key: str, array: np.ndarray):
        self.key, self.array = key, array


_DTYPE_TO_STORAGE = {np.dtype(v): k for k, v in _STORAGE_DTYPES.items() if v != "bfloat16"}


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


def save(obj: np.ndarray | dict[str, np.ndarray], path: str | Path, archive_name: str = "archive") -> None:
    """Write numpy arrays (or a flat dict of them) as a `torch.save`-compatible zip (torch.load reads it)."""
    rebuild = _Global("torch._utils", "_rebuild_tensor_v2")
    blobs: dict[str, bytes] = {}

    def tensor(array: np.ndarray) -> tuple:
        array = np.ascontiguousarray(array)
        key = str(len(blobs))
        blobs[key] = array.tobytes()
        storage_cls = _Global("torch", _DTYPE_TO_STORAGE[array.dtype])
        strides = tuple(s // array.itemsize for s in array.strides)
        return _Reduce(
            rebuild,
            (
                _StorageRef(storage_cls, key, array.size),
                0,
                array.shape,
                strides,
                False,
                collections.OrderedDict(),
            ),
        )

    if isinstance(obj, np.ndarray):
        payload: Any = tensor(obj)
    else:
        payload = collections.OrderedDict((k, tensor(np.asarray(v))) for k, v in obj.items())
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(payload)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{archive_name}/data.pkl", buf.getvalue())
        archive.writestr(f"{archive_name}/byteorder", "little")
        for key, data in blobs.items():
            archive.writestr(f"{archive_name}/data/{key}", data)
        archive.writestr(f"{archive_name}/version", "3\n")


class _Reduce:
    def __init__(self, fn: Any, args: tuple):
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple:
        return (self.fn, self.args)
