"""Screen-space triangles and the face-window tiling shared by every rasterizer variant.

Rasterizing in a pure array language means choosing, with static shapes, which (pixel, face) pairs to
evaluate. Evaluating all of them costs ``H * W * F`` per view; here each face visits only the pixels
of its own screen box instead, cut into fixed-size tiles:

1. every face gets ``ceil(box_w / tile_w) * ceil(box_h / tile_h)`` tiles (0 if masked);
2. a cumulative sum lays the tiles of all faces end to end; ``budget`` static slots learn their
   face from a running count of the faces' end marks (a vectorised ``searchsorted`` of the slot
   index in that sum), so slot ``t`` knows its face and which tile of the face's box it covers;
3. each slot expands to ``tile_h x tile_w`` pixels: a ``[budget, tile_h * tile_w]`` array of pairs
   (row-major within the tile; one flat minor axis vectorises better on CPU than ``[.., th, tw]``)

Nothing has shape ``[faces, H, W]``; work and memory are ``O(budget * tile_h * tile_w)``, about the
object's projected area plus one tile per face. Slots past the last needed one are masked; tiles that
do not fit in the budget are counted in ``overflow`` (dropped, never wrong silently).

No gradient flows through this module's integer outputs (which faces cover which pixels); the
variants recompute differentiable quantities from :class:`ScreenMesh`'s float fields.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from nemo_jax.geometry.camera import Camera
from nemo_jax.render.scatter import flat_scatter
from nemo_jax.render.settings import RasterSettings

# Clamp for projected coordinates before they become integers (avoids int32 overflow for points
# projected near infinity). Any value well outside the image works.
_COORD_LIMIT = 1e6


@flax.struct.dataclass
class ScreenMesh:
    """A mesh projected into one view, stored per face corner, corner-major. ``F`` faces.

    Layout is structure-of-arrays (``[3, F]``: corner, face): XLA's CPU backend vectorises
    contiguous per-face arrays far better than ``[F, 3, 2]`` slices (measured 10x on the projection
    alone). Per-corner storage keeps the face-vertex gather out of the per-view work:
    ``vertices[faces]`` does not depend on the camera, so under ``vmap`` over views it is computed
    once, and everything per view is dense arithmetic.

    Attributes:
      x, y: ``[3, F]`` pixel coordinates of the corners (0 for corners at or behind ``near``).
      z: ``[3, F]`` camera-frame depth of the corners (1 for corners at or behind ``near``).
      faces: ``[F, 3]`` vertex indices clamped into range (masked faces may point anywhere).
      valid: ``[F]`` bool, the face is rasterized (in range, finite, in front of ``near``,
        not degenerate, not culled, not off-screen).
      area2: ``[F]`` signed doubled screen area (pixels^2) in the y-down pixel frame: negative for
        a face whose counter-clockwise winding faces the camera.
      box: ``[4, F]`` int32 rows ``x0, y0, x1, y1``: the inclusive pixel range the face (grown by
        the blur radius) can touch, clipped to the image.
      world: ``[3, 3, F]`` (xyz, corner, face) world-frame corner positions, camera-independent.
      camera: the view that projected them. With ``world`` it lets per-pixel quantities be
        recomputed from constants (see :func:`nemo_jax.render.hard.fragments`).
    """

    x: jax.Array
    y: jax.Array
    z: jax.Array
    faces: jax.Array
    valid: jax.Array
    area2: jax.Array
    box: jax.Array
    world: jax.Array
    camera: Camera


def project_mesh(
    vertices: jax.Array, faces: jax.Array, camera: Camera, settings: RasterSettings
) -> ScreenMesh:
    """Projects a mesh and decides, per face, whether and where it is rasterized.

    Args:
      vertices: ``[V, 3]`` float, world (CAD) frame.
      faces: ``[F, 3]`` int; entries outside ``[0, V)`` (e.g. ``-1`` padding) mask the face.
      camera: the view.
      settings: static settings.
    """
    num_vertices = vertices.shape[0]
    faces = jnp.asarray(faces, jnp.int32)
    in_range = jnp.all((faces >= 0) & (faces < num_vertices), axis=-1)
    faces = jnp.clip(faces, 0, num_vertices - 1)
    world = jnp.moveaxis(vertices[faces.T], -1, 0)  # [xyz, corner, F]; camera-independent
    rot, t = camera.rotation, camera.translation
    cam = [rot[i, 0] * world[0] + rot[i, 1] * world[1] + rot[i, 2] * world[2] + t[i] for i in range(3)]
    finite = jnp.isfinite(cam[0]) & jnp.isfinite(cam[1]) & jnp.isfinite(cam[2])
    in_front = finite & (cam[2] > settings.near)  # [3, F]
    z = jnp.where(in_front, cam[2], 1.0)
    x = camera.principal[0] + camera.focal * jnp.where(in_front, cam[0], 0.0) / z
    y = camera.principal[1] + camera.focal * jnp.where(in_front, cam[1], 0.0) / z
    area2 = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0])
    valid = in_range & jnp.all(in_front, axis=0) & (jnp.abs(area2) > settings.min_area)
    if settings.cull_backfaces:
        # A face wound counter-clockwise around its outward normal, seen from outside, is
        # counter-clockwise for a y-up viewer, hence negative area in the y-down pixel frame.
        valid = valid & (area2 < 0)

    pad = settings.blur_radius
    x0 = jnp.ceil(jnp.clip(jnp.min(x, axis=0) - pad, 0.0, _COORD_LIMIT)).astype(jnp.int32)
    y0 = jnp.ceil(jnp.clip(jnp.min(y, axis=0) - pad, 0.0, _COORD_LIMIT)).astype(jnp.int32)
    x1 = jnp.floor(jnp.clip(jnp.max(x, axis=0) + pad, -1.0, settings.width - 1)).astype(jnp.int32)
    y1 = jnp.floor(jnp.clip(jnp.max(y, axis=0) + pad, -1.0, settings.height - 1)).astype(jnp.int32)
    valid = valid & (x0 <= x1) & (y0 <= y1)
    return ScreenMesh(
        x=x,
        y=y,
        z=z,
        faces=faces,
        valid=jax.lax.stop_gradient(valid),
        area2=area2,
        box=jax.lax.stop_gradient(jnp.stack([x0, y0, x1, y1])),
        world=world,
        camera=camera,
    )


@flax.struct.dataclass
class Pairs:
    """The (face, pixel) pairs one render evaluates, ``[T, K]`` with ``T`` the tile budget and
    ``K = th * tw`` the pixels of a tile, row-major.

    Attributes:
      face: ``[T]`` int32 face of each tile slot (clamped into range when the slot is empty).
      px, py: ``[T, K]`` int32 pixel column / row of each pair.
      mask: ``[T, K]`` bool, the pair lies inside its face's box, on a used slot.
      overflow: ``[]`` int32, tiles needed beyond the budget (0: every face was fully visited).
    """

    face: jax.Array
    px: jax.Array
    py: jax.Array
    mask: jax.Array
    overflow: jax.Array


def tile_counts(screen: ScreenMesh, settings: RasterSettings) -> jax.Array:
    """``[N]`` int32 tiles each primitive's box needs (0 for masked ones); reads ``box, valid``."""
    x0, y0, x1, y1 = screen.box
    nx = (x1 - x0) // settings.tile_width + 1
    ny = (y1 - y0) // settings.tile_height + 1
    return jnp.where(screen.valid, nx * ny, 0)


