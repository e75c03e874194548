"""Vertex visibility against a rendered z-buffer, shared by the datasets' keypoints
(:func:`nemo_jax.data.project_with_visibility`) and training (:func:`nemo_jax.train.vertex_view`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def zbuffer_visible(
    coverage: jax.Array,
    depth: jax.Array,
    points: jax.Array,
    z: jax.Array,
    tolerance: jax.Array | float,
    two_sided: bool,
) -> jax.Array:
    """``[V]`` bool: at one of the four pixel centres around its projection, the mesh covers the
    pixel and the vertex passes the depth test there (a single pixel would miss vertices on the
    silhouette).

    Args:
      coverage, depth: ``[H, W]`` of a hard render (``RenderOutput.coverage`` / ``.depth``).
      points: ``[V, 2]`` projections in that render's pixels (x right, y down, centres at integers).
      z: ``[V]`` camera-frame vertex depths.
      tolerance: depth slack, CAD units.
      two_sided: test ``|depth - z| <= tolerance``; else ``z <= depth + tolerance``.
    """
    h, w = coverage.shape
    x0 = jnp.floor(points[:, 0]).astype(jnp.int32)
    y0 = jnp.floor(points[:, 1]).astype(jnp.int32)
    visible = jnp.zeros(points.shape[0], bool)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        col, row = x0 + dx, y0 + dy
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        col, row = jnp.clip(col, 0, w - 1), jnp.clip(row, 0, h - 1)
        rendered = depth[row, col]
        near = jnp.abs(rendered - z) <= tolerance if two_sided else z <= rendered + tolerance
        visible = visible | (inside & (coverage[row, col] > 0) & near)
    return visible
