"""VoGE-style volume rendering of vertex Gaussians (Wang et al., ICLR 2023), as NeMo-VoGE uses it.

Every vertex ``i`` of the mesh is an isotropic 3D Gaussian kernel ``rho_i(X) = exp(-lam_i |X -
mu_i|^2)`` centred on it (peak 1, no normalisation), with ``lam_i = 4 ln(1 / coverage) / l_i^2``
and ``l_i`` the mean length of the edges of the faces around vertex ``i`` (VoGE's
``naive_vertices_converter``: the density falls to ``coverage`` at half an edge). Faces only set
the kernel sizes; nothing is rasterized from them.

Along the unit ray ``r(t) = t d`` of a pixel (camera at the origin), kernel ``i`` with camera-frame
centre ``mu`` has, in closed form, its density peak at ``l = mu . d`` and the activation ``a =
lam (|mu|^2 - l^2)`` (``rho(r(t)) = exp(-a - lam (t - l)^2)``). Of the kernels with ``a <
ln(1 / threshold)`` and ``l > 0``, the K nearest by ``l`` are kept, and each gets VoGE's weight
(``Aggregation.py``), transmittance evaluated at its own peak::

    T_m = exp(-absorptivity * sum_k exp(-a_k) * (1 + erf((l_m - l_k) sqrt(lam_k))) / 2)
    w_m = T_m * exp(-a_m) / exp(-1/2)

(the sum includes ``k = m``, so a lone kernel hit through its centre weighs exactly 1). A pixel's
attribute is ``sum_m w_m f_m`` over vertex features, not renormalised; the coverage is
``min(sum_m w_m, 1)``.

Tiling: each kernel's screen box is the projection of its cube ``mu +- R`` with ``R =
sqrt(ln(1 / threshold) / lam)`` (outside that distance from the ray ``a`` exceeds the threshold),
laid out by :func:`nemo_jax.render.screen.tile_pairs` like a face's box: work grows with the
projected area of the kernels, not with pixels x kernels. Kernels whose cube reaches ``near``
are masked. The K nearest are chosen without gradient (:func:`nemo_jax.render.select.nearest_k`)
and their ``l, a`` recomputed per pixel, so gradients reach the vertices and the camera through the
kept kernels only (VoGE's backward does the same).
"""

from __future__ import annotations

import dataclasses
import math

import flax.struct
import jax
import jax.numpy as jnp

from nemo_jax.geometry.camera import Camera
from nemo_jax.render.output import OptArray, RenderOutput
from nemo_jax.render.screen import _COORD_LIMIT, Pairs
from nemo_jax.render.select import nearest_k
from nemo_jax.render.settings import RasterSettings
from nemo_jax.render.variants import register_variant

_EMPTY_ACTIVATION = 60.0  # exp(-60) ~ 1e-26: an empty slot's sentinel, finite in every gradient


