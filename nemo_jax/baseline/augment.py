"""Training augmentation of the baseline classifier, inside the jitted step (explicit PRNG keys).

Per image, in this order:

* horizontal flip with probability ``flip_prob``. Mirroring the image shows the mirror-symmetric
  object from ``(azimuth, elevation, theta) -> (-azimuth, elevation, -theta)`` (RADIANS), so the
  labels change with it (``nemo_jax.train.augment`` makes the same change for NeMo);
* scale jitter and shift: zoom by ``s ~ U[1 - scale_jitter, 1 + scale_jitter]`` about the centre
  and shift by up to ``shift`` of the side in each direction (bilinear; pixels from outside the
  crop are 0), a random-resized-crop that keeps the object in view;
* colour jitter (brightness, contrast, saturation factors in ``[1 - x, 1 + x]``).

All amounts 0 (the defaults) leave the batch unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from nemo_jax.train.augment import colour_jitter

FIELDS = {
    "flip_prob": 0.0,
    "scale_jitter": 0.0,
    "shift": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
}


def augment_config(config: ml_collections.ConfigDict) -> dict[str, float]:
    """``config.train.augment`` with defaults for absent fields; unknown fields are an error."""
    given = dict(config.train.get("augment", {}) or {})
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise ValueError(f"config.train.augment: unknown fields {unknown}; known: {sorted(FIELDS)}")
    out = {k: float(given.get(k, v)) for k, v in FIELDS.items()}
    for k, v in out.items():
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"config.train.augment.{k}: expected a value in [0, 1], got {v}")
    return out


def _one(key, image, azimuth, theta, aug):
    """One image ``[H, W, 3]`` float in [0, 255] and its azimuth / theta (radians)."""
    k_flip, k_scale, k_shift, k_colour = jax.random.split(key, 4)
    if aug["flip_prob"] > 0:
        flip = jax.random.bernoulli(k_flip, aug["flip_prob"])
        image = jnp.where(flip, image[:, ::-1], image)
        azimuth = jnp.where(flip, -azimuth, azimuth)
        theta = jnp.where(flip, -theta, theta)
    if aug["scale_jitter"] > 0 or aug["shift"] > 0:
        h, w = image.shape[:2]
        j = aug["scale_jitter"]
        s = jax.random.uniform(k_scale, (), minval=1.0 - j, maxval=1.0 + j)
        shift = jax.random.uniform(k_shift, (2,), minval=-aug["shift"], maxval=aug["shift"])
        size = jnp.array([h, w], jnp.float32)
        # output = input * s + t, in pixel-edge coordinates: the centre stays put, then moves by shift
        t = 0.5 * size * (1.0 - s) + shift * size
        image = jax.image.scale_and_translate(
            image, image.shape, (0, 1), jnp.stack([s, s]), t, method="linear", antialias=True
        )
    if aug["brightness"] > 0 or aug["contrast"] > 0 or aug["saturation"] > 0:
        image = colour_jitter(k_colour, image, aug["brightness"], aug["contrast"], aug["saturation"])
    return image, azimuth, theta


def augment_batch(key, images, azimuth, theta, aug: dict[str, float]):
    """``images [B, H, W, 3]`` (uint8 or float in [0, 255]), ``azimuth`` / ``theta [B]`` radians ->
    augmented float32 images and the labels that go with them (elevation never changes)."""
    images = jnp.asarray(images, jnp.float32)
    if not any(aug.values()):
        return images, azimuth, theta
    keys = jax.random.split(key, images.shape[0])
    return jax.vmap(lambda k, x, a, t: _one(k, x, a, t, aug))(keys, images, azimuth, theta)
