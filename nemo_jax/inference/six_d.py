"""6D pose search: the object's 2D position and distance are searched along with its rotation.

NeMo's protocol crops every image at the ground-truth object centre and scale, so its search
(:mod:`nemo_jax.inference.search`) only looks for the three angles. Here the principal point (the
image of the CAD origin, in FEATURE-map pixels) and the distance are unknowns too, after NeMo-6D
(Ma et al., ECCV 2022), per image (all arrays at feature resolution ``[h, w]``):

1. candidate positions: the objectness map ``ReLU(max_v S[v, p] - <clutter, f_p>)`` (the best
   vertex similarity, where it beats the clutter model), smoothed by a Gaussian of
   ``smooth_px`` cells; its ``num_candidates`` highest peaks, each suppressing the others within
   ``nms_radius_px`` (a static top-k with a validity mask);
2. coarse: every candidate x the rotation grid (:func:`nemo_jax.inference.pose_grid`) x the
   distances ``inputs.distance * distance_factors``, NeMo's loss in one vmapped render per
   candidate (:func:`nemo_jax.inference.pose_loss`);
3. fine: the ``search.num_starts`` best coarse poses are refined in parallel with the pose
   search's Adam (:func:`nemo_jax.inference.refine_optimizer`, :func:`nemo_jax.inference.refine_step`)
   over six parameters: the search's four (``search.parametrization``; with ``"angles"`` the
   distance always moves here) with the distance in units of ``inputs.distance`` (so ``lr`` is
   a fraction of it, whatever the dataset's distance: 78 CAD units on the synthetic set, 5 on
   PASCAL3D+), and the principal point, scaled so that one unit is ``centre_step_px`` feature
   cells (Adam's steps are about ``lr`` per unit); after every step the distance is kept within
   :func:`refine_distance_range` (half the smallest to twice the largest coarse distance) and the
   principal point on the searched map, so that no start runs off to a huge object mostly outside
   the map (whose loss can be lower than the object's own);
4. the lowest final loss wins (never worse than its coarse pose).

The object is rendered with the camera's principal point moved to the found position, so the
CAD origin sits on the optical axis (as in NeMo-6D's batched solver; the perspective change of an
off-axis object is not modelled). Angles in RADIANS, distance in CAD units, positions ``(x, y)``
in feature-map pixels (pixel centres at integers).

Public API: :class:`SixDConfig`, :class:`SixDResult`, :func:`candidate_centres`,
:func:`six_d_single` (pure), :func:`six_d_batch_unchecked` (jitted, vmapped),
:func:`six_d_pose` (eager checks), :func:`size_six_d_tile_budget`, :func:`refine_distance_range`,
:func:`project_refinement`.
"""

from __future__ import annotations

import dataclasses
import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax.inference.objective import clutter_similarity, similarity_table
from nemo_jax.inference.parametrization import to_parameters, to_pose
from nemo_jax.inference.search import (
    BATCH_AXES,
    SearchConfig,
    SearchInputs,
    occlusion_maps,
    pose_grid,
    pose_loss,
    refine_optimizer,
    refine_step,
    size_tile_budget,
    trust_diagnostics,
)


