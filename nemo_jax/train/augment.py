"""Training augmentation on batches of arrays (inside the jitted step, explicit PRNG keys).

Horizontal flip: mirroring the image is the same as viewing the mirror-symmetric object with the
viewpoint ``(azimuth, elevation, theta) -> (-azimuth, elevation, -theta)`` and principal point
``px -> W - 1 - px`` (0-based pixels). Under that pose, vertex ``j`` projects where vertex
``perm[j]`` projected before the flip, mirrored (``perm`` = :func:`nemo_jax.mesh.mirror_permutation`).
The train step recomputes projections from the pose, so only precomputed per-vertex fields
(``kp2d``, ``visible``) need the re-indexing, done here for consistency.

Shift and scale (:func:`shift_scale_example`): moving and zooming the image about its centre is the
same scene seen by a camera whose principal point moved with the image and whose focal length was
multiplied by the zoom, so the pose and distance labels stay as they are.
"""

from __future__ import annotations

import math

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


def similarity_points(points: jax.Array, scale: jax.Array, shift: jax.Array, centre: jax.Array) -> jax.Array:
    """``u' = scale * (u - centre) + centre + shift`` for points ``[..., 2]`` (x, y pixels)."""
    return scale * (points - centre) + centre + shift


def shift_scale_example(example: dict, shift: jax.Array, scale: jax.Array) -> dict:
    """Moves and zooms one example's image by the similarity ``u' = scale * (u - c) + c + shift``
    about the image centre ``c = ((W - 1) / 2, (H - 1) / 2)`` (0-based pixel centres), and its camera
    with it, so the projections the train step computes from the pose stay exact.

    Under a pinhole camera the projection is ``p + f * X / Z``; moving the principal point to
    ``scale * (p - c) + c + shift`` and multiplying the focal length by ``scale`` gives
    ``scale * (u - c) + c + shift`` for every point ``u`` it projected to before (zooming the image is
    scaling the focal length; the distance is unchanged).

    Args:
      example: unbatched fields: ``image [H, W, C]`` (float), ``px``, ``py`` (0-based pixels),
        ``focal`` (the toolkit focal, times ``viewport`` the focal length in pixels), optionally
        ``kp2d [V, 2]``, ``visible [V]``, ``object_mask [H, W]``, ``occluder_mask [H, W]``,
        ``box [4]`` (x0, y0, x1, y1 pixels).
      shift: ``[2]`` (x, y) pixels.
      scale: ``[]`` zoom factor (> 0).
    Returns:
      the example with moved fields (others unchanged). The image is resampled bilinearly; pixels
      that come from outside the source image repeat its nearest edge pixel (edge replication), the
      masks are resampled by nearest neighbour the same way. ``box`` and ``kp2d`` are moved (not
      clipped: vertices outside the image are never visible in the train step); ``visible`` is
      cleared for key points moved outside the image.
    """
    out = dict(example)
    height, width = example["image"].shape[:2]
    dtype = jnp.result_type(example["px"], float)
    centre = jnp.array([(width - 1) / 2.0, (height - 1) / 2.0], dtype)
    scale = jnp.asarray(scale, dtype)
    shift = jnp.asarray(shift, dtype)
    # Inverse map: output pixel u' samples the source at (u' - c - shift) / scale + c.
    yy, xx = jnp.meshgrid(jnp.arange(height, dtype=dtype), jnp.arange(width, dtype=dtype), indexing="ij")
    src_x = (xx - centre[0] - shift[0]) / scale + centre[0]
    src_y = (yy - centre[1] - shift[1]) / scale + centre[1]

    def warp(plane, order):
        return jax.scipy.ndimage.map_coordinates(plane, [src_y, src_x], order=order, mode="nearest")

    image = example["image"]
    planes = image.reshape(height, width, -1)
    warped = jax.vmap(lambda p: warp(p.astype(dtype), 1), in_axes=2, out_axes=2)(planes)
    out["image"] = warped.reshape(image.shape).astype(image.dtype)
    for name in ("object_mask", "occluder_mask"):
        if name in example and getattr(example[name], "ndim", 0) >= 2:
            out[name] = warp(example[name].astype(dtype), 0).astype(example[name].dtype)
    p = similarity_points(jnp.stack([example["px"], example["py"]]).astype(dtype), scale, shift, centre)
    out["px"], out["py"] = p[0].astype(example["px"].dtype), p[1].astype(example["py"].dtype)
    out["focal"] = (example["focal"] * scale).astype(jnp.result_type(example["focal"]))
    if "box" in example:
        box = example["box"].reshape(2, 2)
        out["box"] = similarity_points(box, scale, shift, centre).reshape(4).astype(example["box"].dtype)
    if "kp2d" in example:
        kp = similarity_points(example["kp2d"], scale, shift, centre).astype(example["kp2d"].dtype)
        out["kp2d"] = kp
        if "visible" in example:
            inside = (kp[:, 0] >= -0.5) & (kp[:, 0] <= width - 0.5)
            inside &= (kp[:, 1] >= -0.5) & (kp[:, 1] <= height - 0.5)
            out["visible"] = example["visible"] & inside
    return out


def draw_shift_scale(
    key: jax.Array, n: int, shift_px: float, scale_range: tuple[float, float]
) -> tuple[jax.Array, jax.Array]:
    """``n`` random similarity transforms: shifts ``[n, 2]`` uniform in ``[-shift_px, shift_px]`` per
    axis and scales ``[n]`` log-uniform in ``scale_range``."""
    k_shift, k_scale = jax.random.split(key)
    shift = jax.random.uniform(k_shift, (n, 2), minval=-shift_px, maxval=shift_px)
    lo, hi = (math.log(float(s)) for s in scale_range)
    scale = jnp.exp(jax.random.uniform(k_scale, (n,), minval=lo, maxval=hi))
    return shift, scale
