"""Vertex projections, visibility and the object's footprint, from the viewpoint and the project's
rasterizer (no precomputed keypoints needed, so flips and crops stay consistent).

A vertex is visible when, at one of the four pixel centres around its projection, the mesh covers
the pixel and the vertex's camera-frame depth is at most the rendered (z-buffer) depth there plus a
tolerance (the pixel test alone would miss vertices on the silhouette). Rendering happens at
``1 / render_stride`` of the image resolution to save time.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from nemo_jax.geometry.camera import Camera, project, to_camera_frame
from nemo_jax.render import RasterSettings, render
from nemo_jax.render.visibility import zbuffer_visible
from nemo_jax.train.contrastive import feature_coordinates


@flax.struct.dataclass
class VertexView:
    """Per-image vertex geometry (unbatched shapes; the train step vmaps over images).

    Attributes:
      points: ``[V, 2]`` projections, image pixels (x right, y down, pixel centres at integers).
      visible: ``[V]`` bool.
      object_mask: ``[h, w]`` bool at feature resolution: cells the rendered mesh touches.
      overflow: ``[]`` int32 rasterizer tile overflow (must be 0).
    """

    points: jax.Array
    visible: jax.Array
    object_mask: jax.Array
    overflow: jax.Array


def scale_camera(camera: Camera, stride: int) -> Camera:
    """The camera of an image downsampled by ``stride`` (cell ``j`` covers pixels
    ``[s*j, s*j + s - 1]``)."""
    return camera.replace(
        focal=camera.focal / stride, principal=feature_coordinates(camera.principal, stride)
    )


def vertex_view(
    vertices: jax.Array,
    faces: jax.Array,
    camera: Camera,
    image_size: tuple[int, int],
    feature_stride: int = 8,
    render_stride: int = 2,
    tolerance: float = 0.5,
    tile: int = 8,
) -> VertexView:
    """Projections, visibility and footprint of a mesh in one image.

    Args:
      vertices: ``[V, 3]`` CAD frame; faces: ``[F, 3]`` (``-1`` rows: padding; vertices that no
        real face uses are never visible).
      camera: the image's camera (pixels of the full-resolution image).
      image_size: static ``(H, W)``, divisible by ``feature_stride``.
      feature_stride: backbone stride; ``render_stride`` must divide it.
      render_stride: rasterize at ``H / render_stride``.
      tolerance: depth slack of the visibility test, in units of the mesh's mean edge length (the
        same default, half an edge, as ``nemo_jax.data.project_with_visibility``).
      tile: rasterizer tile size (pixels of the downsampled render).
    """
    height, width = image_size
    if feature_stride % render_stride or height % feature_stride or width % feature_stride:
        raise ValueError(
            f"vertex_view: image {image_size} must be divisible by feature_stride {feature_stride}, "
            f"which must be divisible by render_stride {render_stride}"
        )
    vertices = jax.lax.stop_gradient(vertices)
    camera = jax.lax.stop_gradient(camera)
    rh, rw = height // render_stride, width // render_stride
    settings = RasterSettings(height=rh, width=rw, tile_height=tile, tile_width=tile, cull_backfaces=True)
    small = scale_camera(camera, render_stride)
    out = render(vertices, faces, small, settings)
    cam_points = to_camera_frame(vertices, camera)
    points = project(cam_points, camera)
    small_points = project(cam_points, small)
    real = faces[:, 0] >= 0  # -1 rows pad a sub-type mesh (nemo_jax.mesh.subtypes)
    corners = vertices[jnp.clip(faces, 0)]  # [F, 3, 3]
    lengths = jnp.linalg.norm(corners - jnp.roll(corners, 1, axis=1), axis=-1)
    edge = jnp.sum(lengths * real[:, None]) / jnp.maximum(3.0 * jnp.sum(real), 1.0)
    z = cam_points[:, 2]
    visible = zbuffer_visible(out.coverage, out.depth, small_points, z, tolerance * edge, two_sided=False)
    visible &= z > settings.near
    visible &= jnp.zeros(vertices.shape[0], bool).at[jnp.clip(faces, 0)].max(real[:, None])
    k = feature_stride // render_stride
    cells = out.coverage.reshape(height // feature_stride, k, width // feature_stride, k)
    object_mask = jnp.max(cells, axis=(1, 3)) > 0
    return VertexView(points=points, visible=visible, object_mask=object_mask, overflow=out.overflow)
