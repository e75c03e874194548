"""Read PyTorch checkpoint files into numpy without torch.

``torch.save`` writes one of two containers around the same pickle of tensors:

* the LEGACY format (torch < 1.6, or ``_use_new_zipfile_serialization=False``): a stream of pickles
  (magic number, protocol, system info, the object, the list of storage keys) followed by the raw
  bytes of every storage (an int64 element count, then the data in the system info's byte order);
  a tensor may name a storage VIEW, a window ``(view_key, offset, numel)`` of a root storage;
* the ZIP format (torch >= 1.6): ``<name>/data.pkl`` plus one file ``<name>/data/<key>`` per storage.

Every pickle in either container (in the legacy format also the magic number, protocol, system info and
storage-key pickles) is read by one restricted :class:`pickle.Unpickler` that only knows how to rebuild
tensors, ordered dicts and a handful of harmless builtins; any other global in the file is refused with
an error naming it and the file, so loading a checkpoint never executes code from it.

Nothing a file claims is trusted before it is checked (:mod:`nemo_jax.models.weight_bounds`): a storage
is read only when the file holds its bytes, a tensor is viewed only when its offset, sizes and strides
are non-negative and every element it reads lies inside its storage, and all arrays read stay within
``MAX_EXPANSION`` times the file's size. A refusal names the file and the tensor's key. The result is
the nested python structure of the file with every tensor replaced by a ``numpy.ndarray`` (an owned
copy, C-contiguous, dtype as saved).
"""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import struct
import zipfile
import zlib
from typing import Any

import ml_dtypes  # registers bfloat16 with numpy: torch.BFloat16Storage tensors need it
import numpy as np

from nemo_jax.models.weight_bounds import ArrayBudget, WeightFileError, check_strided

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch storage class name -> numpy dtype
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
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
    "bfloat16": ml_dtypes.bfloat16,
    "int64": np.int64,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}
# Containers nested deeper than this are refused (a state_dict is 1 to 4 levels deep).
_MAX_DEPTH = 64
# What a hostile file can make the reading raise; each becomes a ValueError naming the file.
_READ_ERRORS = (
    pickle.UnpicklingError,
    ValueError,
    EOFError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    OverflowError,
    RecursionError,
    NotImplementedError,  # an unsupported zip compression method
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
)


class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co. inside the pickle."""

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)


class _Storage:
    """A flat array read from the file, lazily for the zip format (see :meth:`_Reader.storage_data`)."""

    def __init__(self, dtype: np.dtype, key: str):
        self.dtype, self.key = np.dtype(dtype), key
        self.data: np.ndarray | None = None


class _StorageView:
    """A legacy storage view: elements ``[offset, offset + numel)`` of ``root``."""

    def __init__(self, root, key: str, offset, numel):
        self.root, self.key, self.offset, self.numel = root, key, offset, numel
        self.dtype = root.dtype


class _TensorRef:
    """A tensor as pickled (arguments unchecked); viewed only by :meth:`_Reader.materialise`."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor(storage, storage_offset, size, stride, *unused) -> _TensorRef:
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *unused):
    return data


