"""Hard rasterization: a z-buffer with one face per pixel (PyTorch3D ``faces_per_pixel=1``,
``blur_radius=0``, what NeMo renders with).

Visibility is decided without gradient by one integer scatter-min over the tiled (face, pixel) pairs
of :mod:`nemo_jax.render.screen`: each pair's key packs its depth, quantised over the view's depth
range, above its face index, so the minimum is the nearest face (ties to the lower face index).
The winning face's barycentrics and depth are then recomputed per pixel from the float vertex
positions, so gradients reach the vertices (and the camera) through them. No per-pixel-per-face
tensor exists at any point.
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp

from nemo_jax.render.screen import Pairs, ScreenMesh
from nemo_jax.render.settings import RasterSettings

_EMPTY = jnp.iinfo(jnp.int32).max


@flax.struct.dataclass
class Fragments:
    """Per-pixel result of hard rasterization of one view.

    Attributes:
      face_index: ``[H, W]`` int32 visible face, ``-1`` where no face covers the pixel centre.
      bary: ``[H, W, 3]`` barycentrics of the pixel centre in that face (perspective-correct if
        the settings say so); zeros where uncovered.
      depth: ``[H, W]`` camera-frame depth of the visible surface; 0 where uncovered.
      coverage: ``[H, W]`` float 1/0.
    """

    face_index: jax.Array
    bary: jax.Array
    depth: jax.Array
    coverage: jax.Array


def face_bits(num_faces: int) -> int:
    """Bits of the packed z-buffer key used by the face index."""
    return max(1, math.ceil(math.log2(num_faces + 1)))


def face_planes(screen: ScreenMesh) -> jax.Array:
    """Per-face screen-space planes, ``[13, F]`` (one column per face: gathering ``planes[:, idx]``
    keeps every field contiguous, which XLA's CPU backend handles faster than row gathers).

    Four quantities are affine in pixel coordinates over a face: its three barycentrics and the
    inverse depth (that is what perspective-correct interpolation means). Relative to the face's
    corner 0, ``value_r(u, v) = value_r(corner 0) + a_r * (u - x0) + b_r * (v - y0)`` with corner
    values ``(1, 0, 0, 1 / z0)``; evaluating around the corner rather than the image origin keeps
    float32 precise. Rows: ``a_r, b_r`` for ``r = 0..3`` (0:8), ``x0, y0`` (8:10), the corners'
    inverse depths (10:13). Each (face, pixel) pair thus costs four multiply-adds. Differentiable
    in ``screen.x, y, z``; rows of masked faces are finite but meaningless.
    """
    x, y = screen.x, screen.y
    inv_z = 1.0 / screen.z  # [3, F]
    inv_area = 1.0 / jnp.where(screen.valid, screen.area2, 1.0)
    cols, depth_a, depth_b = [], 0.0, 0.0
    for i in range(3):  # barycentric i is the edge function of the opposite edge (j, k)
        j, k = (i + 1) % 3, (i + 2) % 3
        a = (y[j] - y[k]) * inv_area
        b = (x[k] - x[j]) * inv_area
        cols += [a, b]
        depth_a, depth_b = depth_a + inv_z[i] * a, depth_b + inv_z[i] * b
    cols += [depth_a, depth_b, x[0], y[0], inv_z[0], inv_z[1], inv_z[2]]
    return jnp.stack(cols, axis=0)


def eval_planes(cols: jax.Array, u: jax.Array, v: jax.Array) -> list[jax.Array]:
    """Barycentrics and inverse depth of gathered plane columns ``[13, N]`` at ``u, v [N, ...]``.

    Returns ``[b0, b1, b2, inv_depth]``, each ``[N, ...]``.
    """
    cols = cols.reshape(cols.shape + (1,) * (u.ndim - 1))
    du, dv = u - cols[8], v - cols[9]
    at_corner = (1.0, 0.0, 0.0, cols[10])
    return [at_corner[r] + cols[2 * r] * du + cols[2 * r + 1] * dv for r in range(4)]


def _edge_table(screen: ScreenMesh) -> jax.Array:
    """Watertight inside-test data per face, ``[12, F]``: ``(xa, ya, dx, dy)`` for each edge.

    A pixel is inside a face iff ``dx * (v - ya) - dy * (u - xa) >= 0`` for its three edges. Each
    edge is evaluated from its lexicographically smaller endpoint, and the face's orientation is
    folded into the (exactly negatable) direction, so two faces sharing an edge compute bitwise
    opposite values there: a pixel centre on the edge falls in at least one of them, never in a
    crack between them (which per-face plane arithmetic would allow, e.g. at a shared vertex that
    projects exactly onto a pixel centre).
    """
    x, y = screen.x, screen.y
    orientation = jnp.where(screen.area2 < 0, -1.0, 1.0)
    cols = []
    for i in range(3):  # edge (j, k) opposite corner i; its edge function is barycentric i * area2
        j, k = (i + 1) % 3, (i + 2) % 3
        swap = (x[k] < x[j]) | ((x[k] == x[j]) & (y[k] < y[j]))
        xa, ya = jnp.where(swap, x[k], x[j]), jnp.where(swap, y[k], y[j])
        xb, yb = jnp.where(swap, x[j], x[k]), jnp.where(swap, y[j], y[k])
        sign = jnp.where(swap, -orientation, orientation)
        cols += [xa, ya, sign * (xb - xa), sign * (yb - ya)]
    return jnp.stack(cols, axis=0)


def zbuffer(planes: jax.Array, screen: ScreenMesh, pairs: Pairs, settings: RasterSettings) -> jax.Array:
    """Visible face per pixel, ``[H * W]`` int32, ``-1`` where empty. No gradient.

    Args:
      planes: ``[13, F]`` from :func:`face_planes` (the inverse-depth plane is used).
    """
    planes, screen, pairs = jax.lax.stop_gradient((planes, screen, pairs))
    num_faces = screen.faces.shape[0]
    fbits = face_bits(num_faces)
    if fbits > 24:
        raise ValueError(f"zbuffer: {num_faces} faces is more than the packed key supports (2^24)")
    levels = (1 << (31 - fbits)) - 1

    # One gather per tile: 12 edge columns, then inverse-depth plane a, b, x0, y0, 1/z0.
    table = jnp.concatenate([_edge_table(screen), planes[6:11]], axis=0)[:, pairs.face]
    col = table[:, :, None, None]  # [17, T, 1, 1]
    u = pairs.px.astype(planes.dtype)
    v = pairs.py.astype(planes.dtype)
    inside = pairs.mask
    for e in range(3):
        xa, ya, dx, dy = col[4 * e], col[4 * e + 1], col[4 * e + 2], col[4 * e + 3]
        inside = inside & (dx * (v - ya) - dy * (u - xa) >= 0)
    inv_depth = col[16] + col[12] * (u - col[14]) + col[13] * (v - col[15])

    # Quantise inverse depth (larger = nearer) over this view's range of used corners.
    inv_z = 1.0 / screen.z
    hi = jnp.max(jnp.where(screen.valid, inv_z, -jnp.inf))
    lo = jnp.min(jnp.where(screen.valid, inv_z, jnp.inf))
    hi = jnp.where(jnp.isfinite(hi), hi, 1.0)
    span = jnp.where(hi > lo, hi - lo, 1.0)
    q = jnp.clip((hi - inv_depth) * (levels / span), 0.0, levels)
    key = (q.astype(jnp.int32) << fbits) | pairs.face[:, None, None]
    key = jnp.where(inside, key, _EMPTY)
    num_pixels = settings.height * settings.width
    index = jnp.where(inside, pairs.py * settings.width + pairs.px, num_pixels)
    buffer = jnp.full((num_pixels,), _EMPTY, jnp.int32)
    buffer = buffer.at[index.reshape(-1)].min(key.reshape(-1), mode="drop")
    return jnp.where(buffer == _EMPTY, -1, buffer & ((1 << fbits) - 1))


def fragments(planes: jax.Array, face_index: jax.Array, settings: RasterSettings) -> Fragments:
    """Differentiable per-pixel barycentrics and depth of the visible faces.

    Args:
      planes: ``[13, F]`` from :func:`face_planes` (gradients flow through them to the
        projected corners).
      face_index: ``[H * W]`` from :func:`zbuffer`.
    """
    h, w = settings.height, settings.width
    covered = face_index >= 0
    cols = planes[:, jnp.maximum(face_index, 0)]  # [13, P]
    pixel = jnp.arange(h * w, dtype=jnp.int32)
    b0, b1, b2, inv_depth = eval_planes(
        cols, (pixel % w).astype(planes.dtype), (pixel // w).astype(planes.dtype)
    )
    inv_depth = jnp.where(covered, inv_depth, 1.0)  # > 0 on covered pixels
    depth = jnp.where(covered, 1.0 / inv_depth, 0.0)
    bary = [b0, b1, b2]
    if settings.perspective_correct:
        bary = [b * cols[10 + i] / inv_depth for i, b in enumerate(bary)]
    bary = jnp.where(covered[:, None], jnp.stack(bary, -1), 0.0)
    return Fragments(
        face_index=face_index.reshape(h, w),
        bary=bary.reshape(h, w, 3),
        depth=depth.reshape(h, w),
        coverage=covered.astype(bary.dtype).reshape(h, w),
    )


def rasterize(screen: ScreenMesh, pairs: Pairs, settings: RasterSettings) -> Fragments:
    """Hard-rasterizes one projected view: z-buffer, then differentiable fragments."""
    planes = face_planes(screen)
    return fragments(planes, zbuffer(planes, screen, pairs, settings), settings)
