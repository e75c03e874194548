"""Pose search: recovers a known pose from a rendered feature map, localises a planted occluder,
rejects bad input, never returns a NaN pose. One compiled search (batch of 3 images) for the module."""

import dataclasses

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