class _Namespace(dict):
    """Stands in for ``argparse.Namespace`` (training args saved beside the weights): a plain dict."""

    def __setstate__(self, state):
        self.update(state)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the allow-listed globals below (never imports a module)."""

    def __init__(self, file, storages: dict | None = None, make_storage=None):
        super().__init__(file, encoding="latin1")
        self._storages = {} if storages is None else storages
        self._make_storage = make_storage or _Storage

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
            return getattr(builtins, name)
        if module == "argparse" and name == "Namespace":
            return _Namespace
        raise pickle.UnpicklingError(f"refusing global {module}.{name} (not a tensor, dict or plain value)")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"storage {key!r:.40} of unsupported type {storage_type!r:.40}")
        if key not in self._storages:
            self._storages[key] = self._make_storage(storage_type.dtype, key)
        root = self._storages[key]
        if root.dtype != storage_type.dtype:
            raise pickle.UnpicklingError(
                f"storage {key!r:.40} pickled as both {root.dtype} and {storage_type.dtype}"
            )
        view = pid[5] if len(pid) > 5 else None
        if view is None:
            return root
        if not isinstance(view, tuple) or len(view) != 3:
            raise pickle.UnpicklingError(f"storage view {view!r:.80} is not (key, offset, numel)")
        view_key = str(view[0])
        if view_key not in self._storages:
            self._storages[view_key] = _StorageView(root, view_key, view[1], view[2])
        return self._storages[view_key]


class _Reader:
    """One checkpoint being read: its path and size, the budget of its arrays, its storage reader."""

    def __init__(self, path: str):
        self.path = path
        self.file_size = os.path.getsize(path)
        self.budget = ArrayBudget(self.file_size)
        self.read_storage = None  # zip: key, dtype -> flat array

    def storage_data(self, storage, what: str) -> np.ndarray:
        """The flat elements of a storage or storage view (reading a zip storage on first use)."""
        if isinstance(storage, _StorageView):
            root = self.storage_data(storage.root, what)
            where = f"{what}: storage view '{storage.key}' of '{storage.root.key}'"
            offset, _, _, numel = check_strided(
                storage.offset, (storage.numel,), (1,), root.size, self.file_size, where
            )
            return root[offset : offset + numel]
        if not isinstance(storage, _Storage):
            raise ValueError(f"{what}: its storage is a {type(storage).__name__}, not a torch storage")
        if storage.data is None and self.read_storage is not None:
            storage.data = self.read_storage(storage.key, storage.dtype)
        if storage.data is None:
            raise ValueError(f"{what}: tensor storage '{storage.key}' missing from the checkpoint")
        return storage.data

    def materialise(self, ref: _TensorRef, what: str) -> np.ndarray:
        """The tensor's values, after its view is checked to lie inside its storage and the budget."""
        flat = self.storage_data(ref.storage, what)
        offset, size, stride, numel = check_strided(
            ref.offset, ref.size, ref.stride, flat.size, self.file_size, what
        )
        if numel == 0:
            return np.zeros(size, flat.dtype)
        self.budget.take(numel * flat.dtype.itemsize, f"{what} of size {size}")
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=tuple(s * flat.dtype.itemsize for s in stride), writeable=False
        )
        return np.array(view, order="C", copy=True)

    def resolve(self, obj: Any) -> Any:
        """``obj`` with every tensor materialised; each container once (shared and cyclic ones kept so)."""
        done: dict[int, Any] = {}

        def walk(o, where: tuple, depth: int):
            if depth > _MAX_DEPTH:
                raise ValueError(f"containers nested deeper than {_MAX_DEPTH} levels (at {_describe(where)})")
            if id(o) in done:
                return done[id(o)]
            if isinstance(o, _TensorRef):
                out = self.materialise(o, f"tensor {_describe(where)}")
            elif isinstance(o, dict):  # OrderedDict stays ordered; argparse namespaces become dicts
                out = collections.OrderedDict() if isinstance(o, collections.OrderedDict) else {}
                done[id(o)] = out
                for k, v in o.items():
                    out[k] = walk(v, where + (k,), depth + 1)
            elif isinstance(o, list):
                out = []
                done[id(o)] = out
                out.extend(walk(v, where + (i,), depth + 1) for i, v in enumerate(o))
            elif isinstance(o, tuple):
                out = tuple(walk(v, where + (i,), depth + 1) for i, v in enumerate(o))
            else:
                return o
            done[id(o)] = out
            return out

        return walk(obj, (), 0)


def _describe(where: tuple) -> str:
    """``'conv1.weight'``, or ``'module.fc.bias' (under 'state_dict')`` for a nested key."""
    if not where:
        return "(the whole file)"
    text = f"{str(where[-1])!r:.200}"
    if len(where) > 1:
        text += " (under " + "/".join(f"{str(k)!r:.60}" for k in where[:-1]) + ")"
    return text


