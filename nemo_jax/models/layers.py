"""Shared building blocks: torch-compatible conv/BN, align-corners upsampling, the U-Net DoubleConv."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


def conv(
    features: int,
    kernel: int,
    stride: int = 1,
    *,
    groups: int = 1,
    use_bias: bool = False,
    name=None,
    dtype: Any = jnp.float32,
    padding: str | None = None,
) -> nn.Conv:
    """A square conv with torch's symmetric ``kernel // 2`` zero padding (or ``padding='SAME'``, TF style).

    Kernel layout is flax's HWIO ([k, k, C_in / groups, C_out]); parameters are float32.
    """
    pad = padding if padding is not None else [(kernel // 2, kernel // 2)] * 2
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=pad,
        feature_group_count=groups,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=jnp.float32,
        name=name,
    )


def batch_norm(
    train: bool, *, name=None, dtype: Any = jnp.float32, momentum: float = 0.9, epsilon: float = 1e-5
) -> nn.BatchNorm:
    """BatchNorm over [B, H, W] per channel; ``momentum`` is flax's (= 1 - torch momentum)."""
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=momentum,
        epsilon=epsilon,
        dtype=dtype,
        param_dtype=jnp.float32,
        name=name,
    )


@functools.lru_cache(maxsize=64)
def _align_corners_matrix(n: int, factor: int) -> np.ndarray:
    """[n * factor, n] linear-interpolation weights with ``align_corners=True`` (torch)."""
    m = n * factor
    out = np.zeros((m, n), np.float32)
    if n == 1:
        out[:, 0] = 1.0
        return out
    src = np.arange(m) * (n - 1) / (m - 1)
    lo = np.minimum(np.floor(src).astype(int), n - 2)
    frac = (src - lo).astype(np.float32)
    out[np.arange(m), lo] = 1.0 - frac
    out[np.arange(m), lo + 1] += frac
    return out


def upsample_align_corners(x: jnp.ndarray, factor: int = 2) -> jnp.ndarray:
    """Bilinear upsampling of [B, H, W, C] to [B, H * f, W * f, C], torch ``align_corners=True`` semantics."""
    _, h, w, _ = x.shape
    ah = jnp.asarray(_align_corners_matrix(h, factor), x.dtype)
    aw = jnp.asarray(_align_corners_matrix(w, factor), x.dtype)
    x = jnp.einsum("oh,bhwc->bowc", ah, x)
    return jnp.einsum("pw,bowc->bopc", aw, x)


class DoubleConv(nn.Module):
    """(3x3 conv, pad 1 -> BN -> ReLU) x 2, as in NeMo's UpsamplingLayer; mid channels = ``mid`` or out."""

    features: int
    mid: int | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        for i, f in enumerate((self.mid or self.features, self.features)):
            x = conv(f, 3, name=f"conv{i}", dtype=self.dtype)(x)
            x = batch_norm(train, name=f"bn{i}", dtype=self.dtype)(x)
            x = nn.relu(x)
        return x
