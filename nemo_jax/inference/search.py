"""NeMo's pose search: score an initial pose grid, refine the best starts with Adam, keep the best.

Per image (all arrays at FEATURE resolution ``[h, w]``):

1. ``S = vertex_features @ observed^T`` once (``[V, h*w]``, see :mod:`nemo_jax.inference.objective`);
2. NeMo's loss at every pose of the initial grid (default 12 azimuths x 4 elevations x 3 thetas = 144)
   in one vmapped render;
3. the ``num_starts`` best grid poses (optionally kept ``start_separation_deg`` apart,
   :func:`select_starts`) are refined in parallel (:func:`refine_starts`) with optax Adam (NeMo: lr 0.05,
   betas (0.4, 0.6), 300 steps, lr x0.2 every 100 steps) inside one ``lax.scan``; an optional early
   stop freezes a start once its loss changes by less than ``early_stop_tol`` (a mask: static shapes).
   Adam acts on ``config.parametrization`` (:mod:`nemo_jax.inference.parametrization`): NeMo's
   ``"camera_position"`` (camera centre ``C`` in R^3 plus theta, so the distance moves) or
   ``"angles"`` (azimuth, elevation, theta; the distance only with ``optimize_distance``);
4. the start with the lowest final loss wins; its occluder map (object pixels where the clutter
   similarity beats the object similarity) and object mask are rendered at the winning pose.

Pose parameters: ``(azimuth, elevation, theta)`` in RADIANS (PASCAL3D+ convention, see
:func:`nemo_jax.geometry.camera_from_viewpoint`) and ``distance`` in CAD units. The camera looks at
the CAD origin from ``distance``; the intrinsics are per image: ``focal_px``, the focal length in
PIXELS OF THE FEATURE MAP (a dataset's PASCAL3D+-style ``focal * viewport / stride``, e.g.
``1 * 3000 / 8 = 375``), and the principal point in feature-map pixels (pixel centres at integer
coordinates).

Public API: :class:`SearchConfig` (static, hashable), :class:`SearchInputs` (the per-image arrays,
one PyTree), :class:`PoseResult`, :func:`pose_grid`, :func:`search_pose` (eager checks, batch of
images), :func:`search_batch` (jitted, vmapped, no checks), :func:`search_single` (pure, jittable
core), :func:`occlusion_maps`, :func:`size_tile_budget`.
"""

from __future__ import annotations

import dataclasses
import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nemo_jax.geometry import camera_from_viewpoint, geodesic_distance, rotation_from_viewpoint
from nemo_jax.inference import sharding
from nemo_jax.inference.objective import clutter_similarity, nemo_loss, similarity_table
from nemo_jax.inference.parametrization import PARAMETRIZATIONS, to_parameters, to_pose
from nemo_jax.render import RasterSettings, render, tiles_needed

