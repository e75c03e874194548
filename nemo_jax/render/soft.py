"""Soft rasterization in the style of SoftRas (Liu et al., ICCV 2019).

Every face contributes to pixels near it with a coverage probability
``D = sigmoid(+-d^2 / sigma)`` (``d`` the pixel centre's distance to the triangle boundary, ``+``
inside), and the colours (attributes) of all contributing faces are mixed with a softmax over
normalised inverse depth ``(far - z) / (far - near)`` at temperature ``gamma``, plus a background
term. The silhouette is ``1 - prod(1 - D)``. Gradients flow through coverage (hence silhouettes),
depth and barycentrics.

Work is restricted to the tiled (face, pixel) pairs of :mod:`nemo_jax.render.screen`, with face boxes
grown by the blur radius at which ``D`` drops below ``coverage_threshold``; sums over faces are
``segment_sum``-style scatter-adds, and the softmax's max shift is a scatter-max without gradient
(exact, since a softmax is shift-invariant).
"""

from __future__ import annotations

import dataclasses
import math

import flax.struct
import jax
import jax.numpy as jnp

from nemo_jax.render import hard
from nemo_jax.render.hard import eval_planes, face_planes
from nemo_jax.render.output import OptArray, RenderOutput
from nemo_jax.render.screen import Pairs, ScreenMesh
from nemo_jax.render.settings import RasterSettings
from nemo_jax.render.variants import register_variant


@dataclasses.dataclass(frozen=True)
class SoftParams:
    """Parameters of the ``soft`` variant (``RasterSettings.params``).

    Attributes:
      sigma: coverage sharpness in pixels^2, ``D = sigmoid(+-d^2 / sigma)`` with ``d`` the pixel's
        distance to the triangle's boundary.
      gamma: depth-softmax temperature on depth normalised to ``[0, 1]`` by
        ``(far - z) / (far - near)``.
      background_depth: SoftRas' background epsilon, a normalised depth.
      coverage_threshold: contributions with ``D`` below this are ignored; it sets the blur radius
        ``sqrt(sigma * log(1 / threshold - 1))`` by which face boxes are grown.
    """

    sigma: float = 0.1
    gamma: float = 1e-4
    background_depth: float = 1e-3
    coverage_threshold: float = 1e-4

    def __post_init__(self):
        for name in ("sigma", "gamma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SoftParams.{name}: expected > 0, got {getattr(self, name)}")
        if not 0 < self.coverage_threshold < 0.5:
            raise ValueError(
                f"SoftParams.coverage_threshold: expected in (0, 0.5), got {self.coverage_threshold}"
            )


def blur_radius(params: SoftParams) -> float:
    """Pixels at which the coverage ``D`` falls to ``coverage_threshold``."""
    t = params.coverage_threshold
    return math.sqrt(params.sigma * math.log(1.0 / t - 1.0))


@flax.struct.dataclass
class SoftImage:
    """Soft rasterization of one view.

    Attributes:
      features: ``[H, W, C]`` softmax-aggregated attributes (background contributes zeros), or None.
      pixel_values: ``[H, W]`` aggregated per-pixel table values (see ``render``), or None.
      silhouette: ``[H, W]`` in [0, 1].
      depth: ``[H, W]`` softmax-weighted depth of the contributing faces, 0 where none.
    """

    features: jax.Array | None
    pixel_values: jax.Array | None
    silhouette: jax.Array
    depth: jax.Array


def _segment_distance_sq(ax, ay, bx, by, px, py):
    """Squared distance from points ``(px, py)`` to segments ``a -> b`` (broadcasting arrays)."""
    ex, ey = bx - ax, by - ay
    len_sq = ex * ex + ey * ey
    ok = len_sq > 0
    t = jnp.where(ok, ((px - ax) * ex + (py - ay) * ey) / jnp.where(ok, len_sq, 1.0), 0.0)
    t = jnp.clip(t, 0.0, 1.0)
    dx, dy = px - ax - t * ex, py - ay - t * ey
    return dx * dx + dy * dy


