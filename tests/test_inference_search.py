"""Pose search: recovers a known pose from a rendered feature map, localises a planted occluder,
rejects bad input, never returns a NaN pose. One compiled search (batch of 3 images) for the module."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemo_jax.geometry import camera_from_viewpoint, geodesic_distance, rotation_from_viewpoint
from nemo_jax.inference import (
    SearchConfig,
    SearchInputs,
    bucketed_search_inputs,
    pose_grid,
    search_batch,
    search_batch_unchecked,
    search_pose,
)
from nemo_jax.mesh import cuboid_mesh
from nemo_jax.render import RasterSettings, render_exact

H, W, C = 24, 40, 16
FOCAL, DIST = 120.0, 5.0
TRUE = np.array([np.deg2rad(100.0), np.deg2rad(20.0), np.deg2rad(-10.0), DIST], np.float32)


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def scene():
    """A random (jittered cuboid) mesh with random unit vertex features, rendered at TRUE."""
    rng = np.random.default_rng(0)
    v, f = cuboid_mesh([-0.2, -0.5, -0.17], [0.2, 0.5, 0.17], 200)
    v = (v * rng.uniform(0.9, 1.1, v.shape)).astype(np.float32)
    vf = _unit(rng.normal(size=(len(v), C))).astype(np.float32)
    clutter = _unit(rng.normal(size=C)).astype(np.float32)
    pp = np.array([W / 2 - 0.5, H / 2 - 0.5], np.float32)
    settings = RasterSettings(H, W, tile_height=4, tile_width=4, cull_backfaces=True)
    cam = camera_from_viewpoint(*TRUE, pp[0], pp[1], FOCAL, 1.0)
    out, _ = render_exact(v, f, cam, dataclasses.replace(settings, tile_budget=2000), attributes=vf)
    assert int(out.overflow) == 0
    mask = np.asarray(out.coverage) > 0.5
    background = _unit(clutter + 0.3 * rng.normal(size=(H, W, C)))
    clean = np.where(mask[..., None], _unit(np.asarray(out.features) + 1e-9), background).astype(np.float32)
    # A planted occluder: a block over the object's centre looks like clutter.
    rows, cols = np.nonzero(mask)
    r0, c0 = int(rows.mean()), int(cols.mean())
    planted = np.zeros((H, W), bool)
    planted[r0 - 3 : r0 + 4, c0 - 5 : c0 + 6] = True
    occluded = np.where(planted[..., None], background, clean).astype(np.float32)
    # size_tile_budget gives 437 here; a fixed budget saves a compile (overflow is checked below).
    # Early stop on (tolerance on the loss change per step): also exercised here, see test_early_stop.
    config = SearchConfig(
        raster=dataclasses.replace(settings, tile_budget=600), early_stop_tol=1e-3, early_stop_patience=5
    )
    return dict(
        v=v,
        f=f,
        vf=vf,
        clutter=clutter,
        pp=pp,
        mask=mask,
        clean=clean,
        occluded=occluded,
        planted=planted & mask,
        config=config,
    )


def _batched(scene, obs, vertices=None, faces=None, vertex_features=None) -> SearchInputs:
    """Batched search inputs: images ``obs [B, H, W, C]`` seen by the scene's camera; the scene's mesh
    unless another (e.g. padded) one is given."""
    b = len(obs)
    return SearchInputs(
        observed=jnp.asarray(obs),
        vertex_features=jnp.asarray(scene["vf"] if vertex_features is None else vertex_features),
        clutter=jnp.asarray(np.tile(scene["clutter"], (b, 1))),
        vertices=jnp.asarray(scene["v"] if vertices is None else vertices),
        faces=jnp.asarray(scene["f"] if faces is None else faces),
        focal_px=jnp.full((b,), FOCAL),
        principal=jnp.tile(scene["pp"], (b, 1)),
        distance=jnp.full((b,), DIST),
    )


@pytest.fixture(scope="module")
def results(scene):
    """The jitted core on [clean, occluded, NaN]: the NaN image bypasses the eager checks of
    search_pose and search_batch to exercise the core's masking of non-finite losses."""
    nan_image = scene["clean"].copy()
    nan_image[5, 7, :] = np.nan
    obs = np.stack([scene["clean"], scene["occluded"], nan_image])
    res = search_batch_unchecked(_batched(scene, obs), config=scene["config"])
    return jax.tree.map(np.asarray, res)