NEMO_AZIMUTHS_DEG = tuple(float(a) for a in np.arange(12) * 30.0)
NEMO_ELEVATIONS_DEG = (-30.0, 0.0, 30.0, 60.0)
NEMO_THETAS_DEG = (-30.0, 0.0, 30.0)


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Static settings of the pose search (hashable: a static argument under jit).

    Attributes:
      raster: rasterizer settings; ``raster.height/width`` must equal the feature map's ``[h, w]``.
        ``raster.variant`` (``"hard"`` = NeMo, or any registered variant) is used for the grid, the
        refinement and the output maps, so variants are compared with the same code.
      azimuths_deg, elevations_deg, thetas_deg: the initial grid (DEGREES), all combinations.
      num_starts: K best grid poses refined in parallel (NeMo: 1).
      start_separation_deg: DEGREES; 0 (default): the K lowest-loss grid poses. Else the K starts
        are chosen greedily by loss, skipping grid poses whose rotation is closer than this to a
        chosen one (:func:`select_starts`), so extra starts reach distinct views such as the
        front / back flip. The 6D search (:mod:`nemo_jax.inference.six_d`) picks its own starts.
      steps: Adam steps (NeMo: 300).
      lr, b1, b2: Adam (NeMo: 0.05, 0.4, 0.6); ``lr`` in the parameters' units (radians for
        ``"angles"``, CAD units of the camera centre for ``"camera_position"``).
      decay_every, decay_rate: staircase learning-rate decay (NeMo: x0.2 every 100 steps).
      parametrization: what Adam optimises: ``"camera_position"`` (NeMo's ``MeshPoseSolveAll``:
        the camera centre ``C`` in R^3 and theta, starting from the best grid pose at the given
        distance, so azimuth, elevation and distance move together) or ``"angles"`` (azimuth,
        elevation, theta, with the distance frozen unless ``optimize_distance``).
      optimize_distance: ``"angles"`` only: also refine the distance as a fourth free parameter
        (with ``"camera_position"`` the distance always moves, as in NeMo).
      early_stop_tol: 0 disables; else a start stops updating once ``|loss change| < tol`` for
        ``early_stop_patience`` consecutive steps.
      early_stop_patience: see above.
    """

    raster: RasterSettings
    azimuths_deg: tuple[float, ...] = NEMO_AZIMUTHS_DEG
    elevations_deg: tuple[float, ...] = NEMO_ELEVATIONS_DEG
    thetas_deg: tuple[float, ...] = NEMO_THETAS_DEG
    num_starts: int = 1
    start_separation_deg: float = 0.0
    steps: int = 300
    lr: float = 0.05
    b1: float = 0.4
    b2: float = 0.6
    decay_every: int = 100
    decay_rate: float = 0.2
    parametrization: str = "angles"
    optimize_distance: bool = False
    early_stop_tol: float = 0.0
    early_stop_patience: int = 10

    def __post_init__(self):
        for name in ("azimuths_deg", "elevations_deg", "thetas_deg"):
            values = tuple(float(v) for v in getattr(self, name))
            if not values:
                raise ValueError(f"SearchConfig.{name}: the pose grid needs at least one value")
            object.__setattr__(self, name, values)
        if self.num_starts < 1 or self.num_starts > self.grid_size:
            raise ValueError(
                f"SearchConfig.num_starts: expected 1..{self.grid_size} (grid size), got {self.num_starts}"
            )
        if not (np.isfinite(self.start_separation_deg) and 0 <= self.start_separation_deg <= 180):
            raise ValueError(
                f"SearchConfig.start_separation_deg: expected 0..180 degrees, got {self.start_separation_deg}"
            )
        if self.steps < 0:
            raise ValueError(f"SearchConfig.steps: expected >= 0, got {self.steps}")
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(
                f"SearchConfig.parametrization: expected one of {PARAMETRIZATIONS}, "
                f"got {self.parametrization!r}"
            )
        if self.decay_every <= 0:
            raise ValueError(f"SearchConfig.decay_every: expected > 0, got {self.decay_every}")

    @property
    def grid_size(self) -> int:
        return len(self.azimuths_deg) * len(self.elevations_deg) * len(self.thetas_deg)


@flax.struct.dataclass
class SearchInputs:
    """What the pose search reads, as one PyTree (all float32 but ``faces``).

    For ONE image (:func:`search_single`, :func:`nemo_jax.inference.loss_landscape`):

    Attributes:
      observed: ``[h, w, C]`` unit features of the image (any backbone), FEATURE-map resolution.
      vertex_features: ``[V, C]`` unit features of the neural mesh's vertices.
      clutter: ``[C]`` clutter feature (NeMo: the normalised mean of the clutter bank), or ``[N, C]``
        clutter features (:func:`nemo_jax.mesh.clutter_model`; a pixel's clutter similarity is its
        best over them, :func:`nemo_jax.inference.objective.clutter_similarity`).
      vertices: ``[V, 3]`` CAD frame, CAD units.
      faces: ``[F, 3]`` int32 vertex indices (``-1`` rows = padding, drawn as nothing).
      focal_px: ``[]`` focal length in PIXELS OF THE FEATURE MAP (``focal * viewport / stride`` of a
        PASCAL3D+-style annotation, whose ``focal`` is 1 and ``viewport`` 3000 image pixels).
      principal: ``[2]`` principal point (x, y) = (u, v) in feature-map pixels, 0-based, pixel
        centres at integer coordinates.
      distance: ``[]`` render distance, CAD units (the refinement's start value when the distance
        moves: ``parametrization="camera_position"`` or ``optimize_distance``).

    Batched (:func:`search_batch`, :func:`search_pose`): ``observed [B, h, w, C]``, ``clutter
    [B, C]`` (or ``[B, N, C]``), ``focal_px [B]``, ``principal [B, 2]``, ``distance [B]``; the mesh
    (``vertices``, ``faces``, ``vertex_features``) is shared by the batch (one category).
    """

    observed: jax.Array
    vertex_features: jax.Array
    clutter: jax.Array
    vertices: jax.Array
    faces: jax.Array
    focal_px: jax.Array
    principal: jax.Array
    distance: jax.Array


#: ``vmap`` axes of a batched :class:`SearchInputs`: per-image arrays on axis 0, the mesh shared.
BATCH_AXES = SearchInputs(
    observed=0,
    vertex_features=None,
    clutter=0,
    vertices=None,
    faces=None,
    focal_px=0,
    principal=0,
    distance=0,
)


@flax.struct.dataclass
class PoseResult:
    """Search output; a leading batch axis ``[B]`` when returned by :func:`search_pose`.

    Attributes:
      azimuth: ``[]`` radians, wrapped to ``[0, 2 pi)``.
      elevation, theta: ``[]`` radians.
      distance: ``[]`` CAD units: the refined distance with ``parametrization="camera_position"``
        or ``optimize_distance``, else the input distance.
      loss: ``[]`` NeMo's loss at the returned pose (``inf`` if it was never finite).
      grid_loss: ``[G]`` loss of every initial grid pose (in :func:`pose_grid` order).
      occluder: ``[h, w]`` bool, inside the rendered object where clutter wins.
      object_mask: ``[h, w]`` bool, pixels covered by the rendered object.
      overflow: ``[]`` int32, max tiles dropped by any render (0 = exact; else raise tile_budget).
      steps: ``[]`` int32, refinement steps that moved the returned start (< ``config.steps`` after
        an early stop or non-finite gradients; 0 if the grid pose was kept).
      null_loss: ``[]`` NeMo's loss with no object rendered (every pixel left to the clutter
        model): a pose whose ``loss`` is no lower has no object evidence (:func:`trust_flags`).
      feature_spread: ``[]`` largest distance of a pixel's observed feature from the map's mean
        feature: 0 for an all-zero or constant feature map (no image structure to fit).
    """

    azimuth: jax.Array
    elevation: jax.Array
    theta: jax.Array
    distance: jax.Array
    loss: jax.Array
    grid_loss: jax.Array
    occluder: jax.Array
    object_mask: jax.Array
    overflow: jax.Array
    steps: jax.Array
    null_loss: jax.Array
    feature_spread: jax.Array


def pose_grid(config: SearchConfig) -> jax.Array:
    """``[G, 3]`` (azimuth, elevation, theta) radians; azimuth slowest, theta fastest."""
    az, el, th = (
        jnp.deg2rad(jnp.asarray(v, jnp.float32))
        for v in (config.azimuths_deg, config.elevations_deg, config.thetas_deg)
    )
    return jnp.stack(jnp.meshgrid(az, el, th, indexing="ij"), -1).reshape(-1, 3)


def _camera(pose, focal_px, principal):
    """``pose`` = (azimuth, elevation, theta, distance); ``focal_px`` in pixels of the rendered
    grid (viewport 1); principal ``[2]`` (x, y) in the same pixels."""
    return camera_from_viewpoint(
        pose[0], pose[1], pose[2], pose[3], principal[0], principal[1], focal_px, 1.0
    )


def pose_loss(pose, table, clutter_sim, vertices, faces, focal_px, principal, settings: RasterSettings):
    """NeMo's loss ``[]`` at ``pose`` ``[4]`` and the render's overflow, from the similarity
    table ``[V, h*w]`` and the clutter similarity ``[h, w]``; ``focal_px``, ``principal`` as in
    :class:`SearchInputs` (feature-map pixels)."""
    out = render(vertices, faces, _camera(pose, focal_px, principal), settings, pixel_table=table)
    return nemo_loss(out.pixel_values, clutter_sim), out.overflow


def occlusion_maps(pose, table, clutter_sim, vertices, faces, focal_px, principal, settings: RasterSettings):
    """``(occluder [h, w] bool, object_mask [h, w] bool)`` at ``pose`` ``[4]``: the object mask is
    the rendered coverage (> 0.5); occluded pixels are object pixels whose clutter similarity beats
    the object similarity (NeMo's occluder localisation). Intrinsics as in :class:`SearchInputs`."""
    out = render(vertices, faces, _camera(pose, focal_px, principal), settings, pixel_table=table)
    mask = out.coverage > 0.5
    return mask & (clutter_sim > out.pixel_values), mask


def _finite_or(x, fallback):
    return jnp.where(jnp.isfinite(x), x, fallback)


def refine_optimizer(config: SearchConfig) -> optax.GradientTransformation:
    """NeMo's refinement optimiser: Adam(lr, b1, b2) with the lr multiplied by ``decay_rate``
    every ``decay_every`` steps."""
    schedule = optax.exponential_decay(
        config.lr, transition_steps=config.decay_every, decay_rate=config.decay_rate, staircase=True
    )
    return optax.adam(schedule, b1=config.b1, b2=config.b2)


def refine_step(loss_fn, optimizer: optax.GradientTransformation, config: SearchConfig, params, opt_state):
    """One refinement step of ``K`` starts in parallel.

    Args:
      loss_fn: ``pose [4] -> (loss [], overflow [])`` (e.g. :func:`pose_loss` with the image bound).
      optimizer: :func:`refine_optimizer`'s.
      config: static; ``config.parametrization`` says what ``params`` hold; with ``"angles"`` the
        distance is updated only if ``config.optimize_distance``.
      params: ``[K, 4 + E]`` refinement parameters (:func:`nemo_jax.inference.parametrization.to_parameters`
        of the poses): for ``"angles"`` the poses themselves (azimuth, elevation, theta in RADIANS,
        distance); for ``"camera_position"`` (C_x, C_y, C_z, theta). ``E`` extra trailing
        parameters (0 here; 2 in :mod:`nemo_jax.inference.six_d`, the principal point) reach
        ``loss_fn`` unchanged after the pose's four and are always optimised.
      opt_state: the optimiser's state for ``params``.

    Returns:
      ``(new_params [K, 4 + E], new_state, loss [K], overflow [K], finite [K] bool)``: the losses are
      at the INPUT parameters; a start with a non-finite loss or gradient gets a zero gradient
      (``finite`` says which).
    """
    parametrization = config.parametrization
    extra = [1.0] * (params.shape[-1] - 4)
    if parametrization == "camera_position":  # C moves freely (and with it the distance), as in NeMo
        grad_mask = jnp.array([1.0] * 4 + extra, params.dtype)
    else:
        grad_mask = jnp.array([1.0, 1.0, 1.0, 1.0 if config.optimize_distance else 0.0] + extra, params.dtype)

    def pose_of(x):
        return jnp.concatenate([to_pose(x[:4], parametrization), x[4:]])

    value_and_grad = jax.value_and_grad(lambda x: loss_fn(pose_of(x)), has_aux=True)
    (loss, overflow), grads = jax.vmap(value_and_grad)(params)
    finite = jnp.isfinite(loss) & jnp.all(jnp.isfinite(grads), axis=-1)
    grads = jnp.where(finite[:, None], grads, 0.0) * grad_mask
    updates, new_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_state, loss, overflow, finite


def select_starts(grid: jax.Array, grid_loss: jax.Array, num_starts: int, separation_deg: float = 0.0):
    """``[K]`` int32 indices of the grid poses the refinement starts from.

    Args:
      grid: ``[G, 3 + E]`` poses, (azimuth, elevation, theta) RADIANS first.
      grid_loss: ``[G]`` loss of each pose (``inf`` for a non-finite one).
      num_starts: static ``K <= G``.
      separation_deg: static, DEGREES. 0: the ``K`` lowest losses (``lax.top_k``). Else greedy, by
        increasing loss: a pose whose rotation is closer than ``separation_deg`` (geodesic angle,
        :func:`nemo_jax.geometry.geodesic_distance`) to an already chosen start is skipped, so the
        starts spread over distinct views (e.g. an object's front / back flip) rather than the
        neighbours of the best one. When every pose left is that close, the lowest-loss pose not
        yet chosen is taken, so there are always ``K`` distinct starts. Ties: the lower index.
    """
    if separation_deg <= 0:
        _, best = jax.lax.top_k(-grid_loss, num_starts)
        return best
    rotations = rotation_from_viewpoint(grid[:, 0], grid[:, 1], grid[:, 2])  # [G, 3, 3]
    order = jnp.argsort(grid_loss, stable=True)  # inf last
    threshold = jnp.deg2rad(jnp.float32(separation_deg))
    g = grid_loss.shape[0]

    def pick(i, carry):
        chosen, taken, near = carry
        free = ~taken
        candidate = free & ~near
        candidate = jnp.where(jnp.any(candidate), candidate, free)
        index = order[jnp.argmax(candidate[order])]  # first candidate in loss order
        near = near | (geodesic_distance(rotations[index], rotations) < threshold)
        return chosen.at[i].set(index), taken.at[index].set(True), near

    init = (jnp.zeros(num_starts, jnp.int32), jnp.zeros(g, bool), jnp.zeros(g, bool))
    chosen, _, _ = jax.lax.fori_loop(0, num_starts, pick, init)
    return chosen


def image_objective(inputs: SearchInputs, config: SearchConfig):
    """``(loss_fn, table, clutter_sim)`` of one image: ``loss_fn(pose [4]) -> (loss [], overflow [])``
    (:func:`pose_loss` with the image bound), the similarity table ``[V, h*w]`` and the clutter
    similarity ``[h, w]``."""
    table = similarity_table(inputs.vertex_features, inputs.observed)
    clutter_sim = clutter_similarity(inputs.observed, inputs.clutter)

    def loss_fn(pose):
        return pose_loss(
            pose, table, clutter_sim, inputs.vertices, inputs.faces, inputs.focal_px, inputs.principal,
            config.raster,
        )  # fmt: skip

    return loss_fn, table, clutter_sim


@flax.struct.dataclass
class Refined:
    """:func:`refine_starts`'s output for ``K`` starts.

    Attributes:
      poses: ``[K, 4]`` (azimuth, elevation, theta RADIANS, distance); a start whose refinement
        ended higher than it began (or non-finite) keeps its start pose.
      loss: ``[K]`` loss at ``poses`` (``inf`` if never finite).
      steps: ``[K]`` int32 refinement steps that moved each returned pose (0: start pose kept).
      overflow: ``[]`` int32 max tiles dropped by any render of the refinement.
    """

    poses: jax.Array
    loss: jax.Array
    steps: jax.Array
    overflow: jax.Array


def refine_starts(loss_fn, starts: jax.Array, start_loss: jax.Array, config: SearchConfig) -> Refined:
    """Adam refinement (:func:`refine_step`, ``config.steps`` in one ``lax.scan``) of ``K`` start
    poses in parallel; every start is refined independently of the others (``K`` is
    ``starts.shape[0]``, not ``config.num_starts``).

    Args:
      loss_fn: ``pose [4] -> (loss [], overflow [])`` (:func:`image_objective`).
      starts: ``[K, 4]`` poses (azimuth, elevation, theta RADIANS, distance).
      start_loss: ``[K]`` ``loss_fn`` at ``starts`` (``inf`` where not finite).
      config: static.
    """
    optimizer = refine_optimizer(config)

    def step(carry, _):
        params, opt_state, prev_loss, calm, active, overflow, moved = carry
        new_params, new_state, loss, ovf, finite = refine_step(loss_fn, optimizer, config, params, opt_state)
        # Frozen (early-stopped) or non-finite starts keep their pose.
        move = (active & finite)[:, None]
        new_params = jnp.where(move, new_params, params)
        loss = _finite_or(loss, jnp.inf)
        if config.early_stop_tol > 0:
            small = jnp.abs(loss - prev_loss) < config.early_stop_tol
            calm = jnp.where(small, calm + 1, 0)
            active = active & (calm < config.early_stop_patience)
        overflow = jnp.maximum(overflow, jnp.max(ovf))
        moved = moved + move[:, 0].astype(jnp.int32)
        return (new_params, new_state, loss, calm, active, overflow, moved), None

    k = starts.shape[0]
    start_params = to_parameters(starts, config.parametrization)
    init = (
        start_params,
        optimizer.init(start_params),
        start_loss,
        jnp.zeros(k, jnp.int32),
        jnp.ones(k, bool),
        jnp.zeros((), jnp.int32),
        jnp.zeros(k, jnp.int32),
    )
    (params, _, _, _, _, overflow, moved), _ = jax.lax.scan(step, init, None, length=config.steps)
    poses = to_pose(params, config.parametrization)

    # A start whose pose or loss went non-finite falls back to its start pose.
    poses = jnp.where(jnp.all(jnp.isfinite(poses), axis=-1, keepdims=True), poses, starts)
    final_loss, final_overflow = jax.vmap(loss_fn)(poses)
    final_loss = _finite_or(final_loss, jnp.inf)
    use_start = final_loss > start_loss  # never worse than the start
    return Refined(
        poses=jnp.where(use_start[:, None], starts, poses),
        loss=jnp.minimum(final_loss, start_loss),
        steps=jnp.where(use_start, 0, moved),
        overflow=jnp.maximum(overflow, jnp.max(final_overflow)).astype(jnp.int32),
    )


def search_single(inputs: SearchInputs, config: SearchConfig) -> PoseResult:
    """Pure, jittable pose search for ONE image (no input checks; use :func:`search_pose`).

    Args:
      inputs: :class:`SearchInputs` of one image (``observed [h, w, C]``, ``clutter [C]``,
        ``focal_px []``, ``principal [2]``, ``distance []``).
      config: static.
    """
    loss_fn, table, clutter_sim = image_objective(inputs, config)

    # 1. The initial grid, one vmapped render.
    grid = pose_grid(config)
    grid = jnp.concatenate([grid, jnp.full((grid.shape[0], 1), inputs.distance, grid.dtype)], axis=1)
    grid_loss, grid_overflow = jax.vmap(loss_fn)(grid)
    grid_loss = _finite_or(grid_loss, jnp.inf)
    best = select_starts(grid, grid_loss, config.num_starts, config.start_separation_deg)

    # 2. Refinement of the K starts in parallel, one scan; 3. the lowest final loss wins.
    refined = refine_starts(loss_fn, grid[best], grid_loss[best], config)
    winner = jnp.argmin(refined.loss)
    pose = refined.poses[winner]
    occluder, mask = occlusion_maps(
        pose, table, clutter_sim, inputs.vertices, inputs.faces, inputs.focal_px, inputs.principal,
        config.raster,
    )  # fmt: skip
    return PoseResult(
        azimuth=jnp.mod(pose[0], 2 * jnp.pi),
        elevation=pose[1],
        theta=pose[2],
        distance=pose[3],
        loss=refined.loss[winner],
        grid_loss=grid_loss,
        occluder=occluder,
        object_mask=mask,
        overflow=jnp.maximum(jnp.max(grid_overflow), refined.overflow).astype(jnp.int32),
        steps=refined.steps[winner],
        **trust_diagnostics(inputs, clutter_sim),
    )


def trust_diagnostics(inputs: SearchInputs, clutter_sim: jax.Array) -> dict:
    """The result fields :func:`trust_flags` reads, for one image: ``null_loss`` (the objective
    with nothing rendered, every cell explained by clutter; ``clutter_sim [h, w]``) and
    ``feature_spread`` (the largest distance of an observed feature from their mean)."""
    spread = jnp.linalg.norm(inputs.observed - jnp.mean(inputs.observed, axis=(0, 1)), axis=-1)
    return dict(null_loss=nemo_loss(jnp.zeros_like(clutter_sim), clutter_sim), feature_spread=jnp.max(spread))


@functools.partial(jax.jit, static_argnames="config")
def search_batch_unchecked(inputs: SearchInputs, config: SearchConfig) -> PoseResult:
    """Jitted :func:`search_single` vmapped over images: batched :class:`SearchInputs`
    (``observed [B, h, w, C]``, ``clutter [B, C]``, ``focal_px [B]``, ``principal [B, 2]``,
    ``distance [B]``; the mesh and vertex features shared, see :data:`BATCH_AXES`).
    No input checks (non-finite features give a finite, meaningless pose): for inputs already
    checked, e.g. benchmarks; otherwise use :func:`search_batch`. ``faces`` must be int32."""
    single = functools.partial(search_single, config=config)
    return jax.vmap(single, in_axes=(BATCH_AXES,))(inputs)


_FLOAT_FIELDS = ("observed", "vertex_features", "clutter", "vertices", "focal_px", "principal", "distance")


@jax.jit
def _nonfinite_counts(inputs: SearchInputs) -> dict:
    """Non-finite values per float field of batched inputs; per image (``[B]``) for ``observed``."""
    counts = {k: jnp.sum(~jnp.isfinite(getattr(inputs, k))) for k in _FLOAT_FIELDS if k != "observed"}
    counts["observed"] = jnp.sum(~jnp.isfinite(inputs.observed), axis=tuple(range(1, inputs.observed.ndim)))
    return counts


def search_batch(inputs: SearchInputs, config: SearchConfig) -> PoseResult:
    """:func:`search_batch_unchecked` after checking that every float input is finite (one small
    jitted reduction and a host sync per call): ``ValueError`` naming the non-finite fields (and,
    for ``observed``, the images), as :func:`search_pose` does, never a pose computed from NaNs."""
    counts = jax.device_get(_nonfinite_counts(inputs))
    bad = []
    for name in _FLOAT_FIELDS:
        n = np.asarray(counts[name])
        if name == "observed" and n.any():
            images = np.flatnonzero(n).tolist()
            bad.append(f"observed (images {images}: {int(n.sum())} values)")
        elif name != "observed" and int(n):
            bad.append(f"{name} ({int(n)} values)")
    if bad:
        raise ValueError(f"search_batch: non-finite values in {', '.join(bad)}")
    return search_batch_unchecked(inputs, config)


def _check_finite(name: str, x: np.ndarray) -> None:
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0].tolist()
        raise ValueError(f"search_pose: {name} has a non-finite value at index {bad}")


