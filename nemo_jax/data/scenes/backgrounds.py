"""Textured backgrounds for generated photographs: no two alike.

A background is a base layer and a few overlays, all drawn from the image's generator:
  * base: fractal noise through a colour ramp of related colours, a linear or radial gradient with
    faint noise, or a horizon (a sky-like gradient over a ground texture, the line tilted a little);
  * overlays (0-7): blurred blobs, stripe bands, gradient rectangles (walls, furniture, windows) and
    thin poles or wires.
Sharp random polygons and ellipses are left out on purpose: they are the ``polygons`` occluder
family (:mod:`nemo_jax.data.occlusion`), which nothing else draws.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from nemo_jax.data import noise


def _noise_layer(rng, h, w) -> np.ndarray:
    t = noise.fractal_noise(
        rng,
        h,
        w,
        base_cells=rng.uniform(2, 8),
        octaves=int(rng.integers(3, 7)),
        persistence=rng.uniform(0.35, 0.7),
    )
    return noise.colour_ramp(t, noise.palette(rng, int(rng.integers(2, 5))))


def _gradient_layer(rng, h, w) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = noise.palette(rng, 2)
    if rng.random() < 0.6:
        ang = rng.uniform(0, 2 * np.pi)
        t = np.cos(ang) * xx / w + np.sin(ang) * yy / h
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.hypot(xx - cx, yy - cy) / max(h, w)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    faint = noise.fractal_noise(rng, h, w, base_cells=rng.uniform(3, 10), octaves=4)
    return a * (1 - t[..., None]) + b * t[..., None] + (faint[..., None] - 0.5) * rng.uniform(0.05, 0.2)


def _horizon_layer(rng, h, w) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    tilt = np.tan(np.deg2rad(rng.normal(0, 4)))
    line = rng.uniform(0.05, 0.6) * h + tilt * (xx - w / 2)
    sky = _gradient_layer(rng, h, w)
    if rng.random() < 0.5:
        sky = sky * 0.5 + np.array([0.55, 0.7, 0.9]) * 0.5 * rng.uniform(0.7, 1.1)
    ground = _noise_layer(rng, h, w)
    soft = np.clip((yy - line) / rng.uniform(1, 6) + 0.5, 0, 1)[..., None]
    return sky * (1 - soft) + ground * soft


def _paste_region(img, box, draw_shape, blur, rgb_fn, opacity) -> np.ndarray:
    """Blends a layer into ``img`` inside ``box = (x0, y0, x1, y1)`` (grown by the blur) only:
    ``draw_shape(draw, ox, oy)`` draws the layer's mask with the region's origin at ``(ox, oy)``,
    ``rgb_fn(yy, xx)`` colours it at image coordinates."""
    h, w = img.shape[:2]
    pad = int(np.ceil(3 * blur)) + 2
    x0, y0 = max(0, int(box[0]) - pad), max(0, int(box[1]) - pad)
    x1, y1 = min(w, int(np.ceil(box[2])) + pad), min(h, int(np.ceil(box[3])) + pad)
    if x1 <= x0 or y1 <= y0:
        return img
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    draw_shape(ImageDraw.Draw(mask), x0, y0)
    if blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    alpha = (np.asarray(mask, np.float32) / 255 * opacity)[..., None]
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    out = img.copy()
    out[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - alpha) + rgb_fn(yy, xx) * alpha
    return out


def _overlay(rng, img) -> np.ndarray:
    h, w = img.shape[:2]
    kind = int(rng.choice(4, p=(0.35, 0.15, 0.3, 0.2)))
    colour = noise.palette(rng, 2)
    if kind == 0:  # blurred blob
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.05, 0.35) * w, rng.uniform(0.05, 0.35) * h
        blur = rng.uniform(0.3, 0.8) * min(rx, ry)
        return _paste_region(
            img,
            (cx - rx, cy - ry, cx + rx, cy + ry),
            lambda d, ox, oy: d.ellipse([cx - rx - ox, cy - ry - oy, cx + rx - ox, cy + ry - oy], fill=255),
            blur,
            lambda yy, xx: np.broadcast_to(colour[0], (*yy.shape, 3)),
            rng.uniform(0.4, 0.9),
        )
    if kind == 1:  # band of stripes
        ang, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.05, 0.4), rng.uniform(0, 2 * np.pi)
        x0, y0 = rng.uniform(-0.2, 0.8) * w, rng.uniform(-0.2, 0.8) * h
        x1, y1 = x0 + rng.uniform(0.2, 0.8) * w, y0 + rng.uniform(0.1, 0.5) * h

        def stripes(yy, xx):
            t = (0.5 + 0.5 * np.sin(freq * (np.cos(ang) * xx + np.sin(ang) * yy) + phase))[..., None]
            return colour[0] * t + colour[1] * (1 - t)

        return _paste_region(
            img,
            (x0, y0, x1, y1),
            lambda d, ox, oy: d.rectangle([x0 - ox, y0 - oy, x1 - ox, y1 - oy], fill=255),
            rng.uniform(0, 3),
            stripes,
            rng.uniform(0.3, 0.8),
        )
    if kind == 2:  # a rectangle with a vertical gradient: a wall, a window, furniture
        x0, y0 = rng.uniform(-0.1, 0.9) * w, rng.uniform(-0.1, 0.9) * h
        x1, y1 = x0 + rng.uniform(0.1, 0.6) * w, y0 + rng.uniform(0.1, 0.6) * h
        return _paste_region(
            img,
            (x0, y0, x1, y1),
            lambda d, ox, oy: d.rectangle([x0 - ox, y0 - oy, x1 - ox, y1 - oy], fill=255),
            rng.uniform(0, 2),
            lambda yy, xx: colour[0] + (colour[1] - colour[0]) * (yy / h)[..., None],
            rng.uniform(0.6, 1.0),
        )
    lines = []  # thin poles and wires
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.5:
            x = rng.uniform(0, w)
            lines.append(((x, 0.0, x + rng.normal(0, 0.05) * w, float(h)), int(rng.integers(1, 8))))
        else:
            y = rng.uniform(0, h)
            lines.append(((0.0, y, float(w), y + rng.normal(0, 0.1) * h), int(rng.integers(1, 4))))

    def draw_lines(d, ox, oy):
        for (a, b, c, e), width in lines:
            d.line([a - ox, b - oy, c - ox, e - oy], fill=255, width=width)

    return _paste_region(
        img,
        (0, 0, w, h),
        draw_lines,
        rng.uniform(0, 1),
        lambda yy, xx: np.broadcast_to(colour[0], (*yy.shape, 3)),
        1.0,
    )


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random background ``[H, W, 3]`` float32 RGB in [0, 1]."""
    base = (_noise_layer, _gradient_layer, _horizon_layer)[rng.choice(3, p=(0.4, 0.25, 0.35))]
    img = base(rng, height, width)
    for _ in range(int(rng.integers(0, 8))):
        img = _overlay(rng, img)
    if rng.random() < 0.5:  # defocus: the object is what the camera focuses on
        sigma = rng.uniform(0.5, 3.0)
        pil = Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
        img = np.asarray(pil.filter(ImageFilter.GaussianBlur(sigma)), np.float32) / 255
    return np.clip(img, 0, 1).astype(np.float32)
