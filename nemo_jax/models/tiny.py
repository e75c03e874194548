"""'tiny': a five-conv trunk (strides 2, 4, 8, 16, 32) for tests and quick CPU checks; random init only."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from nemo_jax.models.layers import batch_norm, conv


class TinyTrunk(nn.Module):
    """Input [B, H, W, 3] -> ``{"stride4": [B, H/4, W/4, 2c], "stride8": [B, H/8, W/8, 2c],
    "stride16": [..., 4c], "stride32": [..., 8c]}`` with c = 16 * width."""

    width: float = 1.0
    dtype: Any = jnp.float32

    @property
    def base(self) -> int:
        return max(4, int(round(16 * self.width)))

    @property
    def stage_channels(self) -> tuple[int, int, int]:
        c = self.base
        return (2 * c, 4 * c, 8 * c)

    @property
    def head_widths(self) -> tuple[int, int, int]:
        c = self.base
        return (4 * c, 2 * c, 2 * c)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> dict[int, jnp.ndarray]:
        c = self.base
        x = x.astype(self.dtype)
        out = {}
        for i, f in enumerate((c, 2 * c, 2 * c, 4 * c, 8 * c)):
            x = conv(f, 3, 2, name=f"conv{i}", dtype=self.dtype)(x)
            x = nn.relu(batch_norm(train, name=f"bn{i}", dtype=self.dtype)(x))
            if i >= 1:
                out[f"stride{2 ** (i + 1)}"] = x
        return out
