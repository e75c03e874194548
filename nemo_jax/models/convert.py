"""PyTorch state_dicts -> Flax variables for the trunks (torchvision ResNet, lukemelas EfficientNet-Lite).

A state_dict is a flat ``{name: np.ndarray}``; it can come from a ``.pth``/``.pt`` file (read without
torch by :mod:`nemo_jax.models.torch_pickle`), an ``.npz`` (``np.savez(path, **state_dict)``) or a
``.safetensors`` file, each read only within the bounds of :mod:`nemo_jax.models.weight_bounds` (every
array's claimed size, offsets and strides are checked against the file before it is read). Conversion
rules (torch -> flax):

* conv ``weight`` [O, I/groups, kh, kw] -> ``kernel`` [kh, kw, I/groups, O] (OIHW -> HWIO);
* linear ``weight`` [O, I] -> ``kernel`` [I, O];
* BN ``weight``/``bias`` -> params ``scale``/``bias``; ``running_mean``/``running_var`` -> batch_stats
  ``mean``/``var``; ``num_batches_tracked`` dropped;
* module names: ``layer2.0.downsample.1`` -> ``layer2_0/downsample_bn``;
  ``_blocks.7._bn1`` -> ``blocks_7/bn1``.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import zipfile
import zlib

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy: safetensors' BF16 tensors need it)
import numpy as np
import safetensors
import safetensors.numpy

from nemo_jax.models import weight_bounds
from nemo_jax.models.resnet import RESNET_SPECS
from nemo_jax.models.torch_pickle import load_torch_checkpoint
from nemo_jax.models.weight_bounds import WeightFileError

# safetensors dtype name -> bytes per element (the names its readers accept for numpy)
_SAFETENSORS_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip
# The safetensors format's own limit on the JSON header.
_SAFETENSORS_MAX_HEADER = 100_000_000


def _check_safetensors_header(path: str) -> None:
    """Checks every tensor's dtype, shape and byte range of a ``.safetensors`` header against the file's
    size before any tensor is read (:mod:`nemo_jax.models.weight_bounds`); ValueError naming the file
    and the tensor otherwise."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: not a safetensors file ({size} bytes, no header length)")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, _SAFETENSORS_MAX_HEADER):
            raise ValueError(
                f"{path}: safetensors header of {n} bytes runs past the end of the file ({size} bytes)"
            )
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise ValueError(f"{path}: safetensors header is not JSON ({' '.join(str(e).split())})") from e
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header is a {type(header).__name__}, not a JSON object")
    data = size - 8 - n
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        what = f"tensor {key!r:.200}"
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: {what}: header entry is not an object")
        dtype = entry.get("dtype")
        if dtype not in _SAFETENSORS_ITEMSIZE:
            raise ValueError(f"{path}: {what}: unsupported dtype {dtype!r:.40}")
        offsets = entry.get("data_offsets")
        if not isinstance(offsets, list) or len(offsets) != 2:
            raise ValueError(f"{path}: {what}: data_offsets {offsets!r:.60} is not [start, end]")
        try:
            shape = weight_bounds.as_shape(entry.get("shape"), "shape")
            start, end = (weight_bounds.as_index(v, "data_offsets") for v in offsets)
        except ValueError as e:
            raise ValueError(f"{path}: {what}: {e}") from e
        if any(d < 0 for d in shape):
            raise ValueError(f"{path}: {what}: negative size in shape {shape}")
        if not 0 <= start <= end <= data:
            raise ValueError(
                f"{path}: {what}: bytes [{start}, {end}) lie outside the file's {data} bytes of tensor data"
            )
        numel = math.prod(shape)
        nbytes = numel * _SAFETENSORS_ITEMSIZE[dtype]
        if nbytes != end - start:
            raise ValueError(
                f"{path}: {what}: shape {list(shape)} of {dtype} needs {nbytes} bytes, its data_offsets "
                f"give {end - start}"
            )
        if numel == 0:
            try:
                weight_bounds.check_empty(shape, size, what)
            except ValueError as e:
                raise ValueError(f"{path}: {e}") from e


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    _check_safetensors_header(path)
    try:
        tensors = safetensors.numpy.load_file(path)
    except (safetensors.SafetensorError, OSError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: cannot read safetensors file: {' '.join(str(e).split())}") from e
    # own the memory (the reader's arrays may view a buffer of the whole file)
    return {k: np.array(v) for k, v in tensors.items()}


def _read_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (``np.savez`` / ``np.savez_compressed``), each member's ``.npy`` header
    checked before its data is read: an object array (it would need pickle) is refused, and so is a
    header claiming more bytes than the member holds, or members inflating past the file's budget
    (:mod:`nemo_jax.models.weight_bounds`). ValueError naming the file and the member."""
    budget = weight_bounds.ArrayBudget(os.path.getsize(path))
    out = {}
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: not an .npz (zip) file: {e}") from e
    with archive:
        for info in archive.infolist():
            name = info.filename
            what = f"member {name!r:.200}"
            if not name.endswith(".npy"):
                raise ValueError(f"{path}: {what} is not an array (.npy)")
            try:
                budget.take(info.file_size, what)
                with archive.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise ValueError(f".npy format version {version} not supported (1.0 and 2.0 are)")
                    if dtype.hasobject:
                        raise ValueError(f"holds an object array ({dtype}): reading it would need pickle")
                    numel = math.prod(shape)
                    nbytes = numel * dtype.itemsize
                    stored = info.file_size - f.tell()
                    if nbytes > stored:
                        raise ValueError(
                            f"header claims shape {shape} of {dtype} ({nbytes} bytes), it stores {stored}"
                        )
                    if numel == 0:
                        weight_bounds.check_empty(shape, budget.file_size, "array")
                    raw = f.read(nbytes)
                if len(raw) != nbytes:
                    raise ValueError(f"truncated: {len(raw)} of {nbytes} bytes")
                array = np.frombuffer(raw, dtype).reshape(shape, order="F" if fortran else "C")
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as e:
                raise ValueError(f"{path}: {what}: {' '.join(str(e).split())}") from e
            out[name.removesuffix(".npy")] = np.array(array, order="C")  # owned, writeable
    return out


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a state_dict from ``.pth``/``.pt`` (no torch needed), ``.npz`` or ``.safetensors``.

    A checkpoint dict wrapping the weights under ``'state_dict'``/``'model'``/``'state'`` is unwrapped,
    and a ``module.`` prefix (DataParallel) is stripped.

    Raises:
      FileNotFoundError: the file does not exist (named in the message).
      WeightFileError: a ValueError with one line naming the file, and the tensor or member at
        fault, for an unreadable or hostile file: a foreign pickle global, a tensor view outside its
        storage, arrays claiming more than the file holds (:mod:`nemo_jax.models.weight_bounds`), an
        ``.npz`` object array, a safetensors header outside the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained weights not found: {path}")
    try:
        if path.endswith(".npz"):
            sd = _read_npz(path)
        elif path.endswith(".safetensors"):
            sd = _read_safetensors(path)
        else:
            sd = load_torch_checkpoint(path)
    except WeightFileError:
        raise
    except ValueError as e:  # the readers' messages name the file
        raise WeightFileError(str(e)) from e
    for wrapper in ("state_dict", "model", "state"):
        if isinstance(sd, dict) and isinstance(sd.get(wrapper), dict):
            sd = sd[wrapper]
    if not isinstance(sd, dict) or not all(isinstance(v, np.ndarray) for v in sd.values()):
        raise WeightFileError(f"{path}: expected a flat state_dict of tensors")
    return {k.removeprefix("module."): np.asarray(v) for k, v in sd.items()}


def save_npz(path: str | os.PathLike, state_dict: dict[str, np.ndarray]) -> None:
    """Writes a state_dict as ``.npz`` (torch-free exchange format; keys unchanged)."""
    np.savez(path, **{k: np.asarray(v) for k, v in state_dict.items()})


def save_safetensors(path: str | os.PathLike, state_dict: dict[str, np.ndarray]) -> None:
    """Writes a state_dict as ``.safetensors`` (little-endian, names unchanged; their order may not be)."""
    # the writer copies raw memory: strided views must be made contiguous first
    tensors = {k: np.asarray(v, order="C") for k, v in state_dict.items()}  # 0-d stays 0-d
    try:
        safetensors.numpy.save_file(tensors, os.fspath(path))
    except safetensors.SafetensorError as e:
        raise ValueError(f"{os.fspath(path)}: cannot write safetensors file: {e}") from e


def save_state_dict(path: str | os.PathLike, state_dict: dict[str, np.ndarray]) -> None:
    """Writes ``.npz`` or ``.safetensors`` by suffix."""
    path = os.fspath(path)
    if path.endswith(".npz"):
        save_npz(path, state_dict)
    elif path.endswith(".safetensors"):
        save_safetensors(path, state_dict)
    else:
        raise ValueError(f"{path}: output must end in .npz or .safetensors")


def _module_path(prefix: str, arch: str) -> tuple[str, ...]:
    if arch.startswith("resnet"):
        prefix = re.sub(r"^layer(\d)\.(\d+)", r"layer\1_\2", prefix)
        prefix = prefix.replace("downsample.0", "downsample_conv").replace("downsample.1", "downsample_bn")
    else:
        prefix = re.sub(r"^_blocks\.(\d+)\.", r"blocks_\1.", prefix)
        prefix = ".".join(p.removeprefix("_") for p in prefix.split("."))
    return tuple(prefix.split("."))


def convert_state_dict(
    state_dict: dict[str, np.ndarray], arch: str, *, with_classifier: bool = False, source: str = "state_dict"
) -> dict[str, dict]:
    """Converts a torchvision ResNet / lukemelas EfficientNet-Lite state_dict to flat flax trunk variables.

    Args:
      state_dict: ``{torch name: array}``.
      arch: 'resnet18' | 'resnet34' | 'resnet50' | 'efficientnet_lite0'.
      with_classifier: keep the ImageNet classifier (``fc`` / ``_fc``) as params ``fc``; dropped otherwise.
      source: file name used in error messages.

    Returns:
      ``{'params': {path tuple: array}, 'batch_stats': {path tuple: array}}`` (flat, float32), paths
      relative to the trunk module.
    """
    params, stats = {}, {}
    for key, value in state_dict.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        if prefix in ("fc", "_fc") and not with_classifier:
            continue
        path = _module_path(prefix, arch)
        v = np.asarray(value, np.float32)
        if leaf == "weight" and v.ndim == 4:
            params[path + ("kernel",)] = v.transpose(2, 3, 1, 0)
        elif leaf == "weight" and v.ndim == 2:
            params[path + ("kernel",)] = v.T
        elif leaf == "weight" and v.ndim == 1:
            params[path + ("scale",)] = v
        elif leaf == "bias":
            params[path + ("bias",)] = v
        elif leaf == "running_mean":
            stats[path + ("mean",)] = v
        elif leaf == "running_var":
            stats[path + ("var",)] = v
        else:
            raise WeightFileError(f"{source}: unexpected tensor '{key}' of shape {v.shape} for {arch}")
    return {"params": params, "batch_stats": stats}


def torchvision_resnet_shapes(arch: str, num_classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """The state_dict names and shapes of ``torchvision.models.<arch>()`` (without torch)."""
    kind, depths = RESNET_SPECS[arch]
    exp = 4 if kind == "bottleneck" else 1
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(name, c):
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{leaf}"] = (c,)
        shapes[f"{name}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    cin = 64
    for i, depth in enumerate(depths):
        planes = 64 * 2**i
        for j in range(depth):
            p = f"layer{i + 1}.{j}"
            stride = 2 if (j == 0 and i > 0) else 1
            if kind == "bottleneck":
                convs = [(planes, cin, 1), (planes, planes, 3), (planes * 4, planes, 1)]
            else:
                convs = [(planes, cin, 3), (planes, planes, 3)]
            for n, (o, ci, k) in enumerate(convs, start=1):
                shapes[f"{p}.conv{n}.weight"] = (o, ci, k, k)
                bn(f"{p}.bn{n}", o)
            if j == 0 and (stride != 1 or cin != planes * exp):
                shapes[f"{p}.downsample.0.weight"] = (planes * exp, cin, 1, 1)
                bn(f"{p}.downsample.1", planes * exp)
            cin = planes * exp
    shapes["fc.weight"] = (num_classes, cin)
    shapes["fc.bias"] = (num_classes,)
    return shapes
