"""Writes ``torch.save``-format checkpoints without torch, for tests (normal and hostile ones).

The pickle holds an ``OrderedDict`` of tensors rebuilt by ``torch._utils._rebuild_tensor_v2`` from
storages given as persistent ids ``('storage', torch.FloatStorage, key, 'cpu', numel)``. Two containers:

* zip (what torch >= 1.6 writes): ``archive/data.pkl`` and the raw little-endian bytes of storage
  ``key`` in ``archive/data/<key>`` (stored uncompressed, as torch does; ``compress=True`` deflates);
* legacy (torch < 1.6): the pickles magic number, protocol 1001, system info, the object and the list
  of storage keys, then per storage an int64 element count and its bytes. Its persistent ids carry a
  sixth field, the storage view ``(view_key, offset, numel)`` or None.

:func:`save_torch_views` writes any offset / size / stride per tensor (a hostile file is one whose
views leave their storage); :func:`save_torch_zip` writes ordinary C-contiguous tensors.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

_STORAGES = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.uint8): "ByteStorage",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}


class _Global:
    """A reference to ``module.name`` written as a pickle GLOBAL (torch need not be importable)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class _Storage:
    """Storage ``key`` of ``dtype`` whose persistent id declares ``numel`` elements."""

    def __init__(self, key: str, dtype: np.dtype, numel: int, view=None):
        self.key, self.dtype, self.numel, self.view = key, np.dtype(dtype), numel, view


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


class _Pickler(pickle._Pickler):  # the pure-python pickler: GLOBAL opcodes can be written by hand
    def __init__(self, file, legacy: bool):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            pid = ("storage", _Global("torch", _STORAGES[obj.dtype]), obj.key, "cpu", obj.numel)
            return pid + (obj.view,) if self.legacy else pid
        return None

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            self.memoize(obj)
            return
        if isinstance(obj, _Tensor):
            rebuild = _Global("torch._utils", "_rebuild_tensor_v2")
            args = (
                obj.storage,
                obj.offset,
                tuple(obj.size),
                tuple(obj.stride),
                False,
                collections.OrderedDict(),
            )
            self.save_reduce(rebuild, args, obj=obj)
            return
        super().save(obj, save_persistent_id)

    def save_reduce(self, func, args, *rest, obj=None, **kw):
        if isinstance(func, _Global):  # write func, args, REDUCE ourselves
            self.save(func)
            self.save(args)
            self.write(pickle.REDUCE)
            if obj is not None:
                self.memoize(obj)
            return
        super().save_reduce(func, args, *rest, obj=obj, **kw)


def _little(flat: np.ndarray) -> bytes:
    return np.ascontiguousarray(flat).astype(flat.dtype.newbyteorder("<")).tobytes()


def save_torch_views(
    path,
    storages: dict[str, np.ndarray],
    tensors: dict[str, tuple],
    *,
    legacy: bool = False,
    numel: dict[str, int] | None = None,
    views: dict[str, tuple[str, int, int]] | None = None,
    compress: bool = False,
    wrap: str | None = None,
) -> None:
    """Writes a checkpoint of tensors that are views of flat storages.

    Args:
      storages: storage key -> flat array (its dtype picks the storage class; the raw bytes written).
      tensors: state_dict name -> ``(storage key, offset, size, stride)`` (elements, any integers,
        negative ones included: what a hostile file may claim).
      legacy: the legacy container instead of zip.
      numel: storage key -> the element count to declare (the persistent id's, and in the legacy
        container the count before the bytes) instead of the array's.
      views: (legacy) persistent-id key -> ``(root storage key, offset, numel)``: a tensor naming the
        key sees that window of the root storage (torch < 0.4's storage views).
      compress: deflate the zip members (torch stores them uncompressed).
      wrap: save ``{wrap: state_dict}`` instead of the bare state_dict.
    """
    numel = dict(numel or {})
    views = dict(views or {})
    refs = {k: _Storage(k, a.dtype, numel.get(k, a.size)) for k, a in storages.items()}
    for key, (root, offset, count) in views.items():
        refs[key] = _Storage(
            root, storages[root].dtype, numel.get(root, storages[root].size), (key, offset, count)
        )
    state = collections.OrderedDict(
        (name, _Tensor(refs[key], offset, size, stride))
        for name, (key, offset, size, stride) in tensors.items()
    )
    obj = {wrap: state} if wrap else state
    buf = io.BytesIO()
    _Pickler(buf, legacy).dump(obj)
    if legacy:
        with open(path, "wb") as f:
            for head in (_LEGACY_MAGIC, 1001, _SYS_INFO):
                f.write(pickle.dumps(head, protocol=2))
            f.write(buf.getvalue())
            f.write(pickle.dumps(list(storages), protocol=2))
            for key, flat in storages.items():
                f.write(struct.pack("<q", numel.get(key, flat.size)) + _little(flat))
        return
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        archive.writestr("archive/data.pkl", buf.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, flat in storages.items():
            archive.writestr(f"archive/data/{key}", _little(flat))
        archive.writestr("archive/version", "3\n")


def save_torch_zip(path, state_dict: dict[str, np.ndarray], *, legacy: bool = False) -> None:
    """Writes ``state_dict`` (float32 / int64 / ... arrays) as torch's zip (or legacy) checkpoint."""
    storages, tensors = {}, {}
    for i, (name, value) in enumerate(state_dict.items()):
        a = np.array(value, order="C")  # keeps 0-d arrays 0-d
        if a.dtype not in _STORAGES:
            a = a.astype(np.float32)
        stride = tuple(s // a.itemsize for s in a.strides) if a.ndim else ()
        storages[str(i)] = a.reshape(-1)
        tensors[name] = (str(i), 0, a.shape, stride)
    save_torch_views(path, storages, tensors, legacy=legacy)