def _load_zip(reader: _Reader) -> Any:
    path = reader.path
    with zipfile.ZipFile(path) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        pkl = [n for n in infos if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError(f"zip checkpoint without a single data.pkl (found {pkl[:4]})")
        prefix = pkl[0][: -len("data.pkl")]

        def member(name: str, what: str) -> bytes:
            info = infos.get(name)
            if info is None:
                raise ValueError(f"{what} missing from the checkpoint (no member {name!r})")
            reader.budget.take(info.file_size, what)  # the inflated size, before inflating
            return archive.read(info)

        order = "little"
        if prefix + "byteorder" in infos:
            if infos[prefix + "byteorder"].file_size > 16:
                raise ValueError(f"member {prefix}byteorder is not 'little' or 'big'")
            order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise ValueError(f"member {prefix}byteorder is {order!r:.20}, not 'little' or 'big'")

        def read_storage(key: str, dtype: np.dtype) -> np.ndarray:
            what = f"storage '{key}'"
            raw = member(f"{prefix}data/{key}", what)
            if len(raw) % dtype.itemsize:
                raise ValueError(f"{what} holds {len(raw)} bytes, not a whole number of {dtype} elements")
            flat = np.frombuffer(raw, dtype=dtype.newbyteorder("<" if order == "little" else ">"))
            return flat if flat.dtype == dtype else flat.astype(dtype)

        reader.read_storage = read_storage
        unpickler = _RestrictedUnpickler(io.BytesIO(member(pkl[0], "the pickle data.pkl")))
        return reader.resolve(unpickler.load())


def _load_legacy(reader: _Reader) -> Any:
    with open(reader.path, "rb") as fh:
        data = fh.read()  # in memory: a pickle's claimed lengths are then bounded by the file
    f = io.BytesIO(data)
    magic = _RestrictedUnpickler(f).load()
    if magic != _LEGACY_MAGIC:
        raise ValueError(f"not a torch checkpoint (bad magic number {magic!r:.40})")
    protocol = _RestrictedUnpickler(f).load()
    if protocol != 1001:
        raise ValueError(f"unsupported legacy torch protocol {protocol!r:.40}")
    sys_info = _RestrictedUnpickler(f).load()  # endianness and type sizes
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True) is not False
    storages: dict[str, Any] = {}
    obj = _RestrictedUnpickler(f, storages).load()
    keys = _RestrictedUnpickler(f).load()
    if not isinstance(keys, list) or any(not isinstance(storages.get(str(k)), _Storage) for k in keys):
        raise ValueError(f"storage keys {keys!r:.80} do not match the pickled tensors")
    for key in keys:
        storage = storages[str(key)]
        what = f"storage '{key}'"
        (numel,) = struct.unpack("<q", f.read(8))
        left = (len(data) - f.tell()) // storage.dtype.itemsize
        if not 0 <= numel <= left:
            raise ValueError(f"truncated {what}: it claims {numel} elements, the file holds {left} more")
        nbytes = numel * storage.dtype.itemsize
        reader.budget.take(nbytes, what)
        flat = np.frombuffer(data, storage.dtype.newbyteorder("<" if little else ">"), numel, f.tell())
        storage.data = flat.astype(storage.dtype)
        f.seek(nbytes, os.SEEK_CUR)
    return reader.resolve(obj)


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """Loads a ``torch.save`` file (legacy or zip container) with numpy arrays in place of tensors.

    Every tensor is checked against its storage and the file's size before it is viewed (see the
    module docstring and :mod:`nemo_jax.models.weight_bounds`).

    Args:
      path: a ``.pth`` / ``.pt`` file.

    Returns:
      The saved python object (usually an ``OrderedDict`` name -> ``np.ndarray``).

    Raises:
      FileNotFoundError naming the file; WeightFileError (a ValueError) naming the file (and the tensor's
      key where one is at fault) for anything else: a refused global, a tensor outside its storage, a
      truncated file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"torch checkpoint not found: {path}")
    reader = _Reader(path)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(reader)
        return _load_legacy(reader)
    except MemoryError as e:  # a pickle opcode claiming a huge length
        raise WeightFileError(
            f"{path}: cannot read torch checkpoint: it claims more memory than there is"
        ) from e
    except _READ_ERRORS as e:
        message = " ".join(str(e).split()) or type(e).__name__
        raise WeightFileError(f"{path}: cannot read torch checkpoint: {message}") from e
