"""Synthetic occluders pasted onto clean images, with the OccludedPASCAL3D+ occlusion levels.

OccludedPASCAL3D+ (Wang et al., 2020) defines the foreground occlusion level by the fraction of the
object mask covered by occluders: L1 20-40 %, L2 40-60 %, L3 60-80 % (L0: the clean image). This
module pastes random textured polygons and ellipses until the covered fraction of a given object
mask falls in the requested level's range. It works on any clean image with an object mask, e.g. a
rendered silhouette of the annotated pose, for users without the occluded release.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

#: Occlusion ratio range ``[low, high)`` of the object mask per level.
LEVELS: dict[int, tuple[float, float]] = {0: (0.0, 0.0), 1: (0.2, 0.4), 2: (0.4, 0.6), 3: (0.6, 0.8)}


def occlusion_ratio(object_mask: np.ndarray, occluder_mask: np.ndarray) -> float:
    """Fraction of the object mask covered by the occluder mask. ``[H, W], [H, W] -> float``."""
    obj = np.asarray(object_mask) > 0
    area = obj.sum()
    if area == 0:
        raise ValueError("occlusion_ratio: the object mask is empty")
    return float((obj & (np.asarray(occluder_mask) > 0)).sum() / area)


def _random_shape(rng: np.random.Generator, draw: ImageDraw.ImageDraw, centre, scale):
    """Draws one filled random polygon or ellipse (value 255) around ``centre`` with size ~``scale``."""
    cx, cy = centre
    if rng.random() < 0.5:
        rx, ry = scale * rng.uniform(0.4, 1.0, 2)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    else:
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = scale * rng.uniform(0.5, 1.2, n)
        points = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a, r in zip(angles, radii, strict=True)]
        draw.polygon(points, fill=255)


def _occluder_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random occluder appearance ``[H, W, 3]`` float in [0, 1]: a colour with stripes or noise."""
    colour = rng.uniform(0, 1, 3)
    other = rng.uniform(0, 1, 3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if rng.random() < 0.5:
        angle, freq = rng.uniform(0, np.pi), rng.uniform(0.2, 1.0)
        t = 0.5 + 0.5 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))
    else:
        t = rng.uniform(0, 1, (height, width)).astype(np.float32)
    return colour * t[..., None] + other * (1 - t[..., None])


def make_occluder_mask(
    object_mask: np.ndarray,
    level: int,
    rng: np.random.Generator,
    max_tries: int = 200,
) -> tuple[np.ndarray, float]:
    """An occluder mask whose coverage of ``object_mask`` falls in ``LEVELS[level]``.

    Shapes are added one at a time around random object pixels; a shape that overshoots the range is
    discarded and a smaller one tried. Raises ``RuntimeError`` after ``max_tries`` shapes.

    Args:
      object_mask: ``[H, W]`` object mask (non-zero = object), not empty.
      level: 1, 2 or 3 (0 returns an empty mask).
      rng: numpy generator (the only source of randomness).
    Returns:
      ``(occluder_mask [H, W] uint8 in {0, 1}, ratio)``.
    """
    labels, ratio = occluder_shapes(object_mask, level, rng, max_tries)
    return (labels > 0).astype(np.uint8), ratio


def occluder_shapes(
    object_mask: np.ndarray,
    level: int,
    rng: np.random.Generator,
    max_tries: int = 200,
) -> tuple[np.ndarray, float]:
    """Like :func:`make_occluder_mask`, returning ``(labels [H, W] int32, ratio)``: 0 = free,
    ``k > 0`` = the k-th pasted shape (later shapes on top)."""
    if level not in LEVELS:
        raise ValueError(f"make_occluder_mask: level must be one of {sorted(LEVELS)}, got {level}")
    obj = np.asarray(object_mask) > 0
    if obj.sum() == 0:
        raise ValueError("make_occluder_mask: the object mask is empty")
    h, w = obj.shape
    labels = np.zeros((h, w), np.int32)
    if level == 0:
        return labels, 0.0
    low, high = LEVELS[level]
    target = rng.uniform(low + 0.02, high - 0.02)
    ys, xs = np.nonzero(obj)
    extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    ratio = 0.0
    scale = 0.25 * extent
    for _ in range(max_tries):
        canvas = Image.new("L", (w, h), 0)
        i = int(rng.integers(len(xs)))
        _random_shape(rng, ImageDraw.Draw(canvas), (xs[i], ys[i]), scale * rng.uniform(0.6, 1.4))
        shape = np.asarray(canvas) > 0
        new_ratio = occlusion_ratio(obj, (labels > 0) | shape)
        if new_ratio >= high:
            scale *= 0.8
            continue
        if new_ratio > ratio:
            labels = np.where(shape, labels.max() + 1, labels).astype(np.int32)
            ratio = new_ratio
        if ratio >= target:
            return labels, ratio
    if low <= ratio < high:
        return labels, ratio
    raise RuntimeError(f"make_occluder_mask: could not reach level {level} in {max_tries} shapes")


def occlude(
    image: np.ndarray,
    object_mask: np.ndarray,
    level: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Pastes textured occluders onto a clean image so that ``level``'s ratio range is met.

    Args:
      image: ``[H, W, 3]`` uint8 clean image.
      object_mask: ``[H, W]`` object mask of the image (non-zero = object).
      level: 0..3 (OccludedPASCAL3D+ levels; 0 returns the image unchanged).
      rng: numpy generator.
    Returns:
      ``(image [H, W, 3] uint8, occluder_mask [H, W] uint8 in {0, 1}, ratio float)``.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != np.shape(object_mask):
        raise ValueError(
            f"occlude: image {image.shape} / object_mask {np.shape(object_mask)} must be [H, W, 3] / [H, W]"
        )
    labels, ratio = occluder_shapes(object_mask, level, rng)
    out = image.copy()
    for k in range(1, labels.max() + 1):  # one random texture per pasted shape
        texture = _occluder_texture(rng, *labels.shape)
        out = np.where((labels == k)[..., None], np.round(255 * texture), out).astype(np.uint8)
    return out, (labels > 0).astype(np.uint8), ratio
