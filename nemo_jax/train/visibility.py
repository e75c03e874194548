"""Vertex projections, visibility and the object's footprint, from the viewpoint and the project's
rasterizer (no precomputed keypoints needed, so flips and crops stay consistent).

Visibility is :func:`nemo_jax.render.vertex_visibility`, the rule the datasets' stored
``kp2d`` / ``visible`` come from, evaluated on a back-face-culled render at ``1 / render_stride``
of the image resolution (to save time) with the one-sided depth test.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from nemo_jax.geometry.camera import Camera, project, scale_camera, to_camera_frame
from nemo_jax.render import RasterSettings, render
from nemo_jax.render.visibility import mean_edge_length, vertex_visibility


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


def vertex_view(
    vertices: jax.Array,
    faces: jax.Array,
    camera: Camera,
    image_size: tuple[int, int],
    feature_stride: int = 8,
    render_stride: int = 2,
    tolerance: float = 0.5,
    tile: int = 8,
    box: jax.Array | None = None,
) -> VertexView:
    """Projections, visibility and footprint of a mesh in one image.

    Args:
      vertices: ``[V, 3]`` CAD frame; faces: ``[F, 3]``.
      camera: the image's camera (pixels of the full-resolution image).
      image_size: static ``(H, W)``, divisible by ``feature_stride``.
      feature_stride: backbone stride; ``render_stride`` must divide it.
      render_stride: rasterize at ``H / render_stride``.
      tolerance: depth slack of the visibility test, in units of the mesh's mean edge length (the
        same default, half an edge, as ``nemo_jax.render.project_with_visibility``).
      tile: rasterizer tile size (pixels of the downsampled render).
      box: optional ``[4]`` ``(x0, y0, x1, y1)`` image pixels: only vertices projecting inside it
        are visible (NeMo: inside the object's box; the data builders' box also excludes a crop's
        zero padding). The image itself always bounds visibility.
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
    z = cam_points[:, 2]
    tol = tolerance * mean_edge_length(vertices, faces)
    visible = vertex_visibility(out.coverage, out.depth, small_points, z, tol, settings.near, two_sided=False)
    if box is not None:  # vertex_visibility already keeps them inside the image
        visible &= (points[:, 0] >= box[0]) & (points[:, 0] <= box[2])
        visible &= (points[:, 1] >= box[1]) & (points[:, 1] <= box[3])
    k = feature_stride // render_stride
    cells = out.coverage.reshape(height // feature_stride, k, width // feature_stride, k)
    object_mask = jnp.max(cells, axis=(1, 3)) > 0
    return VertexView(points=points, visible=visible, object_mask=object_mask, overflow=out.overflow)
