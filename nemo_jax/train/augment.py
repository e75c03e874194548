"""Training augmentation on batches of arrays (inside the jitted step, explicit PRNG keys).

Horizontal flip: mirroring the image is the same as viewing the mirror-symmetric object with the
viewpoint ``(azimuth, elevation, theta) -> (-azimuth, elevation, -theta)`` and principal point
``px -> W - 1 - px`` (0-based pixels). Under that pose, vertex ``j`` projects where vertex
``perm[j]`` projected before the flip, mirrored (``perm`` = :func:`nemo_jax.mesh.mirror_permutation`).
The train step recomputes projections from the pose, so only precomputed per-vertex fields
(``kp2d``, ``visible``) need the re-indexing, done here for consistency.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def flip_example(example: dict, flip: jax.Array, perm: jax.Array | None = None) -> dict:
    """Horizontally flips one example where ``flip`` (a traced bool ``[]``) is True.

    Args:
      example: unbatched fields: ``image [H, W, C]``, ``azimuth``, ``theta``, ``px`` (radians,
        0-based pixels), optionally ``kp2d [V, 2]``, ``visible [V]``, ``object_mask [H, W]``,
        ``occluder_mask [H, W]``, ``box [4]`` (x0, y0, x1, y1 pixels).
      flip: whether to flip.
      perm: ``[V]`` mirror permutation, needed only if ``kp2d``/``visible`` are present.
    Returns:
      the example with flipped fields (others unchanged).
    """
    out = dict(example)
    width = example["image"].shape[1]

    def pick(a, b):
        return jnp.where(flip, b, a)

    out["image"] = pick(example["image"], example["image"][:, ::-1])
    for name in ("object_mask", "occluder_mask"):
        if name in example and getattr(example[name], "ndim", 0) >= 2:
            out[name] = pick(example[name], example[name][:, ::-1])
    for name in ("azimuth", "theta"):
        out[name] = pick(example[name], -example[name])
    out["px"] = pick(example["px"], (width - 1) - example["px"])
    if "box" in example:
        box = example["box"]
        out["box"] = pick(box, jnp.stack([(width - 1) - box[2], box[1], (width - 1) - box[0], box[3]]))
    if "kp2d" in example or "visible" in example:
        if perm is None:
            raise ValueError("flip_example: kp2d/visible need the mesh's mirror permutation")
        if "kp2d" in example:
            kp = example["kp2d"][perm]
            out["kp2d"] = pick(example["kp2d"], kp.at[:, 0].set((width - 1) - kp[:, 0]))
        if "visible" in example:
            out["visible"] = pick(example["visible"], example["visible"][perm])
    return out


def colour_jitter(
    key: jax.Array, image: jax.Array, brightness: float, contrast: float, saturation: float
) -> jax.Array:
    """Random brightness, contrast and saturation factors in ``[1 - s, 1 + s]`` (torchvision's
    ColorJitter without hue). ``image``: ``[H, W, 3]`` float in ``[0, 255]``; returns the same,
    clipped."""
    kb, kc, ks = jax.random.split(key, 3)

    def factor(k, s):
        return jax.random.uniform(k, (), minval=1.0 - s, maxval=1.0 + s)

    luma = jnp.array([0.299, 0.587, 0.114], image.dtype)
    image = image * factor(kb, brightness)
    mean = jnp.mean(jnp.tensordot(image, luma, axes=1))
    image = (image - mean) * factor(kc, contrast) + mean
    grey = jnp.tensordot(image, luma, axes=1)[..., None]
    image = (image - grey) * factor(ks, saturation) + grey
    return jnp.clip(image, 0.0, 255.0)