def soft_rasterize(
    screen: ScreenMesh,
    pairs: Pairs,
    settings: RasterSettings,
    attributes: jax.Array | None = None,
    pixel_table: jax.Array | None = None,
) -> SoftImage:
    """Soft-rasterizes one projected view. Shapes as in :func:`nemo_jax.render.render`."""
    params = settings.params
    h, w = settings.height, settings.width
    num_pixels = h * w
    face = pairs.face  # [T]
    vidx = screen.faces[face]  # [T, 3]
    u = pairs.px.astype(screen.x.dtype)  # [T, K]
    v = pairs.py.astype(screen.x.dtype)

    def corner(a, i):  # [3, F] -> [T, 1] of corner i
        return a[i, face][:, None]

    cx = [corner(screen.x, i) for i in range(3)]
    cy = [corner(screen.y, i) for i in range(3)]
    inv_z = [1.0 / corner(screen.z, i) for i in range(3)]
    b0, b1, b2, _ = eval_planes(face_planes(screen)[:, face], u, v)
    inside = (b0 >= 0) & (b1 >= 0) & (b2 >= 0)
    dist_sq = jnp.minimum(
        jnp.minimum(
            _segment_distance_sq(cx[0], cy[0], cx[1], cy[1], u, v),
            _segment_distance_sq(cx[1], cy[1], cx[2], cy[2], u, v),
        ),
        _segment_distance_sq(cx[2], cy[2], cx[0], cy[0], u, v),
    )
    coverage = jax.nn.sigmoid(jnp.where(inside, dist_sq, -dist_sq) / params.sigma)
    live = pairs.mask & (coverage > params.coverage_threshold)

    # SoftRas clips barycentrics to the triangle for pixels outside it.
    bary = [jnp.clip(b, 0.0, 1.0) for b in (b0, b1, b2)]
    total = jnp.maximum(bary[0] + bary[1] + bary[2], 1e-12)
    bary = [b / total for b in bary]
    weighted = [b * iz for b, iz in zip(bary, inv_z, strict=True)]
    inv_depth = weighted[0] + weighted[1] + weighted[2]  # > 0: convex combination of 1/z > 0
    depth = 1.0 / inv_depth
    if settings.perspective_correct:
        bary = [wz / inv_depth for wz in weighted]

    index = jnp.where(live, pairs.py * w + pairs.px, num_pixels).reshape(-1)
    gather_index = jnp.minimum(index, num_pixels - 1)

    def scatter_add(values):  # [T, K, ...] -> [P, ...]
        values = values.reshape((index.shape[0],) + values.shape[2:])
        out = jnp.zeros((num_pixels,) + values.shape[1:], values.dtype)
        return out.at[index].add(values, mode="drop")

    def at_pairs(per_pixel):  # [P] -> [T, K]
        return per_pixel[gather_index].reshape(live.shape)

    znorm = (settings.far - depth) / (settings.far - settings.near)
    shift = jnp.full((num_pixels,), params.background_depth, znorm.dtype)
    shift = shift.at[index].max(jax.lax.stop_gradient(znorm).reshape(-1), mode="drop")
    # <= 0 on live pairs (the shift is their max); dead pairs are zeroed before exp so that
    # neither values nor gradients overflow.
    offset = jnp.where(live, znorm - at_pairs(shift), 0.0)
    expo = jnp.where(live, coverage * jnp.exp(offset / params.gamma), 0.0)
    denom = scatter_add(expo) + jnp.exp((params.background_depth - shift) / params.gamma)
    weight = expo / at_pairs(denom)

    features = None
    if attributes is not None:
        interp = sum(b[..., None] * attributes[vidx[:, i]][:, None] for i, b in enumerate(bary))  # [T, K, C]
        features = scatter_add(weight[..., None] * interp).reshape(h, w, -1)
    pixel_values = None
    if pixel_table is not None:
        pix = gather_index.reshape(live.shape)
        interp = sum(b * pixel_table[vidx[:, i][:, None], pix] for i, b in enumerate(bary))
        pixel_values = scatter_add(weight * interp).reshape(h, w)

    log_miss = jnp.where(live, jnp.log1p(-jnp.minimum(coverage, 1.0 - 1e-7)), 0.0)
    silhouette = 1.0 - jnp.exp(scatter_add(log_miss))
    wsum = scatter_add(weight)
    ok = wsum > 0
    soft_depth = jnp.where(ok, scatter_add(weight * depth) / jnp.where(ok, wsum, 1.0), 0.0)
    return SoftImage(
        features=features,
        pixel_values=pixel_values,
        silhouette=silhouette.reshape(h, w),
        depth=soft_depth.reshape(h, w),
    )


def render_soft(
    screen: ScreenMesh, pairs: Pairs, settings: RasterSettings, attributes: OptArray, pixel_table: OptArray
) -> RenderOutput:
    """The ``soft`` variant (protocol of :mod:`nemo_jax.render.variants`); ``face_index`` and
    ``bary`` come from the hard z-buffer of the same view."""
    frags = hard.rasterize(screen, pairs, settings)
    image = soft_rasterize(screen, pairs, settings, attributes, pixel_table)
    return hard.fragments_output(
        frags, pairs, image.features, image.pixel_values, coverage=image.silhouette, depth=image.depth
    )


register_variant(
    "soft",
    render_soft,
    params=SoftParams,
    blur_radius=blur_radius,
    doc="SoftRas: every face within the blur radius, sigmoid coverage, depth softmax",
)
