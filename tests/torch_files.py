"""Writes ``torch.save``-format checkpoints (the zip container) without torch, for tests.

The pickle holds an ``OrderedDict`` of tensors rebuilt by ``torch._utils._rebuild_tensor_v2`` from
storages given as persistent ids ``('storage', torch.FloatStorage, key, 'cpu', numel)``; the raw
little-endian bytes of storage ``key`` are ``archive/data/<key>``: what torch >= 1.6 writes.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile

import numpy as np

_STORAGES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage"}


class _Global:
    """A reference to ``module.name`` written as a pickle GLOBAL (torch need not be importable)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class _Tensor:
    def __init__(self, key: str, array: np.ndarray):
        self.key, self.array = key, array


class _Pickler(pickle._Pickler):  # the pure-python pickler: GLOBAL opcodes can be written by hand
    def persistent_id(self, obj):
        if isinstance(obj, _Tensor):
            return None
        if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "__storage__":
            t = obj[1]
            return ("storage", _Global("torch", _STORAGES[t.array.dtype]), t.key, "cpu", t.array.size)
        return None

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            self.memoize(obj)
            return
        if isinstance(obj, _Tensor):
            a = obj.array
            stride = tuple(s // a.itemsize for s in a.strides) if a.ndim else ()
            rebuild = _Global("torch._utils", "_rebuild_tensor_v2")
            args = (("__storage__", obj), 0, tuple(a.shape), stride, False, collections.OrderedDict())
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


def save_torch_zip(path, state_dict: dict[str, np.ndarray]) -> None:
    """Writes ``state_dict`` (float32 / int64 arrays) as torch's zip checkpoint at ``path``."""
    tensors = collections.OrderedDict()
    storages = {}
    for i, (name, value) in enumerate(state_dict.items()):
        a = np.array(value, order="C")  # keeps 0-d arrays 0-d
        if a.dtype not in _STORAGES:
            a = a.astype(np.float32)
        tensors[name] = _Tensor(str(i), a)
        storages[str(i)] = a.astype(a.dtype.newbyteorder("<")).tobytes()
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(tensors)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buf.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)
        archive.writestr("archive/version", "3\n")
