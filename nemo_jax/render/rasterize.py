"""The one rendering entry point: :func:`render`, with the variant named by ``RasterSettings``.

``render`` draws ONE view. Batch over poses or images with ``jax.vmap`` (cameras are PyTrees), and
jit at the outermost step with the settings static, e.g.::

    cams = jax.vmap(camera_from_viewpoint)(az, el, th, dist, px, py)  # [B] cameras
    out = jax.vmap(lambda c: render(verts, faces, c, settings, attributes=feats))(cams)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax.geometry.camera import Camera
from nemo_jax.render.output import RenderOutput
from nemo_jax.render.screen import project_mesh, tile_counts, tile_pairs
from nemo_jax.render.settings import RasterSettings
from nemo_jax.render.variants import get_variant

__all__ = ["RenderOutput", "project_primitives", "render", "render_exact", "tiles_needed", "validate_mesh"]


def project_primitives(vertices: jax.Array, faces: jax.Array, camera: Camera, settings: RasterSettings):
    """The variant's screen-space primitives for one view: its own ``project`` if it has one, else
    the mesh's faces (:func:`nemo_jax.render.screen.project_mesh`)."""
    variant = get_variant(settings.variant)
    fn = variant.project or project_mesh
    return fn(vertices, faces, camera, settings)


def render(
    vertices: jax.Array,
    faces: jax.Array,
    camera: Camera,
    settings: RasterSettings,
    attributes: jax.Array | None = None,
    pixel_table: jax.Array | None = None,
) -> RenderOutput:
    """Renders one view of a triangle mesh.

    Args:
      vertices: ``[V, 3]`` float, CAD (world) frame.
      faces: ``[F, 3]`` int vertex indices. Faces with an index outside ``[0, V)`` (use ``-1`` to
        pad meshes to a common size), a non-finite vertex, a vertex at depth ``<= settings.near``,
        or (near-)zero screen area are masked: they draw nothing and give zero gradients.
      camera: the view (:func:`nemo_jax.geometry.camera_from_viewpoint`).
      settings: static; ``settings.variant`` names the registered variant that rasterizes
        (:mod:`nemo_jax.render.variants`).
      attributes: optional ``[V, C]`` per-vertex features to interpolate.
      pixel_table: optional ``[V, H*W]`` vertex-by-pixel values (see ``RenderOutput``).

    Returns:
      :class:`RenderOutput`. Differentiable w.r.t. ``vertices``, ``camera`` fields, ``attributes``
      and ``pixel_table``; finite for any input (invalid geometry is masked, never NaN).
    """
    if faces.ndim != 2 or faces.shape[-1] != 3 or faces.shape[0] == 0:
        raise ValueError(f"render: faces must have shape [F > 0, 3], got {faces.shape}")
    if not jnp.issubdtype(faces.dtype, jnp.integer):  # a cast would truncate 1.7 to vertex 1
        raise TypeError(f"render: faces must be integer vertex indices, got dtype {faces.dtype}")
    if vertices.ndim != 2 or vertices.shape[-1] != 3:
        raise ValueError(f"render: vertices must have shape [V, 3], got {vertices.shape}")
    num_pixels = settings.height * settings.width
    if pixel_table is not None and pixel_table.shape != (vertices.shape[0], num_pixels):
        raise ValueError(
            f"render: pixel_table must have shape [V, H*W] = {(vertices.shape[0], num_pixels)}, "
            f"got {pixel_table.shape}"
        )
    if attributes is not None and (attributes.ndim != 2 or attributes.shape[0] != vertices.shape[0]):
        raise ValueError(
            f"render: attributes must have shape [V={vertices.shape[0]}, C], got {attributes.shape}"
        )
    faces = jnp.asarray(faces, jnp.int32)
    variant = get_variant(settings.variant)
    screen = project_primitives(vertices, faces, camera, settings)
    pairs = tile_pairs(screen, settings)
    return variant.rasterize(screen, pairs, settings, attributes, pixel_table)


def validate_mesh(vertices, faces, source: str = "mesh") -> None:
    """Eager (host-side) check of a mesh before rendering; raises ``ValueError`` naming ``source``.

    ``render`` itself masks invalid geometry under jit; call this where a user's file or argument
    enters the program, so that bad input is reported instead of silently drawing nothing.
    """
    vertices = np.asarray(vertices)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or vertices.shape[0] == 0:
        raise ValueError(f"{source}: vertices must have shape [V > 0, 3], got {vertices.shape}")
    if not np.all(np.isfinite(vertices)):
        bad = int(np.argwhere(~np.isfinite(vertices))[0, 0])
        raise ValueError(f"{source}: vertex {bad} is not finite: {vertices[bad].tolist()}")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise ValueError(f"{source}: faces must have shape [F > 0, 3], got {faces.shape}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"{source}: face indices must be integers, got dtype {faces.dtype}")
    out = (faces < 0) | (faces >= vertices.shape[0])
    if np.any(out):
        row = int(np.argwhere(out)[0, 0])
        raise ValueError(
            f"{source}: face {row} = {faces[row].tolist()} indexes outside the {vertices.shape[0]} vertices"
        )


def render_exact(
    vertices,
    faces,
    camera: Camera,
    settings: RasterSettings,
    attributes=None,
    pixel_table=None,
    max_budget: int = 1 << 22,
) -> tuple[RenderOutput, RasterSettings]:
    """Eager convenience for tools and dataset builders: renders one view and, while tiles
    overflow the budget, re-renders with a doubled ``tile_budget`` (recompiling each time).

    Returns ``(output, settings actually used)``; raises ``RuntimeError`` past ``max_budget``.
    Not for hot loops: size ``tile_budget`` once (e.g. with :func:`tiles_needed`) instead.
    """
    vertices = jnp.asarray(vertices)
    faces = jnp.asarray(faces)  # not cast: render refuses non-integer indices rather than truncate
    while True:
        out = _render_jit(vertices, faces, camera, settings, attributes, pixel_table)
        missing = int(out.overflow)
        if missing == 0:
            return out, settings
        budget = settings.budget(faces.shape[0])
        if budget >= max_budget:
            raise RuntimeError(f"render_exact: {missing} tiles still missing at tile_budget={budget}")
        settings = dataclasses.replace(settings, tile_budget=min(max_budget, 2 * (budget + missing)))


_render_jit = jax.jit(render, static_argnames="settings")


def tiles_needed(vertices, faces, cameras: Camera, settings: RasterSettings) -> jax.Array:
    """Tiles each view of a batch of ``cameras`` (leading axis) needs, ``[N]`` int32.

    Use the maximum over representative views, with a margin, as ``settings.tile_budget``.
    """
    vertices = jnp.asarray(vertices)
    faces = jnp.asarray(faces, jnp.int32)

    def one(camera):
        screen = project_primitives(vertices, faces, camera, settings)
        return tile_counts(screen, settings).sum()

    return jax.jit(jax.vmap(one))(cameras)