def _per_image(name: str, value, batch: int, shape: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(value, np.float32)
    if x.shape == shape:
        x = np.broadcast_to(x, (batch,) + shape)
    if x.shape != (batch,) + shape:
        raise ValueError(f"search_pose: {name} must have shape {shape} or {(batch,) + shape}, got {x.shape}")
    _check_finite(name, x)
    return x


def search_pose(inputs: SearchInputs, config: SearchConfig) -> PoseResult:
    """Pose search for a batch of images of ONE category (one neural mesh), with eager input checks.

    Args:
      inputs: :class:`SearchInputs` (NumPy or JAX arrays, or Python numbers) where
        ``observed`` is ``[B, h, w, C]`` (or ``[h, w, C]``), ``[h, w]`` equal to ``config.raster``'s
        ``(height, width)``; ``vertex_features [V, C]``; ``clutter [C]``, ``[B, C]`` or ``[B, N, C]``
        (``N`` clutter features per image);
        ``vertices [V, 3]`` float; ``faces [F, 3]`` int (``-1`` rows allowed as padding);
        ``focal_px`` ``[]`` or ``[B]`` in FEATURE-map pixels (``focal * viewport / stride``);
        ``principal`` ``[2]`` or ``[B, 2]`` (x, y) in feature-map pixels; ``distance`` ``[]`` or
        ``[B]`` (CAD units).
      config: :class:`SearchConfig`.

    Returns:
      :class:`PoseResult` with a leading ``[B]`` axis (also when ``observed`` is ``[h, w, C]``).
      The images are spread over all local devices (:mod:`nemo_jax.inference.sharding`).

    Raises:
      ValueError naming the field: wrong shapes, feature size vs config, non-finite values.
    """
    obs = np.asarray(inputs.observed, np.float32)
    if obs.ndim == 3:
        obs = obs[None]
    if obs.ndim != 4:
        raise ValueError(f"search_pose: observed must be [B, h, w, C] or [h, w, C], got shape {obs.shape}")
    b, h, w, c = obs.shape
    if b == 0:
        raise ValueError("search_pose: observed is an empty batch (0 images)")
    if (h, w) != (config.raster.height, config.raster.width):
        raise ValueError(
            f"search_pose: observed feature map is {h}x{w} but config.raster expects "
            f"{config.raster.height}x{config.raster.width} (height x width)"
        )
    _check_finite("observed", obs)
    vf = np.asarray(inputs.vertex_features, np.float32)
    verts = np.asarray(inputs.vertices, np.float32)
    if vf.ndim != 2 or vf.shape[1] != c:
        raise ValueError(f"search_pose: vertex_features must be [V, C={c}], got shape {vf.shape}")
    if verts.ndim != 2 or verts.shape != (vf.shape[0], 3):
        raise ValueError(f"search_pose: vertices must be [V={vf.shape[0]}, 3], got shape {verts.shape}")
    _check_finite("vertex_features", vf)
    _check_finite("vertices", verts)
    fcs = np.asarray(inputs.faces)
    if fcs.ndim != 2 or fcs.shape[1] != 3 or not np.issubdtype(fcs.dtype, np.integer):
        raise ValueError(f"search_pose: faces must be an int [F, 3] array, got {fcs.dtype} {fcs.shape}")
    clutter = np.asarray(inputs.clutter, np.float32)
    clu = _per_image("clutter", clutter, b, clutter.shape[-2:] if clutter.ndim == 3 else (c,))
    if clu.shape[-1] != c:
        raise ValueError(f"search_pose: clutter must be [C={c}], [B, C] or [B, N, C], got shape {clu.shape}")
    foc = _per_image("focal_px", inputs.focal_px, b, ())
    pp = _per_image("principal", inputs.principal, b, (2,))
    dist = _per_image("distance", inputs.distance, b, ())
    if np.any(dist <= 0) or np.any(foc <= 0):
        raise ValueError("search_pose: distance and focal_px must be > 0")
    batched = SearchInputs(
        observed=obs,
        vertex_features=vf,
        clutter=clu,
        vertices=verts,
        faces=fcs.astype(np.int32),
        focal_px=foc,
        principal=pp,
        distance=dist,
    )
    batched, n = sharding.place(batched, BATCH_AXES, sharding.image_mesh())  # checked above
    return jax.tree.map(lambda x: x[:n], search_batch_unchecked(batched, config=config))


def size_tile_budget(
    vertices, faces, focal_px, principal, distance, config: SearchConfig, margin: float = 1.2
) -> SearchConfig:
    """A ``SearchConfig`` whose ``raster.tile_budget`` covers every grid pose (and, with ``margin``,
    the refinement around them) for this mesh (``[V, 3]``, ``[F, 3]``) and camera (``focal_px`` ``[]``,
    ``principal`` ``[2]``, ``distance`` ``[]``, as in :class:`SearchInputs`). Host-side helper; call
    once per category."""
    grid = np.asarray(pose_grid(config))
    poses = np.concatenate([grid, np.full((len(grid), 1), float(distance), np.float32)], 1)
    if config.optimize_distance or config.parametrization == "camera_position":
        # the object may come closer while refining
        poses = np.concatenate([poses, poses * np.array([1, 1, 1, 0.8], np.float32)])
    cams = jax.vmap(lambda p: _camera(p, jnp.float32(focal_px), jnp.asarray(principal, jnp.float32)))(
        jnp.asarray(poses)
    )
    needed = int(np.max(np.asarray(tiles_needed(vertices, faces, cams, config.raster))))
    budget = max(1, int(np.ceil(margin * needed)))
    return dataclasses.replace(config, raster=dataclasses.replace(config.raster, tile_budget=budget))


# Below this ``feature_spread`` a feature map counts as uniform (all-zero or constant).
UNIFORM_FEATURES = 1e-3


def trust_flags(result: PoseResult) -> list[list[str]]:
    """Per image of a batched :class:`PoseResult` (leading ``[B]``), the reasons not to trust its
    pose (empty when none): ``'uniform features'`` (an all-zero or constant feature map: nothing to
    fit), ``'no object evidence'`` (the best pose scores no better than leaving every pixel to the
    clutter model, ``loss >= null_loss``). Host-side."""
    loss = np.asarray(result.loss, np.float64).reshape(-1)
    null = np.asarray(result.null_loss, np.float64).reshape(-1)
    spread = np.asarray(result.feature_spread, np.float64).reshape(-1)
    flags = []
    for i in range(len(loss)):
        image = []
        if not spread[i] >= UNIFORM_FEATURES:
            image.append("uniform features")
        if not loss[i] < null[i] - 1e-6:
            image.append("no object evidence")
        flags.append(image)
    return flags
