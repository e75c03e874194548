"""A tiny in-memory dataset for smoke tests and quick checks: a mesh with fixed, mirror-symmetric
per-vertex colours rendered by the project's rasterizer over smooth random backgrounds.

Examples carry the same fields as ``nemo_jax.data`` batches use (``image`` uint8 ``[H, W, 3]``,
angles in radians, 0-based ``px``/``py``, ``distance``, ``focal``, ``viewport``), so the training
loop treats both alike. Not a benchmark dataset: use the data package's synthetic set for that.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax.geometry.camera import camera_from_viewpoint
from nemo_jax.render import RasterSettings, render


def vertex_colours(vertices, perm, seed: int = 0) -> np.ndarray:
    """``[V, 3]`` random colours in [0, 255], equal for mirror partners (``perm``; ``None``, as
    a run without flips passes it: no partners, every vertex its own colour)."""
    colours = np.random.default_rng(seed).uniform(0.0, 255.0, (len(vertices), 3))
    perm = np.arange(len(vertices)) if perm is None else np.asarray(perm)
    return colours[np.minimum(np.arange(len(perm)), perm)].astype(np.float32)


@functools.partial(jax.jit, static_argnums=(3,))
def _render_batch(vertices, faces, colours, settings, cams, backgrounds):
    out = jax.vmap(lambda c: render(vertices, faces, c, settings, attributes=colours))(cams)
    cov = out.coverage[..., None]
    return jnp.clip(out.features * cov + backgrounds * (1.0 - cov), 0, 255).astype(jnp.uint8), out.overflow


def toy_dataset(
    vertices,
    faces,
    perm,
    num: int,
    image_size: tuple[int, int],
    seed: int = 0,
    distance: float = 5.0,
    fill: float = 0.6,
    colour_seed: int = 0,
    colours=None,
) -> list[dict]:
    """``num`` examples of one neural-mesh category.

    Poses: azimuth uniform in [0, 2 pi), elevation uniform in [0, 0.6] rad, theta in [-0.1, 0.1]
    rad, principal point near the image centre; the focal length is set so the mesh spans about
    ``fill`` of the image width. ``colours``: ``[V, 3]`` vertex colours in [0, 255] (default:
    :func:`vertex_colours` of ``perm`` and ``colour_seed``).
    """
    height, width = image_size
    rng = np.random.default_rng(seed)
    vertices = np.asarray(vertices, np.float32)
    extent = float(np.ptp(vertices, axis=0).max())
    viewport = fill * width * distance / extent
    if colours is None:
        colours = vertex_colours(vertices, perm, colour_seed)
    colours = jnp.asarray(colours, jnp.float32)
    settings = RasterSettings(height=height, width=width, tile_height=16, tile_width=16)
    az = rng.uniform(0, 2 * np.pi, num).astype(np.float32)
    el = rng.uniform(0.0, 0.6, num).astype(np.float32)
    th = rng.uniform(-0.1, 0.1, num).astype(np.float32)
    px = ((width - 1) / 2 + rng.uniform(-2, 2, num)).astype(np.float32)
    py = ((height - 1) / 2 + rng.uniform(-2, 2, num)).astype(np.float32)
    coarse = rng.uniform(0, 255, (num, 4, 4, 3)).astype(np.float32)
    backgrounds = np.asarray(jax.image.resize(coarse, (num, height, width, 3), "linear")) + rng.normal(
        0, 12, (num, height, width, 3)
    ).astype(np.float32)
    cams = jax.vmap(camera_from_viewpoint)(
        az, el, th, np.full(num, distance, np.float32), px, py,
        np.ones(num, np.float32), np.full(num, viewport, np.float32),
    )  # fmt: skip
    images, overflow = _render_batch(
        jnp.asarray(vertices), jnp.asarray(faces), colours, settings, cams, backgrounds
    )
    if int(jnp.max(overflow)) > 0:
        raise RuntimeError(
            "toy_dataset: rasterizer tile budget overflow; use a smaller mesh or larger images"
        )
    images = np.asarray(images)
    return [
        {
            "image": images[i],
            "azimuth": az[i],
            "elevation": el[i],
            "theta": th[i],
            "distance": np.float32(distance),
            "px": px[i],
            "py": py[i],
            "focal": np.float32(1.0),
            "viewport": np.float32(viewport),
        }
        for i in range(num)
    ]
