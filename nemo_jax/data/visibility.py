"""Projected neural-mesh vertices and their visibility, from the project's rasterizer.

A vertex is visible when it projects inside the image and the rasterized depth of its own mesh at one
of the (up to four) pixel centres around its projection is within ``tolerance`` of the vertex depth
(z-buffer test). This is NeMo's notion of a visible vertex: self-occlusion by the mesh's own faces.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nemo_jax.geometry.camera import Camera, project, to_camera_frame
from nemo_jax.render import RasterSettings, render
from nemo_jax.render.visibility import zbuffer_visible


def default_tolerance(vertices: jax.Array, faces: jax.Array) -> jax.Array:
    """Depth tolerance (CAD units): half the mean edge length of the mesh. ``[V,3], [F,3] -> []``.

    Padding faces (any index outside ``[0, V)``, e.g. -1) are ignored.
    """
    valid = jnp.all((faces >= 0) & (faces < vertices.shape[0]), axis=-1)  # [F]
    corners = vertices[jnp.clip(faces, 0, vertices.shape[0] - 1)]  # [F, 3, 3]
    lengths = jnp.linalg.norm(corners - jnp.roll(corners, 1, axis=1), axis=-1)  # [F, 3]
    weights = jnp.broadcast_to(valid[:, None], lengths.shape)
    return 0.5 * jnp.sum(jnp.where(weights, lengths, 0.0)) / jnp.maximum(jnp.sum(weights), 1)


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
      settings: static raster settings giving ``H, W`` (``variant`` is forced to ``hard``).
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
    depth = cam_points[:, 2]
    h, w = settings.height, settings.width
    visible = zbuffer_visible(out.coverage, out.depth, kp2d, depth, tolerance, two_sided=True)
    in_image = (kp2d[:, 0] >= -0.5) & (kp2d[:, 0] <= w - 0.5) & (kp2d[:, 1] >= -0.5) & (kp2d[:, 1] <= h - 0.5)
    visible = visible & in_image & (depth > settings.near)
    return kp2d.astype(jnp.float32), visible, out.overflow
