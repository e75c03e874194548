"""Read PyTorch checkpoint files into numpy without torch.

``torch.save`` writes one of two containers around the same pickle of tensors:

* the LEGACY format (torch < 1.6, or ``_use_new_zipfile_serialization=False``): a stream of pickles
  (magic number, protocol, system info, the object, the list of storage keys) followed by the raw
  bytes of every storage (an int64 element count, then the little-endian data);
* the ZIP format (torch >= 1.6): ``<name>/data.pkl`` plus one file ``<name>/data/<key>`` per storage.

Every pickle in either container (in the legacy format also the magic number, protocol, system info and
storage-key pickles) is read by one restricted :class:`pickle.Unpickler` that only knows how to rebuild
tensors, ordered dicts and a handful of harmless builtins; any other global in the file is refused with
an error naming it and the file, so loading a checkpoint never executes code from it. The result is the
nested python structure of the file with every tensor replaced by a ``numpy.ndarray`` (a copy,
C-contiguous, dtype as saved).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch storage class name -> numpy dtype
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
# torch dtype name (zip format may store torch.float32 etc. instead of a storage class) -> numpy dtype
_TORCH_DTYPES = {
    "float64": np.float64,
    "float32": np.float32,
    "float16": np.float16,
    "int64": np.int64,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}


class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co. inside the pickle."""

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)


class _Storage:
    """A lazily filled flat array; tensors are views into it."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype = np.dtype(dtype)
        self.numel = int(numel)
        self.data: np.ndarray | None = None


def _rebuild_tensor(storage: _Storage, storage_offset: int, size, stride, *unused) -> _TensorRef:
    return _TensorRef(
        storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride)
    )


class _TensorRef:
    """A tensor whose storage may not be read yet (the legacy format stores it after the pickle)."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialise(self) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise ValueError("tensor storage missing from the checkpoint")
        if not self.size:
            return np.array(flat[self.offset], dtype=flat.dtype)
        item = flat.dtype.itemsize
        extent = (
            self.offset + 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True) if n > 0)
        )
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, flat.dtype)
        if extent > flat.size:
            raise ValueError(f"tensor of size {self.size} runs past its storage ({flat.size} elements)")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *unused):
    return data


class _Namespace(dict):
    """Stands in for ``argparse.Namespace`` (training args saved beside the weights): a plain dict."""

    def __setstate__(self, state):
        self.update(state)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the allow-listed globals below (never imports a module)."""

    def __init__(self, file, storages: dict | None = None, storage_reader=None):
        super().__init__(file, encoding="latin1")
        self._storages = {} if storages is None else storages
        self._storage_reader = storage_reader

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in _TORCH_DTYPES:
            return _StorageType(_TORCH_DTYPES[name])
        if module == "builtins" and name in ("set", "frozenset", "slice", "complex"):
            return getattr(__import__("builtins"), name)
        if module == "argparse" and name == "Namespace":
            return _Namespace
        raise pickle.UnpicklingError(f"refusing global {module}.{name} (not a tensor, dict or plain value)")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if key not in self._storages:
            storage = _Storage(storage_type.dtype, numel)
            if self._storage_reader is not None:
                storage.data = self._storage_reader(key, storage.dtype)
            self._storages[key] = storage
        return self._storages[key]


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _TensorRef):
        return obj.materialise()
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _materialise(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialise(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v) for v in obj)
    return obj


def _load_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError(f"{path}: zip checkpoint without a single data.pkl (found {pkl})")
        prefix = pkl[0][: -len("data.pkl")]
        order = "little"
        if prefix + "byteorder" in names:
            order = archive.read(prefix + "byteorder").decode().strip()

        def read(key: str, dtype: np.dtype) -> np.ndarray:
            raw = archive.read(f"{prefix}data/{key}")
            return np.frombuffer(raw, dtype=dtype.newbyteorder("<" if order == "little" else ">")).astype(
                dtype
            )

        unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pkl[0])), {}, read)
        return _materialise(unpickler.load())


def _load_legacy(path: str) -> Any:
    with open(path, "rb") as f:
        magic = _RestrictedUnpickler(f).load()
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a torch checkpoint (bad magic number {magic!r})")
        protocol = _RestrictedUnpickler(f).load()
        if protocol != 1001:
            raise ValueError(f"{path}: unsupported legacy torch protocol {protocol}")
        _RestrictedUnpickler(f).load()  # sys_info: endianness and type sizes
        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(f, storages).load()
        keys = _RestrictedUnpickler(f).load()
        if not isinstance(keys, list) or any(str(k) not in storages for k in keys):
            raise ValueError(f"{path}: storage keys {keys!r} do not match the pickled tensors")
        for key in keys:
            storage = storages[str(key)]
            (numel,) = struct.unpack("<q", f.read(8))
            nbytes = numel * storage.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise ValueError(f"{path}: truncated storage {key} ({len(raw)} of {nbytes} bytes)")
            storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<")).astype(storage.dtype)
    return _materialise(obj)


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """Loads a ``torch.save`` file (legacy or zip container) with numpy arrays in place of tensors.

    Args:
      path: a ``.pth`` / ``.pt`` file.

    Returns:
      The saved python object (usually an ``OrderedDict`` name -> ``np.ndarray``).

    Raises:
      FileNotFoundError, ValueError or pickle.UnpicklingError naming the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"torch checkpoint not found: {path}")
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        return _load_legacy(path)
    except (pickle.UnpicklingError, ValueError, EOFError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: cannot read torch checkpoint: {e}") from e
