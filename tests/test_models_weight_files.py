"""Weight files without torch: torch ``.pth`` containers written byte by byte, hostile pickles, safetensors.

The ``.pth`` files here are written by the test itself with raw pickle opcodes (the globals torch
writes, ``torch._utils._rebuild_tensor_v2`` and ``torch.FloatStorage``, cannot be pickled without
torch), in both containers ``torch.save`` uses:

* zip (torch >= 1.6): ``archive/data.pkl`` whose tensors point at storages by persistent id
  ``('storage', torch.<T>Storage, key, location, numel)``, the raw little-endian bytes of storage
  ``key`` in ``archive/data/<key>``, plus ``archive/byteorder`` and ``archive/version``;
* legacy: the pickles magic number, protocol 1001, system info, the object, the list of storage keys,
  then per storage an int64 element count and its bytes.
"""

from __future__ import annotations

import collections
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np
import pytest

from nemo_jax import models

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}


class _Ops:
    """A minimal protocol-2 pickle writer: enough opcodes for a torch state_dict."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")  # PROTO 2

    def glob(self, module: str, name: str):
        self.out += b"c" + f"{module}\n{name}\n".encode()  # GLOBAL

    def value(self, v):
        if isinstance(v, bool):
            self.out += b"\x88" if v else b"\x89"  # NEWTRUE / NEWFALSE
        elif isinstance(v, int):
            self.out += b"J" + struct.pack("<i", v)  # BININT
        elif isinstance(v, str):
            raw = v.encode()
            self.out += b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE
        elif isinstance(v, tuple):
            self.out += b"("  # MARK
            for x in v:
                self.value(x)
            self.out += b"t"  # TUPLE
        elif v is None:
            self.out += b"N"
        else:
            raise TypeError(type(v))

    def ordered_dict(self, items):
        """``collections.OrderedDict()`` then SETITEM per (key, writer) pair."""
        self.glob("collections", "OrderedDict")
        self.out += b")R"  # EMPTY_TUPLE, REDUCE
        for key, write in items:
            self.value(key)
            write(self)
            self.out += b"s"  # SETITEM

    def tensor(self, key: str, storage_type: str, numel: int, offset: int, size, stride, legacy: bool):
        """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``."""
        self.glob("torch._utils", "_rebuild_tensor_v2")
        self.out += b"("  # MARK: the argument tuple
        self.out += b"("  # MARK: the persistent id tuple
        self.value("storage")
        self.glob("torch", storage_type)
        self.value(key)
        self.value("cpu")
        self.value(numel)
        if legacy:
            self.value(None)  # view_metadata
        self.out += b"tQ"  # TUPLE, BINPERSID
        self.value(offset)
        self.value(tuple(size))
        self.value(tuple(stride))
        self.value(False)
        self.ordered_dict([])
        self.out += b"tR"  # TUPLE, REDUCE

    def done(self) -> bytes:
        return bytes(self.out + b".")  # STOP


# storages: key -> flat array; tensors: name -> (storage key, offset, size, stride)
_STORAGES = {
    "0": np.arange(24, dtype=np.float32) * 0.5 - 3.0,
    "1": np.array([7], np.int64),
    "2": np.array([1.5, -2.25, 3.0], np.float16),
}
_TENSORS = {
    "conv.weight": ("0", 0, (2, 3, 2, 2), (12, 4, 2, 1)),
    "fc.weight": ("0", 4, (2, 3), (1, 4)),  # a strided, offset view of the same storage
    "bn.num_batches_tracked": ("1", 0, (), ()),
    "bn.weight": ("2", 0, (3,), (1,)),
}
_STORAGE_TYPES = {np.float32: "FloatStorage", np.int64: "LongStorage", np.float16: "HalfStorage"}


def _expected() -> dict[str, np.ndarray]:
    out = {}
    for name, (key, offset, size, stride) in _TENSORS.items():
        flat = _STORAGES[key]
        out[name] = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=[s * flat.itemsize for s in stride]
        ).copy()
    return out


def _state_dict_pickle(legacy: bool) -> bytes:
    """``{'epoch': 3, 'state_dict': OrderedDict('module.' + name: tensor)}`` as torch pickles it."""
    ops = _Ops()
    ops.out += b"}"  # EMPTY_DICT
    ops.value("epoch")
    ops.value(3)
    ops.out += b"s"
    ops.value("state_dict")

    def tensor_writer(name):
        key, offset, size, stride = _TENSORS[name]
        flat = _STORAGES[key]
        kind = _STORAGE_TYPES[flat.dtype.type]
        return lambda o: o.tensor(key, kind, flat.size, offset, size, stride, legacy)

    ops.ordered_dict([("module." + name, tensor_writer(name)) for name in _TENSORS])
    ops.out += b"s"
    return ops.done()


def _hostile_pickle(module: str, name: str, args: tuple) -> bytes:
    """A pickle that calls ``module.name(*args)`` when loaded by a plain unpickler."""
    ops = _Ops()
    ops.glob(module, name)
    ops.value(args)
    ops.out += b"R"  # REDUCE
    return ops.done()


def _write_zip(path, data_pkl: bytes, storages=_STORAGES):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        for key, flat in storages.items():
            z.writestr(f"archive/data/{key}", flat.astype(flat.dtype.newbyteorder("<")).tobytes())
        z.writestr("archive/version", "3\n")


def _write_legacy(path, pickles: list[bytes], storages=_STORAGES):
    with open(path, "wb") as f:
        for p in pickles:
            f.write(p)
        for flat in storages.values():
            f.write(struct.pack("<q", flat.size) + flat.astype(flat.dtype.newbyteorder("<")).tobytes())


def _legacy_pickles(obj_pickle: bytes) -> list[bytes]:
    return [
        pickle.dumps(_LEGACY_MAGIC, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps(_SYS_INFO, protocol=2),
        obj_pickle,
        pickle.dumps(list(_STORAGES), protocol=2),
    ]


@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_hand_written_pth_loads_to_the_saved_arrays(tmp_path, container):
    path = tmp_path / f"weights_{container}.pth"
    if container == "zip":
        _write_zip(path, _state_dict_pickle(legacy=False))
        assert zipfile.is_zipfile(path)
    else:
        _write_legacy(path, _legacy_pickles(_state_dict_pickle(legacy=True)))
    raw = models.load_torch_checkpoint(path)
    assert raw["epoch"] == 3 and isinstance(raw["state_dict"], collections.OrderedDict)
    # unwrapped from 'state_dict', 'module.' prefix stripped, order kept
    sd = models.load_state_dict(path)
    expected = _expected()
    assert list(sd) == list(expected)
    for name, want in expected.items():
        assert sd[name].dtype == want.dtype and sd[name].shape == want.shape, name
        np.testing.assert_array_equal(sd[name], want, err_msg=name)
    # the strided view really is the transposed window [4, 5, 6; 8, 9, 10] * 0.5 - 3
    np.testing.assert_array_equal(sd["fc.weight"], (np.array([[4, 8, 12], [5, 9, 13]]) * 0.5 - 3.0))
    assert int(sd["bn.num_batches_tracked"]) == 7


def test_storage_too_short_for_its_tensor_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "short.pth"
    _write_zip(path, _state_dict_pickle(legacy=False), {**_STORAGES, "0": _STORAGES["0"][:10]})
    with pytest.raises(ValueError, match=r"short\.pth.*runs past its storage"):
        models.load_state_dict(path)


# (module, name, args) of foreign globals; each would create the file MARKER when run
_PAYLOADS = [
    ("os", "system", ("touch MARKER",)),
    ("builtins", "open", ("MARKER", "w")),
    ("subprocess", "check_call", (("touch", "MARKER"),)),
]


def _payload(tmp_path, module, name, args):
    marker = tmp_path / "pwned"
    args = tuple(
        tuple(str(marker) if a == "MARKER" else a for a in x)
        if isinstance(x, tuple)
        else x.replace("MARKER", str(marker))
        for x in args
    )
    return marker, _hostile_pickle(module, name, args)


@pytest.mark.parametrize("module,name,args", _PAYLOADS)
def test_hostile_payload_runs_under_plain_pickle(tmp_path, module, name, args):
    """The payloads are live: a plain ``pickle.loads`` executes them (so the refusals mean something)."""
    marker, payload = _payload(tmp_path, module, name, args)
    result = pickle.loads(payload)
    if hasattr(result, "close"):
        result.close()
    assert marker.exists()


@pytest.mark.parametrize("module,name,args", _PAYLOADS)
def test_zip_pth_with_foreign_global_is_refused_and_not_run(tmp_path, module, name, args):
    marker, payload = _payload(tmp_path, module, name, args)
    # the payload is a value inside an otherwise ordinary state_dict pickle
    ops = _Ops()
    ops.out += b"}"
    ops.value("weight")
    ops.out += payload[2:-1]  # without PROTO and STOP
    ops.out += b"s"
    path = tmp_path / "evil_zip.pth"
    _write_zip(path, ops.done())
    with pytest.raises(ValueError, match=rf"evil_zip\.pth.*refusing global {module}\.{name}\b"):
        models.load_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("module,name,args", _PAYLOADS)
@pytest.mark.parametrize("position", [0, 2, 3, 4])  # magic number, system info, object, storage keys
def test_legacy_pth_with_foreign_global_is_refused_and_not_run(tmp_path, module, name, args, position):
    marker, payload = _payload(tmp_path, module, name, args)
    pickles = _legacy_pickles(_state_dict_pickle(legacy=True))
    pickles[position] = payload
    path = tmp_path / "evil_legacy.pth"
    _write_legacy(path, pickles)
    with pytest.raises(ValueError, match=rf"evil_legacy\.pth.*refusing global {module}\.{name}\b"):
        models.load_state_dict(path)
    assert not marker.exists()


def _write_safetensors_by_hand(path, tensors: dict[str, tuple[str, np.ndarray]]):
    """The format as the project's earlier writer laid it out: u64 header length, JSON header padded
    with spaces to 8 bytes, then the raw little-endian tensors in insertion order."""
    import json

    header, blobs, offset = {}, [], 0
    for key, (dtype_name, value) in tensors.items():
        raw = np.ascontiguousarray(value).tobytes()
        header[key] = {
            "dtype": dtype_name,
            "shape": list(value.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob + b"".join(blobs))


def test_safetensors_written_by_hand_still_load(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "conv.weight": ("F32", rng.normal(size=(4, 3, 3, 3)).astype(np.float32)),
        "bn.num_batches_tracked": ("I64", np.array(12, np.int64)),
        "half": ("F16", rng.normal(size=(5,)).astype(np.float16)),
        "brain": ("BF16", rng.normal(size=(2, 3)).astype(ml_dtypes.bfloat16)),
        "mask": ("BOOL", np.array([True, False, True])),
    }
    path = tmp_path / "hand.safetensors"
    _write_safetensors_by_hand(path, tensors)
    sd = models.load_state_dict(path)
    assert set(sd) == set(tensors)
    for key, (_, value) in tensors.items():
        assert sd[key].dtype == value.dtype and sd[key].shape == value.shape, key
        np.testing.assert_array_equal(sd[key], value, err_msg=key)


def test_safetensors_round_trip_keeps_strided_views_and_dtypes(tmp_path):
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    sd = {
        "transposed": base.T,  # not contiguous: must be written as its values, not its buffer
        "scalar": np.array(5, np.int64),
        "bf16": base[:, 1].astype(ml_dtypes.bfloat16),
    }
    path = tmp_path / "rt.safetensors"
    models.save_state_dict(path, sd)
    back = models.load_state_dict(path)
    assert set(back) == set(sd)
    for key, value in sd.items():
        assert back[key].dtype == value.dtype and back[key].shape == value.shape, key
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    assert back["transposed"].flags.writeable


def test_bad_safetensors_and_unstorable_dtype_name_the_file(tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(ValueError, match=r"broken\.safetensors"):
        models.load_state_dict(bad)
    with pytest.raises(ValueError, match=r"out\.safetensors"):
        models.save_state_dict(tmp_path / "out.safetensors", {"z": np.ones(2, np.complex128)})


def test_training_args_saved_beside_the_weights_load_as_a_dict(tmp_path):
    import argparse

    path = tmp_path / "with_args.pth"
    obj = {"args": argparse.Namespace(lr=0.1, arch="resnet50"), "epoch": 7}
    _write_zip(path, pickle.dumps(obj, protocol=2), storages={})
    loaded = models.load_torch_checkpoint(path)
    assert loaded == {"args": {"lr": 0.1, "arch": "resnet50"}, "epoch": 7}
