"""NeMo's feature extractor: a trunk, a U-Net head back to stride 8 (or 4), a 1x1 projection, unit
features."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from nemo_jax.models.config import BACKBONES, DTYPES, is_scratch
from nemo_jax.models.efficientnet import EfficientNetLite0Trunk
from nemo_jax.models.layers import DoubleConv, upsample_align_corners
from nemo_jax.models.resnet import RESNET_SPECS, ResNetTrunk
from nemo_jax.models.tiny import TinyTrunk

STRIDE = 8  # NeMo's output stride; ``model.stride = 4`` adds one more U-Net level
STRIDES = (4, 8)
INPUT_MULTIPLE = 32
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UNetHead(nn.Module):
    """NeMo's ResNetExt head (``code/models/UpsamplingLayer.py``), widths ``(a, b, c)``.

    ``x = DoubleConv(a)(f32)``; ``x = DoubleConv(b, mid=a)(concat[f16, up2(x)])``;
    ``x = DoubleConv(c, mid=b)(concat[f8, up2(x)])``, with ``up2`` bilinear x2, ``align_corners=True``.
    For resnet50 (a, b, c) = (1024, 512, 256). Input: the trunk's dict {"stride8", "stride16", "stride32"};
    output [B, H/8, W/8, c]. With ``stride=4`` (not in NeMo) one more level fuses the trunk's "stride4"
    features the same way, ``x = DoubleConv(c, mid=c)(concat[f4, up2(x)])``: output [B, H/4, W/4, c],
    for small crops where a stride-8 map has too few cells to localise vertices (e.g. 64-px images).
    """

    widths: tuple[int, int, int]
    dtype: Any = jnp.float32
    stride: int = STRIDE

    @nn.compact
    def __call__(self, feats: dict, train: bool) -> jnp.ndarray:
        a, b, c = self.widths
        x = DoubleConv(a, dtype=self.dtype, name="up0")(feats["stride32"], train)
        x = jnp.concatenate([feats["stride16"], upsample_align_corners(x)], axis=-1)
        x = DoubleConv(b, mid=a, dtype=self.dtype, name="up1")(x, train)
        x = jnp.concatenate([feats["stride8"], upsample_align_corners(x)], axis=-1)
        x = DoubleConv(c, mid=b, dtype=self.dtype, name="up2")(x, train)
        if self.stride == 4:
            x = jnp.concatenate([feats["stride4"], upsample_align_corners(x)], axis=-1)
            x = DoubleConv(c, mid=c, dtype=self.dtype, name="up3")(x, train)
        return x


def l2_normalize(x: jnp.ndarray, axis: int = -1, eps: float = 1e-12) -> jnp.ndarray:
    """``x / ||x||`` along ``axis``; a vector with ``||x|| <= eps`` maps to zero, with zero gradient.

    torch's ``F.normalize`` returns ``x / max(||x||, eps)`` there, whose gradient at a zero vector
    is ``1 / eps = 1e12``: a feature cell the ReLU head switches off entirely (all channels zero,
    and the projection's bias starts at zero) then yields a gradient norm of ~1e11 on the first
    step, which fills Adam's second moment for the projection bias and turns rounding differences
    into visible ones. Here such a cell contributes nothing, forward or backward; for every other
    cell the value and gradient are torch's.
    """
    sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
    # torch's expression, times an exact 0/1 mask: bit for bit torch's value and gradient wherever
    # ||x|| > eps (multiplying by 1.0 is exact), zero value and zero gradient elsewhere.
    ok = (sq > eps * eps).astype(x.dtype)
    return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps)) * ok


class FeatureExtractor(nn.Module):
    """images [B, H, W, 3] (normalised, H and W multiples of 32) -> unit features [B, H/s, W/s, C] float32,
    ``s = stride`` (8, NeMo's, or 4).

    Variables: ``params`` and ``batch_stats``, each ``{'trunk': ..., 'head': ..., 'projection': ...}``.
    ``train=True`` uses batch statistics and needs ``mutable=['batch_stats']``.
    """

    trunk: nn.Module
    feature_dim: int = 128
    dtype: Any = jnp.float32
    stride: int = STRIDE

    @nn.compact
    def __call__(self, images: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"backbone: images must be [B, H, W, 3], got shape {images.shape}")
        h, w = images.shape[1:3]
        if h % INPUT_MULTIPLE or w % INPUT_MULTIPLE:
            raise ValueError(
                f"backbone: image height and width must be multiples of {INPUT_MULTIPLE} (stride-32 trunk, "
                f"U-Net skips), got {h} x {w}; pad the crop"
            )
        feats = self.trunk(images, train)
        x = UNetHead(self.trunk.head_widths, dtype=self.dtype, stride=self.stride, name="head")(feats, train)
        x = nn.Conv(
            self.feature_dim,
            (1, 1),
            use_bias=True,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name="projection",
        )(x)
        return l2_normalize(x.astype(jnp.float32))


def _check_config(cfg: ml_collections.ConfigDict) -> None:
    for field in ("name", "width", "feature_dim", "dtype", "pretrained"):
        if field not in cfg:
            raise ValueError(f"backbone config: missing field '{field}' (see models.default_config())")
    if cfg.name not in BACKBONES:
        raise ValueError(f"backbone config: name='{cfg.name}' is not one of {BACKBONES}")
    if cfg.dtype not in DTYPES:
        raise ValueError(f"backbone config: dtype='{cfg.dtype}' is not one of {DTYPES}")
    if not (float(cfg.width) > 0):
        raise ValueError(f"backbone config: width must be > 0, got {cfg.width}")
    if int(cfg.feature_dim) <= 0 or int(cfg.feature_dim) != cfg.feature_dim:
        raise ValueError(f"backbone config: feature_dim must be a positive integer, got {cfg.feature_dim}")
    if int(cfg.get("stride", STRIDE)) not in STRIDES:
        raise ValueError(f"backbone config: stride must be one of {STRIDES}, got {cfg.get('stride')}")
    if cfg.name == "efficientnet_lite0" and float(cfg.width) != 1.0:
        raise ValueError("backbone config: efficientnet_lite0 has fixed widths; width must be 1.0")
    pretrained = str(cfg.pretrained).strip()
    if is_scratch(pretrained):
        return
    if cfg.name == "tiny":
        raise ValueError(
            f"backbone config: the 'tiny' backbone has no pretrained weights (pretrained='{pretrained}'; "
            "use 'none')"
        )
    if float(cfg.width) != 1.0:
        raise ValueError(f"backbone config: pretrained='{pretrained}' needs width 1.0, got {cfg.width}")
    if pretrained == "package" and cfg.name != "efficientnet_lite0":
        raise ValueError("backbone config: pretrained='package' is only available for efficientnet_lite0")


def build_trunk(cfg: ml_collections.ConfigDict, num_classes: int = 0) -> nn.Module:
    """The trunk alone (dict of stride-8/16/32 features), e.g. to compare against torch in tests."""
    _check_config(cfg)
    dtype = jnp.dtype(cfg.dtype)
    if cfg.name in RESNET_SPECS:
        return ResNetTrunk(arch=cfg.name, width=float(cfg.width), dtype=dtype)
    if cfg.name == "efficientnet_lite0":
        return EfficientNetLite0Trunk(num_classes=num_classes, dtype=dtype)
    return TinyTrunk(width=float(cfg.width), dtype=dtype)


def build_backbone(cfg: ml_collections.ConfigDict) -> FeatureExtractor:
    """A flax.linen feature extractor from a config (see :func:`default_config`). Weights are not loaded
    here: call ``module.init`` and then :func:`load_pretrained` when ``cfg.pretrained`` is set."""
    return FeatureExtractor(
        trunk=build_trunk(cfg),
        feature_dim=int(cfg.feature_dim),
        dtype=jnp.dtype(cfg.dtype),
        stride=int(cfg.get("stride", STRIDE)),
    )


def preprocess(images: Any) -> jnp.ndarray:
    """uint8 (or float in [0, 255]) RGB [..., H, W, 3] -> float32 ``(x / 255 - mean) / std`` (ImageNet)."""
    x = jnp.asarray(images)
    if x.shape[-1] != 3:
        raise ValueError(f"preprocess: images must end in 3 RGB channels, got shape {x.shape}")
    mean = np.asarray(IMAGENET_MEAN, np.float32)
    std = np.asarray(IMAGENET_STD, np.float32)
    return (x.astype(jnp.float32) / 255.0 - mean) / std
