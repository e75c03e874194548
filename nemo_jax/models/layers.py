"""Shared building blocks: torch-compatible conv/BN, align-corners upsampling, the U-Net DoubleConv."""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as nn
import flax.linen.normalization as flax_norm
import jax
import jax.numpy as jnp
import numpy as np

# How batch statistics are combined across devices inside a manually sharded train step (see
# :func:`batch_stat_mean`); ``None``: the statistics of the batch the module sees.
_STAT_MEAN: contextvars.ContextVar[Callable[[jax.Array], jax.Array] | None] = contextvars.ContextVar(
    "batch_stat_mean", default=None
)


@contextlib.contextmanager
def batch_stat_mean(mean_over_devices: Callable[[jax.Array], jax.Array]) -> Iterator[None]:
    """While tracing inside this context, :class:`BatchNorm` in training mode averages its
    per-device statistics (``[2, C]``: mean and mean square of this device's rows) with
    ``mean_over_devices``, e.g. a fixed-order mean over the ``'data'`` axis of a ``shard_map``
    (:func:`nemo_jax.train.parallel.ordered_mean`). Outside it BatchNorm is flax's, unchanged."""
    token = _STAT_MEAN.set(mean_over_devices)
    try:
        yield
    finally:
        _STAT_MEAN.reset(token)


class BatchNorm(nn.BatchNorm):
    """flax's BatchNorm (same fields, variables and numbers), whose training statistics can be
    averaged over devices by a function set with :func:`batch_stat_mean` instead of ``lax.pmean``:
    the train step's fixed-order reduction, so that the result does not depend on how the devices
    are spread over processes. Without one (inference, single-device or XLA-partitioned training)
    it computes exactly what ``flax.linen.BatchNorm`` computes."""

    @nn.compact
    def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
        reducer = _STAT_MEAN.get()
        running = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
        if reducer is None or running or mask is not None or not self.use_fast_variance:
            return nn.BatchNorm.__call__.__wrapped__(self, x, use_running_average, mask=mask)
        feature_axes = flax_norm._canonicalize_axes(x.ndim, self.axis)
        reduction_axes = tuple(i for i in range(x.ndim) if i not in feature_axes)
        feature_shape = [x.shape[ax] for ax in feature_axes]
        ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), feature_shape)
        ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), feature_shape)
        # flax's _compute_stats (fast variance, float32), with the device mean in place of pmean
        dtype = jnp.promote_types(self.dtype or jnp.result_type(x), jnp.float32)
        xf = x.astype(dtype)
        local = jnp.stack([xf.mean(reduction_axes), flax_norm._abs_sq(xf).mean(reduction_axes)])
        mean, mean2 = reducer(local) if not self.is_initializing() else local
        var = jnp.maximum(0.0, mean2 - flax_norm._abs_sq(mean))
        if not self.is_initializing():
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return flax_norm._normalize(
            self, x, mean, var, reduction_axes, feature_axes, self.dtype, self.param_dtype,
            self.epsilon, self.use_bias, self.use_scale, self.bias_init, self.scale_init,
            self.force_float32_reductions,
        )  # fmt: skip


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
    """BatchNorm over [B, H, W] per channel; ``momentum`` is flax's (= 1 - torch momentum).
    In a fixed-order sharded train step its statistics span every device (:class:`BatchNorm`)."""
    return BatchNorm(
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
