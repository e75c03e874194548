"""Procedural noise for generated images: 2D fractal noise, 3D value noise and colour ramps.

Shared by the scene generator's surface textures and backgrounds (:mod:`nemo_jax.data.scenes`) and by
the occluder families (:mod:`nemo_jax.data.occlusion`). Everything is numpy on the host and draws
its randomness from the ``numpy.random.Generator`` it is given, so the same generator state gives
the same pixels.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """A ``[h, w]`` float grid resized bicubically to ``[height, width]`` (float32)."""
    img = Image.fromarray(grid.astype(np.float32), mode="F")
    return np.asarray(img.resize((width, height), Image.BICUBIC), np.float32)


def fractal_noise(
    rng: np.random.Generator,
    height: int,
    width: int,
    base_cells: float = 4.0,
    octaves: int = 5,
    persistence: float = 0.5,
) -> np.ndarray:
    """``[H, W]`` float32 fractal (multi-octave value) noise scaled to [0, 1].

    Octave ``k`` is a random grid of ``base_cells * 2**k`` cells along the longer side, resized
    bicubically to the image and weighted ``persistence**k``.
    """
    out = np.zeros((height, width), np.float32)
    longer = max(height, width)
    for k in range(octaves):
        cells = max(2, int(round(base_cells * 2**k)))
        gh = max(2, int(np.ceil(cells * height / longer)) + 1)
        gw = max(2, int(np.ceil(cells * width / longer)) + 1)
        out += persistence**k * _upsample(rng.uniform(0, 1, (gh, gw)), height, width)
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def random_colour(
    rng: np.random.Generator, saturation=(0.2, 0.9), value=(0.25, 0.95), hue=(0.0, 1.0)
) -> np.ndarray:
    """``[3]`` RGB in [0, 1] from uniform HSV ranges (hue wraps)."""
    h = float(rng.uniform(*hue)) % 1.0
    return np.array(colorsys.hsv_to_rgb(h, float(rng.uniform(*saturation)), float(rng.uniform(*value))))


def colour_ramp(t: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Maps ``t [...]`` in [0, 1] through a piecewise-linear ramp of ``colours [K, 3]`` (K >= 2,
    evenly spaced) to RGB ``[..., 3]``."""
    colours = np.asarray(colours, np.float32)
    k = len(colours) - 1
    x = np.clip(t, 0.0, 1.0) * k
    i = np.minimum(np.floor(x).astype(np.int32), k - 1)
    f = (x - i)[..., None]
    return colours[i] * (1 - f) + colours[i + 1] * f


def palette(rng: np.random.Generator, count: int) -> np.ndarray:
    """``[count, 3]`` related colours: a random hue family with varied saturation and value, one
    colour of another hue now and then (natural scenes are mostly a few related colours)."""
    base = float(rng.uniform(0, 1))
    out = []
    for _ in range(count):
        hue = base + rng.normal(0, 0.06) if rng.random() < 0.8 else rng.uniform(0, 1)
        out.append(random_colour(rng, (0.05, 0.75), (0.1, 0.95), (hue, hue)))
    return np.stack(out).astype(np.float32)


def value_noise_3d(lattice: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Trilinear value noise: ``lattice [n, n, n]`` random values (periodic), ``points [..., 3]`` in
    lattice cells -> ``[...]`` float32 in the lattice's range."""
    n = lattice.shape[0]
    p = np.asarray(points, np.float32)
    i0 = np.floor(p).astype(np.int64)
    f = p - i0
    f = f * f * (3 - 2 * f)  # smoothstep: no creases at cell walls
    i0 %= n
    i1 = (i0 + 1) % n
    out = np.zeros(p.shape[:-1], np.float32)
    for dx in (0, 1):
        wx = f[..., 0] if dx else 1 - f[..., 0]
        ix = i1[..., 0] if dx else i0[..., 0]
        for dy in (0, 1):
            wy = f[..., 1] if dy else 1 - f[..., 1]
            iy = i1[..., 1] if dy else i0[..., 1]
            for dz in (0, 1):
                wz = f[..., 2] if dz else 1 - f[..., 2]
                iz = i1[..., 2] if dz else i0[..., 2]
                out += wx * wy * wz * lattice[ix, iy, iz]
    return out


def fractal_noise_3d(lattice: np.ndarray, points: np.ndarray, octaves: int = 3) -> np.ndarray:
    """Sum of ``octaves`` octaves of :func:`value_noise_3d` (frequency x2, weight /2 each), scaled
    back to about [0, 1]. ``points [..., 3]`` in lattice cells of the first octave."""
    out = np.zeros(np.shape(points)[:-1], np.float32)
    total = 0.0
    for k in range(octaves):
        w = 0.5**k
        out += w * value_noise_3d(lattice, np.asarray(points) * 2**k + 17.0 * k)
        total += w
    return out / total