def tile_pairs(screen: ScreenMesh, settings: RasterSettings) -> Pairs:
    """Lays each valid face's box out as tiles in a static budget of slots (module docstring).

    Reads only ``screen.box`` ``[4, N]`` and ``screen.valid`` ``[N]``, so any primitive with a
    screen box can be tiled (the ``gaussian`` variant's vertex kernels are); ``Pairs.face`` is
    then the primitive's index."""
    th, tw = settings.tile_height, settings.tile_width
    num_faces = screen.box.shape[1]  # primitives: faces, or whatever the variant's projection tiles
    budget = settings.budget(num_faces)
    x0, y0, x1, y1 = screen.box
    nx = (x1 - x0) // tw + 1
    count = tile_counts(screen, settings)
    end = jnp.cumsum(count)
    slot = jnp.arange(budget, dtype=jnp.int32)
    # owner[t] = number of faces whose tiles end at or before slot t (searchsorted(end, t, "right")),
    # computed as the running count of end marks: one scatter-add and one cumsum, O(F + budget),
    # about twice as fast on CPU as a binary search per slot.
    marks = flat_scatter(budget, "add")(end, jnp.ones_like(end))
    owner = jnp.cumsum(marks)  # == F past the end
    used = owner < num_faces
    face = jnp.minimum(owner, num_faces - 1)
    local = slot - (end[face] - count[face])
    tx = local % nx[face]
    ty = local // nx[face]
    within = jnp.arange(th * tw, dtype=jnp.int32)
    px = (x0[face] + tx * tw)[:, None] + (within % tw)[None, :]
    py = (y0[face] + ty * th)[:, None] + (within // tw)[None, :]
    mask = used[:, None] & (px <= x1[face][:, None]) & (py <= y1[face][:, None])
    overflow = jnp.maximum(end[-1] - budget, 0).astype(jnp.int32)
    return Pairs(face=face, px=px, py=py, mask=mask, overflow=overflow)
