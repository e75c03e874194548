"""PyTorch3D's soft raster (``rasterize_meshes`` with ``faces_per_pixel = K``, ``blur_radius > 0``,
then ``softmax_rgb_blend``), the renderer of NeMo-6D's follow-ups.

Per pixel, the K faces nearest the camera among those that contain the pixel centre or lie within
``blur_radius`` of it are kept (PyTorch3D's K-nearest buffer; farther faces are dropped, unlike
SoftRas). Each kept face ``k`` has barycentrics (perspective-corrected, then clipped to the
triangle and renormalised, PyTorch3D's ``clip_barycentric_coords`` for ``blur_radius > 0``), a depth
``z_k`` from them, and the squared distance ``d_k`` of the pixel centre to its boundary, negative
inside. The blend, as ``pytorch3d.renderer.blending.softmax_rgb_blend`` with a zero background::

    p_k = sigmoid(-d_k / sigma)                       coverage of face k
    zi_k = (far - z_k) / (far - near),  m = max(max_k zi_k, eps)
    w_k = p_k * exp((zi_k - m) / gamma),  delta = max(exp((eps - m) / gamma), eps),  eps = 1e-10
    features = sum_k w_k * attr_k / (sum_k w_k + delta),   coverage = 1 - prod_k (1 - p_k)

Units: PyTorch3D measures ``dists``, ``sigma`` and ``blur_radius`` in NDC (squared); here they are
pixels (``sigma`` in pixels^2, ``blur_radius`` in pixels). PyTorch3D's ``sigma = 1e-4`` on a
64-px square image is ``1e-4 * 32^2 = 0.1`` px^2, the default here.

Selection (which faces, in which order) is made without gradient by :func:`nemo_jax.render.select.
nearest_k` over the tiled pairs; the K selected faces' terms are then recomputed per pixel from the
projected corners, so gradients reach vertices and camera through distances, depths and
barycentrics of the selected faces only (PyTorch3D's backward does the same).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from nemo_jax.render.output import OptArray, RenderOutput
from nemo_jax.render.screen import Pairs, ScreenMesh
from nemo_jax.render.select import nearest_k
from nemo_jax.render.settings import RasterSettings
from nemo_jax.render.soft import _segment_distance_sq
from nemo_jax.render.variants import register_variant

_EPS = 1e-10  # softmax_rgb_blend's eps
_BARY_EPS = 1e-8  # PyTorch3D's kEpsilon in the barycentric corrections
_MAX_K = 150  # PyTorch3D's kMaxPointsPerPixel


@dataclasses.dataclass(frozen=True)
class PyTorch3DParams:
    """Parameters of the ``pytorch3d`` variant (``RasterSettings.params``).

    Attributes:
      faces_per_pixel: K, faces kept per pixel (PyTorch3D's default 8; at most 150).
      sigma: coverage sharpness, pixels^2 (PyTorch3D ``BlendParams.sigma``, NDC^2 there).
      gamma: depth-softmax temperature on normalised inverse depth (``BlendParams.gamma``).
      blur_radius: pixels; faces farther than this from a pixel centre do not reach it. None:
        PyTorch3D's tutorial choice ``sqrt(sigma * log(1 / 1e-4 - 1))``, where ``p`` falls to 1e-4.
    """

    faces_per_pixel: int = 8
    sigma: float = 0.1
    gamma: float = 1e-4
    blur_radius: float | None = None

    def __post_init__(self):
        k = self.faces_per_pixel
        if not isinstance(k, int) or not 1 <= k <= _MAX_K:
            raise ValueError(f"PyTorch3DParams.faces_per_pixel: expected an int in [1, {_MAX_K}], got {k!r}")
        for name in ("sigma", "gamma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PyTorch3DParams.{name}: expected > 0, got {getattr(self, name)}")
        if self.blur_radius is not None and not self.blur_radius >= 0:
            raise ValueError(f"PyTorch3DParams.blur_radius: expected >= 0 or None, got {self.blur_radius}")


def blur_radius(params: PyTorch3DParams) -> float:
    """The blur radius in pixels (explicit, or derived from ``sigma``)."""
    if params.blur_radius is not None:
        return float(params.blur_radius)
    return math.sqrt(params.sigma * math.log(1.0 / 1e-4 - 1.0))


def pair_terms(x, y, z, u, v, perspective_correct: bool):
    """PyTorch3D's per (pixel, face) quantities, for broadcasting arrays.

    Args:
      x, y, z: three corners each (lists of arrays): pixel coordinates and camera depth (> 0).
      u, v: pixel centre coordinates.

    Returns:
      ``(bary [3 arrays], inside, signed_dist_sq, depth)``: clipped, renormalised barycentrics;
      whether the centre is inside; squared distance to the boundary, negative inside; the depth.
    """
    area2 = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0])
    inv_area = 1.0 / jnp.where(area2 != 0, area2, 1.0)
    w = [((x[j] - u) * (y[k] - v) - (x[k] - u) * (y[j] - v)) * inv_area for j, k in ((1, 2), (2, 0), (0, 1))]
    inside = (w[0] >= 0) & (w[1] >= 0) & (w[2] >= 0)
    dist_sq = jnp.minimum(
        jnp.minimum(
            _segment_distance_sq(x[0], y[0], x[1], y[1], u, v),
            _segment_distance_sq(x[1], y[1], x[2], y[2], u, v),
        ),
        _segment_distance_sq(x[2], y[2], x[0], y[0], u, v),
    )
    if perspective_correct:  # BarycentricPerspectiveCorrectionForward
        top = [w[0] * z[1] * z[2], w[1] * z[0] * z[2], w[2] * z[0] * z[1]]
        denom = jnp.maximum(top[0] + top[1] + top[2], _BARY_EPS)
        w = [t / denom for t in top]
    clipped = [jnp.maximum(b, 0.0) for b in w]  # BarycentricClipForward
    total = jnp.maximum(clipped[0] + clipped[1] + clipped[2], _BARY_EPS)
    bary = [c / total for c in clipped]
    depth = bary[0] * z[0] + bary[1] * z[1] + bary[2] * z[2]
    return bary, inside, jnp.where(inside, -dist_sq, dist_sq), depth


def render_pytorch3d(
    screen: ScreenMesh, pairs: Pairs, settings: RasterSettings, attributes: OptArray, pixel_table: OptArray
) -> RenderOutput:
    """The ``pytorch3d`` variant (protocol of :mod:`nemo_jax.render.variants`).

    ``face_index`` / ``bary`` report the nearest kept face (PyTorch3D's ``pix_to_face[..., 0]``),
    which may be a face whose blurred edge, not its interior, reaches the pixel.
    """
    params = settings.params
    k = params.faces_per_pixel
    h, w = settings.height, settings.width
    num_pixels = h * w
    radius_sq = blur_radius(params) ** 2

    # 1. Selection, without gradient: candidates and their depths over all tiled pairs.
    sg = jax.lax.stop_gradient
    face = pairs.face  # [T]
    corners = [[sg(a)[i, face][:, None] for i in range(3)] for a in (screen.x, screen.y, screen.z)]
    u, v = pairs.px.astype(screen.x.dtype), pairs.py.astype(screen.x.dtype)
    _, inside, signed, depth = pair_terms(*corners, u, v, settings.perspective_correct)
    candidate = pairs.mask & (inside | (signed < radius_sq))
    pixel = (pairs.py * w + pairs.px).reshape(-1)
    chosen = nearest_k(pixel, depth.reshape(-1), candidate.reshape(-1), num_pixels, k)  # [P, K]
    valid = chosen >= 0
    sel_face = jnp.where(valid, face[jnp.maximum(chosen, 0) // pairs.px.shape[1]], 0)  # [P, K]

    # 2. Differentiable terms of the selected faces, recomputed per pixel.
    pix = jnp.arange(num_pixels, dtype=jnp.int32)
    pu = (pix % w).astype(screen.x.dtype)[:, None]
    pv = (pix // w).astype(screen.x.dtype)[:, None]
    # Empty slots get a unit triangle beside the pixel: finite terms, weight 0.
    empty_x, empty_y = (pu + 1.0, pu + 2.0, pu + 1.0), (pv, pv, pv + 1.0)
    x = [jnp.where(valid, screen.x[i][sel_face], empty_x[i]) for i in range(3)]
    y = [jnp.where(valid, screen.y[i][sel_face], empty_y[i]) for i in range(3)]
    z = [jnp.where(valid, screen.z[i][sel_face], 1.0) for i in range(3)]
    bary, _, signed, depth = pair_terms(x, y, z, pu, pv, settings.perspective_correct)

    prob = jnp.where(valid, jax.nn.sigmoid(-signed / params.sigma), 0.0)
    zinv = jnp.where(valid, (settings.far - depth) / (settings.far - settings.near), 0.0)
    zmax = jnp.maximum(jnp.max(zinv, axis=-1, keepdims=True), _EPS)
    weight = jnp.where(valid, prob * jnp.exp(jnp.minimum(zinv - zmax, 0.0) / params.gamma), 0.0)
    delta = jnp.maximum(jnp.exp((_EPS - zmax) / params.gamma), _EPS)
    denom = jnp.sum(weight, axis=-1, keepdims=True) + delta
    blend = weight / denom  # [P, K]

    vidx = screen.faces[sel_face]  # [P, K, 3]
    features = None
    if attributes is not None:
        interp = sum(bary[i][..., None] * attributes[vidx[..., i]] for i in range(3))  # [P, K, C]
        features = jnp.sum(blend[..., None] * interp, axis=1).reshape(h, w, -1)
    pixel_values = None
    if pixel_table is not None:
        flat = pixel_table.reshape(-1)
        interp = sum(bary[i] * flat[vidx[..., i] * num_pixels + pix[:, None]] for i in range(3))
        pixel_values = jnp.sum(blend * interp, axis=1).reshape(h, w)

    coverage = 1.0 - jnp.prod(1.0 - prob, axis=-1)
    wsum = jnp.sum(weight, axis=-1)
    ok = wsum > 0
    mean_depth = jnp.where(ok, jnp.sum(weight * depth, -1) / jnp.where(ok, wsum, 1.0), 0.0)
    first = valid[:, 0]
    return RenderOutput(
        features=features,
        pixel_values=pixel_values,
        coverage=coverage.reshape(h, w),
        depth=mean_depth.reshape(h, w),
        face_index=jnp.where(first, sel_face[:, 0], -1).reshape(h, w),
        bary=jnp.where(first[:, None], jnp.stack([b[:, 0] for b in bary], -1), 0.0).reshape(h, w, 3),
        overflow=pairs.overflow,
    )


register_variant(
    "pytorch3d",
    render_pytorch3d,
    params=PyTorch3DParams,
    blur_radius=blur_radius,
    doc="PyTorch3D soft raster: K nearest faces within the blur radius, sigmoid coverage, softmax blend",
)