@dataclasses.dataclass(frozen=True)
class GaussianParams:
    """Parameters of the ``gaussian`` variant (``RasterSettings.params``).

    Attributes:
      coverage: VoGE's ``percentage``: a kernel's density at half its vertex's mean edge length
        (0.5 in VoGE's converter; NeMo-VoGE infers with 0.6).
      threshold: VoGE's ``thr_activation``: kernels whose peak density on the ray is below it
        (``exp(-a) < threshold``) do not reach the pixel.
      max_kernels: K, kernels kept per pixel, nearest first (VoGE ``max_assign``: 20; 50 in
        NeMo-VoGE's config).
      absorptivity: VoGE's ``tau`` in the transmittance.
    """

    coverage: float = 0.5
    threshold: float = 0.01
    max_kernels: int = 20
    absorptivity: float = 1.0

    def __post_init__(self):
        if not 0 < self.coverage < 1:
            raise ValueError(f"GaussianParams.coverage: expected in (0, 1), got {self.coverage}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"GaussianParams.threshold: expected in (0, 1), got {self.threshold}")
        if not isinstance(self.max_kernels, int) or self.max_kernels < 1:
            raise ValueError(f"GaussianParams.max_kernels: expected a positive int, got {self.max_kernels!r}")
        if not self.absorptivity >= 0:
            raise ValueError(f"GaussianParams.absorptivity: expected >= 0, got {self.absorptivity}")


@flax.struct.dataclass
class ScreenKernels:
    """The vertex kernels of one view. ``V`` vertices.

    Attributes:
      centre: ``[3, V]`` camera-frame kernel centres (differentiable).
      lam: ``[V]`` isotropic precision ``lam`` (1 / CAD units^2), camera-independent.
      valid: ``[V]`` bool: the vertex belongs to a valid face, is finite, and its cube lies in
        front of ``near`` and overlaps the image.
      box: ``[4, V]`` int32 inclusive pixel box ``x0, y0, x1, y1`` of the kernel's reach.
      camera: the view (its intrinsics give the pixel rays).
    """

    centre: jax.Array
    lam: jax.Array
    valid: jax.Array
    box: jax.Array
    camera: Camera


def kernel_precision(vertices: jax.Array, faces: jax.Array, coverage: float) -> tuple[jax.Array, jax.Array]:
    """``(lam [V], has_face [V] bool)``: each vertex's precision from the mean length of the edges
    of its faces (each face's two edges at the vertex; faces with an index outside ``[0, V)``, the
    padding, are ignored)."""
    num_vertices = vertices.shape[0]
    faces = jnp.asarray(faces, jnp.int32)
    in_range = jnp.all((faces >= 0) & (faces < num_vertices), axis=-1)
    f = jnp.clip(faces, 0, num_vertices - 1)
    corners = vertices[f]  # [F, 3, 3]
    # Edge lengths with a floor under the square root: a zero-length edge gets a zero gradient,
    # not NaN (its vertex then has no kernel, see ``has_face``).
    diffs = [corners[:, (i + 1) % 3] - corners[:, i] for i in range(3)]
    edge = [jnp.sqrt(jnp.maximum(jnp.sum(d * d, axis=-1), 1e-30)) for d in diffs]
    finite = jnp.isfinite(edge[0]) & jnp.isfinite(edge[1]) & jnp.isfinite(edge[2])
    use = in_range & finite
    total = jnp.zeros(num_vertices, vertices.dtype)
    count = jnp.zeros(num_vertices, vertices.dtype)
    for i in range(3):  # corner i touches edges i (i -> i+1) and i-1 (i-1 -> i)
        length = jnp.where(use, edge[i] + edge[(i + 2) % 3], 0.0)
        total = total.at[f[:, i]].add(length)
        count = count.at[f[:, i]].add(jnp.where(use, 2.0, 0.0))
    mean = total / jnp.maximum(count, 1.0)
    has_face = (count > 0) & (mean > 1e-12)
    lam = 4.0 * math.log(1.0 / coverage) / jnp.where(has_face, mean, 1.0) ** 2
    return lam, has_face


def project_kernels(
    vertices: jax.Array, faces: jax.Array, camera: Camera, settings: RasterSettings
) -> ScreenKernels:
    """Places one kernel per vertex in the view and bounds its screen reach (the variant's
    ``project``). ``vertices [V, 3]`` world frame, ``faces [F, 3]`` int (``-1`` rows: padding)."""
    params = settings.params
    lam, has_face = kernel_precision(vertices, faces, params.coverage)
    reach = jnp.sqrt(math.log(1.0 / params.threshold) / lam)  # [V]
    rot, t = camera.rotation, camera.translation
    centre = jnp.stack([vertices @ rot[i] + t[i] for i in range(3)])  # [3, V]
    finite = jnp.all(jnp.isfinite(centre), axis=0)
    valid = has_face & finite & (centre[2] - reach > settings.near)
    safe = jnp.where(valid, centre, jnp.array([0.0, 0.0, 1.0])[:, None])
    r = jnp.where(valid, reach, 0.0)
    us, vs = [], []
    for sx in (-1.0, 1.0):  # the 8 corners of the cube centre +- reach bound the sphere's image
        for sy in (-1.0, 1.0):
            for sz in (-1.0, 1.0):
                z = safe[2] + sz * r
                us.append(camera.principal[0] + camera.focal * (safe[0] + sx * r) / z)
                vs.append(camera.principal[1] + camera.focal * (safe[1] + sy * r) / z)
    us, vs = jnp.stack(us), jnp.stack(vs)
    x0 = jnp.ceil(jnp.clip(jnp.min(us, 0), 0.0, _COORD_LIMIT)).astype(jnp.int32)
    y0 = jnp.ceil(jnp.clip(jnp.min(vs, 0), 0.0, _COORD_LIMIT)).astype(jnp.int32)
    x1 = jnp.floor(jnp.clip(jnp.max(us, 0), -1.0, settings.width - 1)).astype(jnp.int32)
    y1 = jnp.floor(jnp.clip(jnp.max(vs, 0), -1.0, settings.height - 1)).astype(jnp.int32)
    valid = valid & (x0 <= x1) & (y0 <= y1)
    return ScreenKernels(
        centre=centre,
        lam=lam,
        valid=jax.lax.stop_gradient(valid),
        box=jax.lax.stop_gradient(jnp.stack([x0, y0, x1, y1])),
        camera=camera,
    )


def pixel_rays(camera: Camera, u: jax.Array, v: jax.Array) -> list[jax.Array]:
    """Unit camera-frame ray directions ``[dx, dy, dz]`` through pixel centres ``(u, v)``."""
    dx = (u - camera.principal[0]) / camera.focal
    dy = (v - camera.principal[1]) / camera.focal
    norm = jax.lax.rsqrt(dx * dx + dy * dy + 1.0)
    return [dx * norm, dy * norm, norm]


def ray_terms(centre: list[jax.Array], lam: jax.Array, ray: list[jax.Array]) -> tuple[jax.Array, jax.Array]:
    """``(l, a)``: peak position along the ray and activation of kernels at ``centre`` (xyz list)."""
    peak = centre[0] * ray[0] + centre[1] * ray[1] + centre[2] * ray[2]
    # |centre - peak * ray|^2 rather than |centre|^2 - peak^2: no float32 cancellation at depth.
    perp = [c - peak * r for c, r in zip(centre, ray, strict=True)]
    return peak, lam * (perp[0] * perp[0] + perp[1] * perp[1] + perp[2] * perp[2])


def voge_weights(
    peak: jax.Array, activation: jax.Array, lam: jax.Array, valid: jax.Array, tau: float
) -> jax.Array:
    """VoGE's weights ``[..., K]`` of the K kernels of each ray (module docstring); 0 where not
    ``valid``. All inputs ``[..., K]``."""
    density = jnp.where(valid, jnp.exp(-activation), 0.0)
    # before[..., m, k]: share of kernel k's density on the ray in front of kernel m's peak.
    before = 0.5 * (
        1.0 + jax.lax.erf((peak[..., :, None] - peak[..., None, :]) * jnp.sqrt(lam)[..., None, :])
    )
    transmittance = jnp.exp(-tau * jnp.sum(density[..., None, :] * before, axis=-1))
    return transmittance * density * math.exp(0.5)


def render_gaussian(
    screen: ScreenKernels, pairs: Pairs, settings: RasterSettings, attributes: OptArray, pixel_table: OptArray
) -> RenderOutput:
    """The ``gaussian`` variant (protocol of :mod:`nemo_jax.render.variants`). No faces:
    ``face_index`` is -1 and ``bary`` 0 everywhere."""
    params = settings.params
    k = params.max_kernels
    h, w = settings.height, settings.width
    num_pixels = h * w
    cut = math.log(1.0 / params.threshold)
    cam = screen.camera

    # 1. Selection, without gradient, over all tiled (kernel, pixel) pairs.
    sg = jax.lax.stop_gradient
    kernel = pairs.face  # [T]
    ray = pixel_rays(sg(cam), pairs.px.astype(screen.centre.dtype), pairs.py.astype(screen.centre.dtype))
    centre = [sg(screen.centre)[i, kernel][:, None] for i in range(3)]
    peak, act = ray_terms(centre, screen.lam[kernel][:, None], ray)
    candidate = pairs.mask & (act < cut) & (peak > 0)
    pixel = (pairs.py * w + pairs.px).reshape(-1)
    chosen = nearest_k(pixel, peak.reshape(-1), candidate.reshape(-1), num_pixels, k)  # [P, K]
    valid = chosen >= 0
    vid = jnp.where(valid, kernel[jnp.maximum(chosen, 0) // pairs.px.shape[1]], 0)  # [P, K]

    # 2. Differentiable terms of the kept kernels, per pixel.
    pix = jnp.arange(num_pixels, dtype=jnp.int32)
    ray = pixel_rays(cam, (pix % w).astype(screen.centre.dtype), (pix // w).astype(screen.centre.dtype))
    ray = [r[:, None] for r in ray]
    centre = [jnp.where(valid, screen.centre[i][vid], 0.0) for i in range(3)]
    lam = jnp.where(valid, screen.lam[vid], 1.0)
    peak, act = ray_terms(centre, lam, ray)
    peak = jnp.where(valid, peak, 0.0)
    act = jnp.where(valid, act, _EMPTY_ACTIVATION)
    weight = jnp.where(valid, voge_weights(peak, act, lam, valid, params.absorptivity), 0.0)  # [P, K]

    features = None
    if attributes is not None:
        features = jnp.einsum("pk,pkc->pc", weight, attributes[vid]).reshape(h, w, -1)
    pixel_values = None
    if pixel_table is not None:
        values = pixel_table.reshape(-1)[vid * num_pixels + pix[:, None]]
        pixel_values = jnp.sum(weight * values, axis=-1).reshape(h, w)
    wsum = jnp.sum(weight, axis=-1)
    ok = wsum > 0
    depth = peak * ray[2]  # camera-frame z of each kernel's peak on the ray
    mean_depth = jnp.where(ok, jnp.sum(weight * depth, -1) / jnp.where(ok, wsum, 1.0), 0.0)
    return RenderOutput(
        features=features,
        pixel_values=pixel_values,
        coverage=jnp.minimum(wsum, 1.0).reshape(h, w),
        depth=mean_depth.reshape(h, w),
        face_index=jnp.full((h, w), -1, jnp.int32),
        bary=jnp.zeros((h, w, 3), screen.centre.dtype),
        overflow=pairs.overflow,
    )


register_variant(
    "gaussian",
    render_gaussian,
    params=GaussianParams,
    project=project_kernels,
    doc="VoGE: one Gaussian kernel per vertex, closed-form ray integrals with transmittance",
)
