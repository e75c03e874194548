"""A pose-classification baseline in the style of NeMo's Res50-General: a CNN trunk, global average
pooling and one classifier per viewpoint angle (azimuth, elevation, in-plane theta), each angle
discretised into equal bins over its full range. A prediction is the centre of the arg-max bin.

Angles are RADIANS. Bins: azimuth over [0, 2pi), elevation over [-pi/2, pi/2], theta over [-pi, pi).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from nemo_jax import models


@dataclasses.dataclass(frozen=True)
class Bins:
    """Number of bins per angle (10-degree bins by default)."""

    azimuth: int = 36
    elevation: int = 18
    theta: int = 36

    # (low, high) of each angle's range, radians; azimuth and theta wrap around.
    ranges = {
        "azimuth": (0.0, 2 * jnp.pi),
        "elevation": (-jnp.pi / 2, jnp.pi / 2),
        "theta": (-jnp.pi, jnp.pi),
    }

    def to_bin(self, name: str, angle: jax.Array) -> jax.Array:
        """Angles ``[...]`` (radians) -> int32 bin indices ``[...]``."""
        low, high = self.ranges[name]
        n = getattr(self, name)
        width = (high - low) / n
        if name == "elevation":
            return jnp.clip(jnp.floor((angle - low) / width), 0, n - 1).astype(jnp.int32)
        return (jnp.floor(jnp.mod(angle - low, high - low) / width) % n).astype(jnp.int32)

    def to_angle(self, name: str, index: jax.Array) -> jax.Array:
        """Bin indices ``[...]`` -> bin-centre angles ``[...]`` (radians)."""
        low, high = self.ranges[name]
        return low + (index.astype(jnp.float32) + 0.5) * (high - low) / getattr(self, name)


class PoseClassifier(nn.Module):
    """images ``[B, H, W, 3]`` (``models.preprocess``-ed) -> logits dict ``{angle: [B, bins]}``.

    ``dropout`` > 0 drops pooled and hidden features in training (needs a ``'dropout'`` rng).
    """

    trunk: nn.Module
    bins: Bins = Bins()
    dropout: float = 0.0

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        feats = self.trunk(images, train)
        deepest = feats[max(feats, key=lambda k: int(str(k).removeprefix("stride")))]
        pooled = jnp.mean(deepest.astype(jnp.float32), axis=(1, 2))
        drop = nn.Dropout(self.dropout, deterministic=not train or self.dropout == 0)
        pooled = drop(nn.relu(nn.Dense(256, name="fc")(drop(pooled))))
        return {
            name: nn.Dense(getattr(self.bins, name), name=f"head_{name}")(pooled)
            for name in ("azimuth", "elevation", "theta")
        }


def build_classifier(model_config: ml_collections.ConfigDict, bins: Bins = Bins()) -> PoseClassifier:
    """The classifier on the trunk named by a ``models.default_config()``-style config
    (``model_config.dropout``, default 0, is the head's dropout rate)."""
    dropout = float(model_config.get("dropout", 0.0))
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"config.model.dropout: expected a rate in [0, 1), got {dropout}")
    return PoseClassifier(trunk=models.build_trunk(model_config), bins=bins, dropout=dropout)


def classification_loss(
    logits: dict, azimuth, elevation, theta, bins: Bins, label_smoothing: float = 0.0
) -> jax.Array:
    """Mean over the batch of the summed per-angle cross-entropies. Angles ``[B]`` radians.
    ``label_smoothing`` moves that much of each target's mass uniformly over the angle's bins."""

    total = 0.0
    for name, angle in (("azimuth", azimuth), ("elevation", elevation), ("theta", theta)):
        labels = jax.nn.one_hot(bins.to_bin(name, angle), getattr(bins, name))
        if label_smoothing:
            labels = optax.smooth_labels(labels, label_smoothing)
        total = total + optax.softmax_cross_entropy(logits[name], labels).mean()
    return total


def predict_angles(logits: dict, bins: Bins) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Arg-max bin centres ``(azimuth, elevation, theta)``, each ``[B]`` radians."""
    return tuple(bins.to_angle(n, jnp.argmax(logits[n], axis=-1)) for n in ("azimuth", "elevation", "theta"))
