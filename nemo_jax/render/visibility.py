"""Vertex visibility against a rendered z-buffer: the one rule behind the datasets' stored keypoints
(``kp2d`` / ``visible``, written by :func:`project_with_visibility`) and the training step's
per-image visibility (:func:`nemo_jax.train.vertex_view`, which recomputes it from the pose so that
flips and crops stay consistent, through :func:`vertex_visibility`).

A vertex is visible when it projects inside the image, lies in front of the near plane, and at one
of the four pixel centres around its projection the mesh covers the pixel and the vertex passes the
depth test there (a single pixel would miss vertices on the silhouette). This is NeMo's notion of a
visible vertex: self-occlusion by the mesh's own faces.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nemo_jax.geometry.camera import Camera, project, to_camera_frame
from nemo_jax.render.rasterize import render
from nemo_jax.render.settings import RasterSettings


def mean_edge_length(vertices: jax.Array, faces: jax.Array) -> jax.Array:
    """Mean edge length of a mesh (CAD units). ``[V, 3], [F, 3] -> []``.

    Padding faces (any index outside ``[0, V)``, e.g. -1) are ignored.
    """
    valid = jnp.all((faces >= 0) & (faces < vertices.shape[0]), axis=-1)  # [F]
    corners = vertices[jnp.clip(faces, 0, vertices.shape[0] - 1)]  # [F, 3, 3]
    lengths = jnp.linalg.norm(corners - jnp.roll(corners, 1, axis=1), axis=-1)  # [F, 3]
    weights = jnp.broadcast_to(valid[:, None], lengths.shape)
    return jnp.sum(jnp.where(weights, lengths, 0.0)) / jnp.maximum(jnp.sum(weights), 1)


def default_tolerance(vertices: jax.Array, faces: jax.Array) -> jax.Array:
    """Depth tolerance (CAD units): half the mean edge length of the mesh. ``[V,3], [F,3] -> []``."""
    return 0.5 * mean_edge_length(vertices, faces)


def zbuffer_visible(
    coverage: jax.Array,
    depth: jax.Array,
    points: jax.Array,
    z: jax.Array,
    tolerance: jax.Array | float,
    two_sided: bool,
) -> jax.Array:
    """``[V]`` bool: the z-buffer part of :func:`vertex_visibility` (no image or near-plane mask).

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


def vertex_visibility(
    coverage: jax.Array,
    depth: jax.Array,
    points: jax.Array,
    z: jax.Array,
    tolerance: jax.Array | float,
    near: float,
    two_sided: bool,
) -> jax.Array:
    """``[V]`` bool: NeMo's visible vertices (module docstring): inside the image
    (``-0.5 <= x <= W - 0.5``, same for y), ``z > near`` and :func:`zbuffer_visible`.

    Args: as :func:`zbuffer_visible`, plus ``near`` (the render's near plane, CAD units).
      ``two_sided=True`` suits a render without back-face culling (the datasets' keypoints);
      a culled render (training) can show a farther face where a vertex sits on a culled one, so
      it uses the one-sided test.
    """
    h, w = coverage.shape
    in_image = (
        (points[:, 0] >= -0.5)
        & (points[:, 0] <= w - 0.5)
        & (points[:, 1] >= -0.5)
        & (points[:, 1] <= h - 0.5)
    )
    return zbuffer_visible(coverage, depth, points, z, tolerance, two_sided) & in_image & (z > near)


def project_with_visibility(
    vertices: jax.Array,
    faces: jax.Array,
    camera: Camera,
    settings: RasterSettings,
    tolerance: jax.Array | float | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Projects a mesh's vertices into one view and tests them against the mesh's own z-buffer.

    Args:
      vertices: ``[V, 3]`` CAD frame.
      faces: ``[F, 3]`` int.
      camera: the view; pixel ``(row i, col j)`` has its centre at ``(x, y) = (j, i)``.
      settings: static raster settings giving ``H, W`` (``variant`` must be ``hard``).
      tolerance: depth tolerance in CAD units; ``None`` -> :func:`default_tolerance`.
    Returns:
      ``kp2d [V, 2]`` float32 pixel positions ``(x right, y down)``, ``visible [V]`` bool, and the
      render's ``overflow []`` int32 (must be 0 for the visibility to be exact).
    """
    if settings.variant != "hard":
        raise ValueError("project_with_visibility: settings.variant must be 'hard'")
    vertices = jnp.asarray(vertices, jnp.float32)
    faces = jnp.asarray(faces, jnp.int32)
    if tolerance is None:
        tolerance = default_tolerance(vertices, faces)
    out = render(vertices, faces, camera, settings)
    cam_points = to_camera_frame(vertices, camera)
    kp2d = project(cam_points, camera)
    visible = vertex_visibility(
        out.coverage, out.depth, kp2d, cam_points[:, 2], tolerance, settings.near, two_sided=True
    )
    return kp2d.astype(jnp.float32), visible, out.overflow
