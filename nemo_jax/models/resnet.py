"""ResNet-18/34/50 trunks in the torchvision layout (v1.5: stride on the 3x3 conv), with a width multiplier.

Module and parameter names mirror torchvision's state_dict (``layer2.0.downsample.1.running_mean`` ->
``layer2_0/downsample_bn/mean``) so that :mod:`nemo_jax.models.convert` is a renaming plus transposes.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from nemo_jax.models.layers import batch_norm, conv

# name -> (block kind, blocks per stage)
RESNET_SPECS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


def _scaled(channels: int, width: float) -> int:
    return max(8, int(round(channels * width)))


class BasicBlock(nn.Module):
    planes: int
    stride: int
    downsample: bool
    dtype: Any = jnp.float32
    expansion = 1

    @nn.compact
    def __call__(self, x, train: bool):
        y = conv(self.planes, 3, self.stride, name="conv1", dtype=self.dtype)(x)
        y = nn.relu(batch_norm(train, name="bn1", dtype=self.dtype)(y))
        y = conv(self.planes, 3, name="conv2", dtype=self.dtype)(y)
        y = batch_norm(train, name="bn2", dtype=self.dtype)(y)
        if self.downsample:
            x = conv(self.planes, 1, self.stride, name="downsample_conv", dtype=self.dtype)(x)
            x = batch_norm(train, name="downsample_bn", dtype=self.dtype)(x)
        return nn.relu(x + y)


class Bottleneck(nn.Module):
    planes: int
    stride: int
    downsample: bool
    dtype: Any = jnp.float32
    expansion = 4

    @nn.compact
    def __call__(self, x, train: bool):
        y = conv(self.planes, 1, name="conv1", dtype=self.dtype)(x)
        y = nn.relu(batch_norm(train, name="bn1", dtype=self.dtype)(y))
        y = conv(self.planes, 3, self.stride, name="conv2", dtype=self.dtype)(y)
        y = nn.relu(batch_norm(train, name="bn2", dtype=self.dtype)(y))
        y = conv(self.planes * 4, 1, name="conv3", dtype=self.dtype)(y)
        y = batch_norm(train, name="bn3", dtype=self.dtype)(y)
        if self.downsample:
            x = conv(self.planes * 4, 1, self.stride, name="downsample_conv", dtype=self.dtype)(x)
            x = batch_norm(train, name="downsample_bn", dtype=self.dtype)(x)
        return nn.relu(x + y)


class ResNetTrunk(nn.Module):
    """conv1 -> bn1 -> relu -> maxpool -> layer1..4.

    Input [B, H, W, 3]; returns ``{"stride4": [B, H/4, W/4, C4], "stride8": [B, H/8, W/8, C8],
    "stride16": [..., C16], "stride32": [..., C32]}`` (outputs of layer1..layer4) in the compute
    dtype. For resnet50 at width 1: C4, C8, C16, C32 = 256, 512, 1024, 2048.
    """

    arch: str = "resnet50"
    width: float = 1.0
    dtype: Any = jnp.float32

    @property
    def stage_channels(self) -> tuple[int, int, int]:
        kind, _ = RESNET_SPECS[self.arch]
        exp = 4 if kind == "bottleneck" else 1
        return tuple(_scaled(64 * 2**i, self.width) * exp for i in (1, 2, 3))

    @property
    def head_widths(self) -> tuple[int, int, int]:
        """NeMo's head widths: (C16, C8, C8 / 2) = (1024, 512, 256) for resnet50."""
        c8, c16, _ = self.stage_channels
        return (c16, c8, max(8, c8 // 2))

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> dict[int, jnp.ndarray]:
        kind, depths = RESNET_SPECS[self.arch]
        block = Bottleneck if kind == "bottleneck" else BasicBlock
        x = x.astype(self.dtype)
        x = conv(_scaled(64, self.width), 7, 2, name="conv1", dtype=self.dtype)(x)
        x = nn.relu(batch_norm(train, name="bn1", dtype=self.dtype)(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        in_ch = _scaled(64, self.width)
        out = {}
        for i, depth in enumerate(depths):
            planes = _scaled(64 * 2**i, self.width)
            for j in range(depth):
                stride = 2 if (j == 0 and i > 0) else 1
                down = j == 0 and (stride != 1 or in_ch != planes * block.expansion)
                x = block(planes, stride, down, dtype=self.dtype, name=f"layer{i + 1}_{j}")(x, train)
                in_ch = planes * block.expansion
            out[f"stride{2 ** (i + 2)}"] = x
        return out