def _error_deg(res, i):
    pred = rotation_from_viewpoint(res.azimuth[i], res.elevation[i], res.theta[i])
    return float(np.rad2deg(geodesic_distance(rotation_from_viewpoint(*TRUE[:3]), pred)))


def test_grid_is_nemo_default(scene):
    """NeMo's MeshPoseSolveAll initial grid, written out from its code (radians): azimuths
    linspace(0, 2 pi, 12, endpoint=False), elevations linspace(-pi/6, pi/3, 4), thetas
    linspace(-pi/6, pi/6, 3); all 144 combinations, azimuth slowest and theta fastest."""
    azimuths = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    elevations = np.linspace(-np.pi / 6, np.pi / 3, 4)
    thetas = np.linspace(-np.pi / 6, np.pi / 6, 3)
    nemo = np.array([(a, e, t) for a in azimuths for e in elevations for t in thetas])
    grid = np.asarray(pose_grid(scene["config"]))
    assert grid.shape == (144, 3) and grid.dtype == np.float32
    np.testing.assert_allclose(grid, nemo, atol=1e-6)


def test_recovers_known_pose(results):
    assert int(results.overflow.max()) == 0
    for i in (0, 1):  # clean and occluded
        assert _error_deg(results, i) < 2.0, (i, np.rad2deg([results.azimuth[i], results.elevation[i]]))
        assert 0 <= results.azimuth[i] < 2 * np.pi
    # Refinement improves on the best grid pose (the true pose is between grid points).
    assert results.loss[0] < results.grid_loss[0].min() - 1e-3
    assert results.distance[0] == pytest.approx(DIST)


def test_occluder_map_finds_planted_occluder(scene, results):
    pred, truth = results.occluder[1], scene["planted"]
    iou = (pred & truth).sum() / (pred | truth).sum()
    assert iou > 0.7, iou
    assert results.occluder[0].sum() <= 0.03 * scene["mask"].sum()  # clean image: (almost) nothing occluded
    mask_iou = (results.object_mask[0] & scene["mask"]).sum() / (results.object_mask[0] | scene["mask"]).sum()
    assert mask_iou > 0.9


def test_early_stop(results):
    assert 20 < int(results.steps[0]) < 300, results.steps  # converged and froze before the last step
    assert int(results.steps[2]) == 0  # NaN image: non-finite gradients never move the pose


def test_never_nan_pose(results):
    for name in ("azimuth", "elevation", "theta", "distance"):
        assert np.all(np.isfinite(getattr(results, name))), name
    assert not np.isnan(results.loss).any()


def test_bad_input_raises(scene):
    good = SearchInputs(
        scene["clean"], scene["vf"], scene["clutter"], scene["v"], scene["f"], FOCAL, scene["pp"], DIST
    )
    config = scene["config"]
    bad = scene["clean"].copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="observed has a non-finite value at index \\[0, 3, 4, 5\\]"):
        search_pose(good.replace(observed=bad), config)
    with pytest.raises(ValueError, match="observed feature map is 24x32 but config.raster expects 24x40"):
        search_pose(good.replace(observed=scene["clean"][:, :32]), config)
    with pytest.raises(ValueError, match="vertex_features must be"):
        search_pose(good.replace(observed=scene["clean"][..., :8]), config)
    with pytest.raises(ValueError, match="principal must have shape"):
        search_pose(good.replace(principal=np.zeros(3)), config)
    with pytest.raises(ValueError, match="empty batch"):
        search_pose(good.replace(observed=scene["clean"][None][:0]), config)
    with pytest.raises(ValueError, match="num_starts"):
        SearchConfig(raster=scene["config"].raster, num_starts=1000)


