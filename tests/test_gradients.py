"""Autodiff against finite differences (``jax.test_util.check_grads``, order 1, forward and reverse
mode, float32 tolerances) for the two objectives the project differentiates: the pose search's NeMo
loss (through the rasterizer) and the training's contrastive loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from nemo_jax.geometry import camera_from_viewpoint
from nemo_jax.inference import clutter_similarity, similarity_table
from nemo_jax.inference.search import pose_loss
from nemo_jax.mesh import cuboid_mesh
from nemo_jax.render import RasterSettings, render_exact
from nemo_jax.train import contrastive

H, W, C = 12, 16, 8
FOCAL = 40.0
TRUE_POSE = np.array([0.6, 0.25, 0.1, 5.0], np.float32)  # azimuth, elevation, theta (rad), distance
START = TRUE_POSE + np.array([0.08, -0.05, 0.04, 0.2], np.float32)


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def pose_problem():
    """The search's per-image objective: observed = the mesh's features rendered at TRUE_POSE, clutter
    elsewhere; the loss as a function of the pose ``[4]`` near (not at) the minimum."""
    rng = np.random.default_rng(0)
    v, f = cuboid_mesh([-0.2, -0.5, -0.17], [0.2, 0.5, 0.17], 60)
    vf = _unit(rng.normal(size=(len(v), C))).astype(np.float32)
    clutter = _unit(rng.normal(size=C)).astype(np.float32)
    pp = np.array([W / 2 - 0.5, H / 2 - 0.5], np.float32)
    settings = RasterSettings(H, W, tile_height=4, tile_width=4, cull_backfaces=True, tile_budget=200)
    cam = camera_from_viewpoint(*TRUE_POSE, pp[0], pp[1], FOCAL, 1.0)
    out, _ = render_exact(v, f, cam, settings, attributes=jnp.asarray(vf))
    mask = np.asarray(out.coverage) > 0.5
    obs = np.where(mask[..., None], _unit(np.asarray(out.features) + 1e-9), clutter)
    obs = _unit(obs + 0.2 * rng.normal(size=obs.shape)).astype(np.float32)
    table = similarity_table(jnp.asarray(vf), jnp.asarray(obs))
    clutter_sim = clutter_similarity(jnp.asarray(obs), jnp.asarray(clutter))
    return dict(
        v=jnp.asarray(v),
        f=jnp.asarray(f),
        vf=jnp.asarray(vf),
        pp=jnp.asarray(pp),
        table=table,
        clutter_sim=clutter_sim,
        settings=settings,
    )


def test_search_objective_gradient_matches_finite_differences(pose_problem):
    """The hard (z-buffer) variant the search uses; its loss is piecewise smooth."""
    p = pose_problem
    settings = p["settings"]

    def loss(pose):
        value, overflow = pose_loss(
            pose, p["table"], p["clutter_sim"], p["v"], p["f"], FOCAL, p["pp"], settings
        )
        return value

    loss = jax.jit(loss)
    start = jnp.asarray(START)
    # smooth while no pixel enters or leaves the silhouette (inside it, neighbouring faces share
    # vertices, so the interpolated similarity is continuous): true in a box around START
    coverage_at = lambda pose: (
        render_exact(
            p["v"],
            p["f"],
            camera_from_viewpoint(*pose, p["pp"][0], p["pp"][1], FOCAL, 1.0),
            settings,
            attributes=p["vf"],  # the fixture's compiled render
        )[0].face_index
        >= 0
    )
    ref = np.asarray(coverage_at(start))
    slopes = []
    for d in np.eye(4, dtype=np.float32):
        h = 3e-3
        assert np.array_equal(np.asarray(coverage_at(start + h * d)), ref)
        assert np.array_equal(np.asarray(coverage_at(start - h * d)), ref)
        slopes.append((float(loss(start + h * d)) - float(loss(start - h * d))) / (2 * h))
    assert max(abs(x) for x in slopes) > 1e-2, slopes  # a slope to check, not a flat spot
    check_grads(loss, (start,), order=1, modes=("fwd", "rev"), eps=1e-3, atol=2e-3, rtol=2e-2)


def test_contrastive_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    b, v, k, n, d = 2, 6, 4, 3, 5
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    feats, samples = f32(_unit(rng.normal(size=(b, v, d)))), f32(_unit(rng.normal(size=(b, n, d))))
    bank, queue = f32(_unit(rng.normal(size=(v, d)))), f32(_unit(rng.normal(size=(k, d))))
    points = f32(rng.uniform(0, 20, (b, v, 2)))
    visible = jnp.asarray(rng.uniform(size=(b, v)) < 0.7).at[0, 0].set(True)
    valid = jnp.asarray([[True, True, False], [True, False, True]])

    def loss(vertex_features, clutter_samples):
        value, _ = contrastive.contrastive_loss(
            vertex_features, visible, points, bank, queue, clutter_samples, valid, distance_thr=6.0
        )
        return value

    check_grads(
        jax.jit(loss), (feats, samples), order=1, modes=("fwd", "rev"), eps=1e-3, atol=2e-3, rtol=2e-2
    )