@dataclasses.dataclass(frozen=True)
class SixDConfig:
    """Static settings of the 6D search (hashable: a static argument under jit).

    Attributes:
      search: the pose search's settings: ``raster`` (its ``height, width`` = the whole feature
        map searched), the rotation grid, ``num_starts`` (refined starts, over all candidates and
        distances), ``steps`` and the Adam settings, ``parametrization``. ``optimize_distance`` is
        set: the distance always moves.
      distance_factors: coarse distances, multiples of ``SearchInputs.distance`` (CAD units).
      num_candidates: candidate positions kept from the objectness map (static; missing peaks are
        masked).
      nms_radius_px: a peak suppresses others within this radius (feature cells).
      smooth_px: standard deviation (feature cells) of the Gaussian smoothing of the objectness
        map before its peaks are taken; about a quarter of the object's size works.
      centre_step_px: feature cells per unit of the refined principal-point parameters.
    """

    search: SearchConfig
    distance_factors: tuple[float, ...] = (0.8, 1.0, 1.25)
    num_candidates: int = 3
    nms_radius_px: float = 3.0
    smooth_px: float = 2.0
    centre_step_px: float = 4.0

    def __post_init__(self):
        factors = tuple(float(f) for f in self.distance_factors)
        if not factors or not all(np.isfinite(f) and f > 0 for f in factors):
            raise ValueError(
                f"SixDConfig.distance_factors: expected positive numbers, got {self.distance_factors}"
            )
        object.__setattr__(self, "distance_factors", factors)
        if self.num_candidates < 1:
            raise ValueError(f"SixDConfig.num_candidates: expected >= 1, got {self.num_candidates}")
        for name in ("nms_radius_px", "smooth_px", "centre_step_px"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SixDConfig.{name}: expected > 0, got {getattr(self, name)}")
        coarse = self.num_candidates * len(factors) * self.search.grid_size
        if self.search.num_starts > coarse:
            raise ValueError(f"SixDConfig.search.num_starts: expected <= {coarse} (coarse poses)")
        if not self.search.optimize_distance:
            object.__setattr__(self, "search", dataclasses.replace(self.search, optimize_distance=True))


@flax.struct.dataclass
class SixDResult:
    """6D search output; a leading batch axis ``[B]`` from :func:`six_d_pose`.

    Attributes:
      azimuth: ``[]`` radians, wrapped to ``[0, 2 pi)``.
      elevation, theta: ``[]`` radians.
      distance: ``[]`` CAD units.
      principal: ``[2]`` (x, y) the image of the CAD origin, feature-map pixels.
      loss: ``[]`` NeMo's loss at the returned pose (``inf`` if it was never finite).
      candidates: ``[N, 2]`` (x, y) candidate positions, feature-map pixels (integers).
      candidate_valid: ``[N]`` bool, False for peaks the suppression left empty.
      coarse_loss: ``[N, D, G]`` loss per candidate, distance factor and grid pose.
      occluder, object_mask: ``[h, w]`` bool at the returned pose, as :class:`PoseResult`'s.
      overflow: ``[]`` int32, max tiles dropped by any render (0 = exact).
      steps: ``[]`` int32, refinement steps of the returned start (0 if its coarse pose was kept).
      null_loss, feature_spread: ``[]``, as :class:`nemo_jax.inference.PoseResult`'s (so
        :func:`nemo_jax.inference.trust_flags` applies).
    """

    azimuth: jax.Array
    elevation: jax.Array
    theta: jax.Array
    distance: jax.Array
    principal: jax.Array
    loss: jax.Array
    candidates: jax.Array
    candidate_valid: jax.Array
    coarse_loss: jax.Array
    occluder: jax.Array
    object_mask: jax.Array
    overflow: jax.Array
    steps: jax.Array
    null_loss: jax.Array
    feature_spread: jax.Array


def _gaussian_blur(x: jax.Array, sigma: float) -> jax.Array:
    """``[h, w]`` -> ``[h, w]`` separable Gaussian blur (zero padding), ``sigma`` in pixels."""
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k = jnp.asarray(k / k.sum(), x.dtype)
    x = jax.vmap(lambda row: jnp.convolve(row, k, mode="same"))(x)
    return jax.vmap(lambda col: jnp.convolve(col, k, mode="same"), in_axes=1, out_axes=1)(x)


def candidate_centres(table, clutter_sim, config: SixDConfig):
    """Candidate object positions from the objectness map.

    Args:
      table: ``[V, h*w]`` :func:`nemo_jax.inference.similarity_table`.
      clutter_sim: ``[h, w]`` :func:`nemo_jax.inference.clutter_similarity`.
      config: static.

    Returns:
      ``(centres [N, 2] (x, y) feature pixels, valid [N] bool)``, best peak first.
    """
    h, w = clutter_sim.shape
    objectness = jax.nn.relu(jnp.max(table, axis=0).reshape(h, w) - clutter_sim)
    score = _gaussian_blur(objectness, config.smooth_px)
    yy, xx = jnp.mgrid[0:h, 0:w]
    centres, valid = [], []
    for _ in range(config.num_candidates):  # static, small
        i = jnp.argmax(score)
        y, x = i // w, i % w
        valid.append(jnp.isfinite(score[y, x]))
        centres.append(jnp.stack([x, y]).astype(jnp.float32))
        near = (xx - x) ** 2 + (yy - y) ** 2 <= config.nms_radius_px**2
        score = jnp.where(near, -jnp.inf, score)
    return jnp.stack(centres), jnp.stack(valid)


def refine_distance_range(distance_factors) -> tuple[float, float]:
    """The distances the 6D refinement may reach, relative to ``SearchInputs.distance``: half the
    smallest coarse factor to twice the largest."""
    return 0.5 * min(distance_factors), 2.0 * max(distance_factors)


def project_refinement(
    params: jax.Array, parametrization: str, distance_range: tuple[float, float], centre_max: jax.Array
) -> jax.Array:
    """``[K, 6]`` 6D refinement parameters (the pose's four in ``parametrization``, the distance
    relative to the reference; the principal point ``(x, y)`` in units of ``centre_step_px``) ->
    the same with the distance clipped to ``distance_range`` (its direction from the object kept)
    and the principal point to ``[0, centre_max]``. Rows already inside come back bit for bit."""
    pose = to_pose(params[:, :4], parametrization)
    clipped = jnp.clip(pose[:, 3], *distance_range)
    if parametrization == "angles":
        moved = params[:, :4].at[:, 3].set(clipped)
    else:
        moved = to_parameters(pose.at[:, 3].set(clipped), parametrization)
    pose_params = jnp.where((clipped != pose[:, 3])[:, None], moved, params[:, :4])
    return jnp.concatenate([pose_params, jnp.clip(params[:, 4:], 0.0, centre_max)], axis=1)


def six_d_single(inputs: SearchInputs, config: SixDConfig) -> SixDResult:
    """Pure, jittable 6D search for ONE image (no input checks; use :func:`six_d_pose`).

    Args:
      inputs: :class:`nemo_jax.inference.SearchInputs` of one image (``observed [h, w, C]`` the
        whole searched feature map, ``clutter [C]``, ``focal_px []``, ``distance []`` the
        reference distance the coarse factors multiply). ``principal`` is not read: it is searched.
      config: static.
    """
    search = config.search
    settings = search.raster
    table = similarity_table(inputs.vertex_features, inputs.observed)
    clutter_sim = clutter_similarity(inputs.observed, inputs.clutter)
    step_px = config.centre_step_px

    def loss_fn(params6):
        """``[6]`` = pose ``[4]`` with the distance relative to ``inputs.distance``, then the
        principal point ``[2]`` in units of ``centre_step_px``."""
        return pose_loss(
            params6[:4].at[3].multiply(inputs.distance),
            table,
            clutter_sim,
            inputs.vertices,
            inputs.faces,
            inputs.focal_px,
            params6[4:] * step_px,
            settings,
        )

    # 1. Candidate positions.
    centres, valid = candidate_centres(table, clutter_sim, config)

    # 2. Coarse: candidates x distances x rotation grid; one vmapped render per candidate.
    rotations = pose_grid(search)  # [G, 3]
    distances = jnp.asarray(config.distance_factors, jnp.float32)  # [D], relative to inputs.distance
    d, g = distances.shape[0], rotations.shape[0]
    poses = jnp.concatenate(
        [jnp.tile(rotations, (d, 1)), jnp.repeat(distances, g)[:, None]], axis=1
    )  # [D*G, 4], distance slowest

    def score_candidate(centre):
        params = jnp.concatenate([poses, jnp.broadcast_to(centre / step_px, (d * g, 2))], axis=1)
        return jax.vmap(loss_fn)(params)

    coarse_loss, coarse_overflow = jax.lax.map(score_candidate, centres)  # [N, D*G]
    coarse_loss = jnp.where(valid[:, None] & jnp.isfinite(coarse_loss), coarse_loss, jnp.inf)
    flat = coarse_loss.reshape(-1)
    _, best = jax.lax.top_k(-flat, search.num_starts)
    starts = jnp.concatenate(
        [poses[best % (d * g)], centres[best // (d * g)] / step_px], axis=1
    )  # [K, 6] pose + scaled principal
    start_loss = flat[best]

    # 3. Fine: all six parameters, the K starts in parallel, one scan, each step projected back into
    # the searched range (a start that runs to a huge, mostly off-map object can score a lower loss
    # than the object itself).
    optimizer = refine_optimizer(search)
    parametrization = search.parametrization
    distance_range = refine_distance_range(config.distance_factors)
    centre_max = jnp.array([settings.width - 1, settings.height - 1], jnp.float32) / step_px

    def step(carry, _):
        params, opt_state, overflow, moved = carry
        new_params, new_state, _, ovf, finite = refine_step(loss_fn, optimizer, search, params, opt_state)
        new_params = jnp.where(finite[:, None], new_params, params)
        new_params = project_refinement(new_params, parametrization, distance_range, centre_max)
        return (new_params, new_state, jnp.maximum(overflow, jnp.max(ovf)), moved + finite), None

    start_params = jnp.concatenate([to_parameters(starts[:, :4], parametrization), starts[:, 4:]], axis=1)
    init = (
        start_params,
        optimizer.init(start_params),
        jnp.max(coarse_overflow),
        jnp.zeros(search.num_starts, jnp.int32),
    )
    (params, _, overflow, moved), _ = jax.lax.scan(step, init, None, length=search.steps)
    refined = jnp.concatenate([to_pose(params[:, :4], parametrization), params[:, 4:]], axis=1)

    # 4. Final losses; non-finite or worse-than-coarse starts keep their coarse pose.
    refined = jnp.where(jnp.all(jnp.isfinite(refined), axis=-1, keepdims=True), refined, starts)
    final_loss, final_overflow = jax.vmap(loss_fn)(refined)
    final_loss = jnp.where(jnp.isfinite(final_loss), final_loss, jnp.inf)
    use_start = final_loss > start_loss
    refined = jnp.where(use_start[:, None], starts, refined)
    final_loss = jnp.minimum(final_loss, start_loss)
    winner = jnp.argmin(final_loss)
    pose, principal = refined[winner, :4], refined[winner, 4:] * step_px
    occluder, mask = occlusion_maps(
        pose.at[3].multiply(inputs.distance),
        table,
        clutter_sim,
        inputs.vertices,
        inputs.faces,
        inputs.focal_px,
        principal,
        settings,
    )
    return SixDResult(
        azimuth=jnp.mod(pose[0], 2 * jnp.pi),
        elevation=pose[1],
        theta=pose[2],
        distance=pose[3] * inputs.distance,
        principal=principal,
        loss=final_loss[winner],
        candidates=centres,
        candidate_valid=valid,
        coarse_loss=coarse_loss.reshape(-1, d, g),
        occluder=occluder,
        object_mask=mask,
        overflow=jnp.maximum(overflow, jnp.max(final_overflow)).astype(jnp.int32),
        steps=jnp.where(use_start, 0, moved)[winner],
        **trust_diagnostics(inputs, clutter_sim),
    )


@functools.partial(jax.jit, static_argnames="config")
def six_d_batch_unchecked(inputs: SearchInputs, config: SixDConfig) -> SixDResult:
    """Jitted :func:`six_d_single` vmapped over images (batched :class:`SearchInputs`, see
    :data:`nemo_jax.inference.BATCH_AXES`); no input checks: use :func:`six_d_pose`."""
    return jax.vmap(functools.partial(six_d_single, config=config), in_axes=(BATCH_AXES,))(inputs)


def six_d_pose(inputs: SearchInputs, config: SixDConfig) -> SixDResult:
    """6D search for a batch of images of ONE category, with eager input checks.

    Args:
      inputs: :class:`SearchInputs` as for :func:`nemo_jax.inference.search_pose` (``observed
        [B, h, w, C]`` or ``[h, w, C]``, ``[h, w]`` = ``config.search.raster``'s; ``focal_px``,
        ``distance`` ``[]`` or ``[B]``); ``principal`` is not read (pass anything of shape ``[2]``
        or ``[B, 2]``).
      config: :class:`SixDConfig`.

    Returns:
      :class:`SixDResult` with a leading ``[B]`` axis.

    Raises:
      ValueError naming the field: wrong shapes, feature size vs config, non-finite values,
      non-positive distance or focal length.
    """
    obs = np.asarray(inputs.observed, np.float32)
    obs = obs[None] if obs.ndim == 3 else obs
    if obs.ndim != 4 or obs.shape[0] == 0:
        raise ValueError(f"six_d_pose: observed must be [B, h, w, C] with B >= 1, got shape {obs.shape}")
    b, h, w, c = obs.shape
    raster = config.search.raster
    if (h, w) != (raster.height, raster.width):
        raise ValueError(
            f"six_d_pose: observed feature map is {h}x{w} but config.search.raster expects "
            f"{raster.height}x{raster.width} (height x width)"
        )
    fields = {
        "observed": obs,
        "vertex_features": np.asarray(inputs.vertex_features, np.float32),
        "vertices": np.asarray(inputs.vertices, np.float32),
    }
    if fields["vertex_features"].ndim != 2 or fields["vertex_features"].shape[1] != c:
        raise ValueError(
            f"six_d_pose: vertex_features must be [V, C={c}], got shape {fields['vertex_features'].shape}"
        )
    num_vertices = fields["vertex_features"].shape[0]
    if fields["vertices"].shape != (num_vertices, 3):
        raise ValueError(
            f"six_d_pose: vertices must be [V={num_vertices}, 3], got shape {fields['vertices'].shape}"
        )
    for name, shape in (("clutter", (c,)), ("focal_px", ()), ("distance", ()), ("principal", (2,))):
        x = np.asarray(getattr(inputs, name), np.float32)
        x = np.broadcast_to(x, (b,) + shape) if x.shape == shape else x
        if x.shape != (b,) + shape:
            raise ValueError(f"six_d_pose: {name} must have shape {shape} or {(b,) + shape}, got {x.shape}")
        fields[name] = x
    for name, x in fields.items():
        if name != "principal" and not np.all(np.isfinite(x)):
            index = np.argwhere(~np.isfinite(x))[0].tolist()
            raise ValueError(f"six_d_pose: {name} has a non-finite value at index {index}")
    if np.any(fields["distance"] <= 0) or np.any(fields["focal_px"] <= 0):
        raise ValueError("six_d_pose: distance and focal_px must be > 0")
    faces = np.asarray(inputs.faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"six_d_pose: faces must be an int [F, 3] array, got {faces.dtype} {faces.shape}")
    batched = SearchInputs(
        faces=jnp.asarray(faces, jnp.int32),
        principal=jnp.nan_to_num(jnp.asarray(fields.pop("principal"))),
        **{k: jnp.asarray(v) for k, v in fields.items()},
    )
    return six_d_batch_unchecked(batched, config=config)


def size_six_d_tile_budget(
    vertices, faces, focal_px, distance, config: SixDConfig, margin: float = 1.5
) -> SixDConfig:
    """``config`` with ``search.raster.tile_budget`` covering every coarse pose at the nearest
    coarse distance (``distance * min(distance_factors)``; the refinement's closer poses with
    ``margin``) for this mesh (``[V, 3]``, ``[F, 3]``) and ``focal_px`` (feature pixels), the
    object centred in the map. Host-side; call once per category."""
    raster = config.search.raster
    centre = np.array([(raster.width - 1) / 2, (raster.height - 1) / 2], np.float32)
    nearest = float(distance) * min(config.distance_factors)
    search = size_tile_budget(vertices, faces, focal_px, centre, nearest, config.search, margin=margin)
    return dataclasses.replace(config, search=search)