@pytest.mark.extended
def test_bucketed_mesh_gives_the_unpadded_search(scene, results):
    """tools/evaluate pads each category's mesh (zero vertices and features, -1 faces) and rounds the
    tile budget up so categories share one compiled search: the poses must not change, and a second
    category's mesh of another size runs without a new trace."""
    v, f, vf, config = bucketed_search_inputs(scene["v"], scene["f"], scene["vf"], scene["config"], step=256)
    assert v.shape[0] % 256 == 0 and f.shape[0] % 256 == 0 and config.raster.tile_budget % 256 == 0
    assert v.shape[0] > len(scene["v"]) and bool(jnp.all(f[len(scene["f"]) :] == -1))
    obs = np.stack([scene["clean"], scene["occluded"]])
    chex.clear_trace_counter()
    core = search_batch_unchecked.__wrapped__
    search = jax.jit(chex.assert_max_traces(core, n=1), static_argnames="config")
    res = search(_batched(scene, obs, v, f, vf), config=config)
    for field in ("azimuth", "elevation", "theta", "loss"):
        np.testing.assert_allclose(np.asarray(getattr(res, field)), getattr(results, field)[:2], atol=1e-4)
    np.testing.assert_array_equal(np.asarray(res.occluder), results.occluder[:2])
    # another category: a smaller box (152 vertices, 300 faces) with its own features
    v2, f2 = cuboid_mesh([-0.25, -0.4, -0.2], [0.25, 0.4, 0.2], 150)
    vf2 = _unit(np.random.default_rng(1).normal(size=(len(v2), C))).astype(np.float32)
    v2, f2, vf2, config2 = bucketed_search_inputs(v2, f2, vf2, scene["config"], step=256)
    assert v2.shape == v.shape and f2.shape == f.shape and config2 == config
    res2 = search(_batched(scene, obs, v2, f2, vf2), config=config2)  # raises if traced again
    assert np.all(np.isfinite(np.asarray(res2.loss)))


@pytest.mark.extended
def test_degenerate_feature_maps_are_flagged(scene, results):
    """An all-zero or constant feature map still gets a pose, but flagged; real scenes are not."""
    from nemo_jax.inference import trust_flags

    assert trust_flags(results)[:2] == [[], []]  # clean and occluded: trusted
    constant = np.broadcast_to(_unit(np.arange(1.0, C + 1.0)), (H, W, C)).astype(np.float32)
    obs = np.stack([np.zeros((H, W, C), np.float32), constant, scene["clean"]])
    res = search_batch(_batched(scene, obs), config=scene["config"])
    flags = trust_flags(res)
    assert flags[0] == ["uniform features", "no object evidence"]  # all zero: nothing beats clutter
    assert "uniform features" in flags[1]
    assert flags[2] == []


def test_search_batch_refuses_nonfinite_features_vertex_features_or_clutter(scene):
    """As search_pose does: an error naming what was non-finite, not a default pose (evaluation's path)."""
    nan_image = scene["clean"].copy()
    nan_image[5, 7, :] = np.nan
    inputs = _batched(scene, np.stack([scene["clean"], scene["occluded"], nan_image]))
    with pytest.raises(ValueError, match=r"search_batch: non-finite values in observed \(images \[2\]"):
        search_batch(inputs, config=scene["config"])
    good = _batched(scene, np.stack([scene["clean"], scene["occluded"], scene["clean"]]))
    vf = np.array(scene["vf"])
    vf[3, 0] = np.inf
    with pytest.raises(ValueError, match=r"non-finite values in vertex_features \(1 values\)"):
        search_batch(good.replace(vertex_features=jnp.asarray(vf)), config=scene["config"])
    clutter = np.array(good.clutter)
    clutter[1, :] = np.nan
    with pytest.raises(ValueError, match=r"non-finite values in clutter"):
        search_batch(good.replace(clutter=jnp.asarray(clutter)), config=scene["config"])


def _numpy_greedy_starts(grid, loss, k, separation_deg):
    """Greedy NMS on rotations, host-side: by increasing loss (ties: lower index), skip a pose closer
    than ``separation_deg`` to a chosen one; when none is left, the best pose not yet chosen."""
    from nemo_jax.eval.metrics import rotation_error

    order = np.argsort(loss, kind="stable")
    chosen = []
    for _ in range(k):
        free = [i for i in order if i not in chosen]
        far = [
            i
            for i in free
            if all(np.rad2deg(rotation_error(grid[i, :3], grid[j, :3])) >= separation_deg for j in chosen)
        ]
        chosen.append((far or free)[0])
    return np.array(chosen)


def test_select_starts_matches_numpy_greedy_nms():
    from nemo_jax.inference.search import select_starts

    config = SearchConfig(raster=RasterSettings(H, W))
    grid = np.asarray(pose_grid(config))
    rng = np.random.default_rng(3)
    select = jax.jit(select_starts, static_argnums=(2, 3))
    for trial in range(4):
        loss = rng.uniform(0.2, 1.0, len(grid)).astype(np.float32)
        loss[rng.choice(len(grid), 5, replace=False)] = np.inf  # non-finite grid losses come last
        if trial == 3:  # ties: the lower index first
            loss[:20] = 0.5
        for k, sep in ((1, 47.0), (4, 47.0), (6, 95.0), (8, 170.0)):
            got = np.asarray(select(jnp.asarray(grid), jnp.asarray(loss), k, sep))
            want = _numpy_greedy_starts(grid, loss, k, sep)
            np.testing.assert_array_equal(got, want, err_msg=f"k={k} sep={sep}")
            assert len(set(got.tolist())) == k
        # 0: plain top-K
        np.testing.assert_array_equal(
            np.asarray(select(jnp.asarray(grid), jnp.asarray(loss), 5, 0.0)),
            np.asarray(jax.lax.top_k(-jnp.asarray(loss), 5)[1]),
        )
    # a separation keeps the starts apart where top-K takes the best pose's neighbours
    loss = np.asarray(rng.uniform(0.2, 1.0, len(grid)), np.float32)
    from nemo_jax.eval.metrics import rotation_error

    best = int(np.argmin(loss))
    loss = np.where(np.rad2deg(rotation_error(grid[:, :3].T, grid[best, :3])) < 40, loss - 1.0, loss)
    spread = np.asarray(select(jnp.asarray(grid), jnp.asarray(loss), 3, 60.0))
    top = np.asarray(select(jnp.asarray(grid), jnp.asarray(loss), 3, 0.0))
    assert min(np.rad2deg(rotation_error(grid[spread[0], :3], grid[s, :3])) for s in spread[1:]) >= 60
    assert max(np.rad2deg(rotation_error(grid[top[0], :3], grid[s, :3])) for s in top[1:]) < 40


@pytest.mark.extended
def test_k_starts_equal_the_best_of_k_single_start_refinements(scene):
    """The K starts are refined independently: the vmapped K-start search is the best of K
    one-start refinements (a loop) from the same grid poses."""
    from nemo_jax.inference.search import image_objective, refine_starts, search_single, select_starts

    config = dataclasses.replace(scene["config"], num_starts=3, steps=40, early_stop_tol=0.0)
    inputs = SearchInputs(
        jnp.asarray(scene["occluded"]), jnp.asarray(scene["vf"]), jnp.asarray(scene["clutter"]),
        jnp.asarray(scene["v"]), jnp.asarray(scene["f"], jnp.int32), jnp.float32(FOCAL),
        jnp.asarray(scene["pp"]), jnp.float32(DIST),
    )  # fmt: skip
    full = jax.jit(search_single, static_argnames="config")(inputs, config=config)

    @functools.partial(jax.jit, static_argnames="config")
    def one_start(inputs, index, config):
        loss_fn, _, _ = image_objective(inputs, config)
        grid = pose_grid(config)
        grid = jnp.concatenate([grid, jnp.full((grid.shape[0], 1), inputs.distance)], axis=1)
        start = grid[index][None]
        return refine_starts(loss_fn, start, _finite(loss_fn(start[0])[0])[None], config)

    grid = jnp.concatenate([pose_grid(config), jnp.full((config.grid_size, 1), DIST)], axis=1)
    starts = np.asarray(select_starts(grid, full.grid_loss, 3))
    first = lambda x: np.asarray(x)[0] if np.ndim(x) else x  # noqa: E731 (the one start of K = 1)
    singles = [jax.tree.map(first, one_start(inputs, int(i), config=config)) for i in starts]
    losses = np.array([r.loss for r in singles])
    assert len(set(np.round(losses, 4).tolist())) > 1  # the starts do end apart
    best = singles[int(np.argmin(losses))]
    np.testing.assert_allclose(float(full.loss), losses.min(), atol=1e-5)
    pose = np.array([float(full.azimuth), float(full.elevation), float(full.theta), float(full.distance)])
    want = np.array(best.poses)
    want[0] = np.mod(want[0], 2 * np.pi)
    np.testing.assert_allclose(pose, want, atol=1e-4)
    assert int(full.steps) == int(best.steps)


def _finite(x):
    return jnp.where(jnp.isfinite(x), x, jnp.inf)


def test_start_separation_setting_reaches_the_search_config(scene):
    from nemo_jax.inference import settings

    s = settings.run_settings({}, {"inference.start_separation_deg": 45})
    assert settings.search_fields(s)["start_separation_deg"] == 45.0
    assert settings.default_settings().start_separation_deg == 0.0
    with pytest.raises(ValueError, match="inference.start_separation_deg"):
        settings.run_settings({}, {"start_separation_deg": -1.0})
    with pytest.raises(ValueError, match="start_separation_deg"):
        SearchConfig(raster=scene["config"].raster, start_separation_deg=200.0)
