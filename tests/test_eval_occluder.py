"""Occluder localisation measures: AUROC and IoU against direct computations on hand-made cases,
and the score map of a scene whose occluded cells are known."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from nemo_jax.eval import occluder
from nemo_jax.geometry import camera_from_viewpoint
from nemo_jax.mesh import cuboid_mesh
from nemo_jax.mesh.neural import normalize
from nemo_jax.render import RasterSettings, render


def _direct_auroc(pos, neg):
    pairs = [(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)]
    return float(np.mean(pairs))


def test_cell_fraction_averages_each_cells_pixels():
    mask = np.zeros((8, 8), np.uint8)
    mask[0:4, 0:4] = 1  # cell (0, 0) of stride 4: full
    mask[4:6, 4:8] = 255  # cell (1, 1): half
    mask[7, 0] = 1  # cell (1, 0): one pixel of 16
    np.testing.assert_allclose(occluder.cell_fraction(mask, 4, (2, 2)), [[1.0, 0.0], [1 / 16, 0.5]])


def test_auroc_and_iou_equal_direct_computations_on_a_hand_made_map():
    # 3 x 4 cells; scores on bin centres so that distinct scores fall in distinct bins
    score = np.array(
        [[0.305, -0.205, 0.905, -1.005], [0.105, 0.105, -0.405, 0.605], [-0.205, 1.505, 0.005, -0.705]]
    )
    true_object = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [0, 1, 1, 1]], float)
    occluded = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]], float)
    predicted_object = np.array([[1, 1, 1, 1], [1, 1, 0, 1], [0, 1, 1, 1]], bool)
    counts = occluder.image_counts(score, predicted_object, true_object, occluded)

    region = true_object >= 0.5
    pos = score[region & (occluded >= 0.5)]
    neg = score[region & (occluded < 0.5)]
    summary = occluder.summarize([counts])
    assert summary["auroc"] == pytest.approx(_direct_auroc(pos, neg), abs=1e-12)
    assert summary["occluded_cells"] == pos.size and summary["visible_cells"] == neg.size

    predicted = predicted_object & (score > 0)
    truth = region & (occluded >= 0.5)
    assert summary["iou"] == pytest.approx(np.sum(predicted & truth) / np.sum(predicted | truth))
    assert occluder.image_iou(counts) == pytest.approx(summary["iou"])


def test_pooled_auroc_counts_ties_half_and_needs_both_classes():
    a = occluder.image_counts(
        np.full((1, 2), 0.3), np.ones((1, 2), bool), np.ones((1, 2)), np.array([[1, 0]])
    )
    assert occluder.summarize([a])["auroc"] == pytest.approx(0.5)  # one tie
    only_visible = occluder.image_counts(
        np.zeros((1, 2)), np.ones((1, 2), bool), np.ones((1, 2)), np.zeros((1, 2))
    )
    summary = occluder.summarize([only_visible])
    assert summary["auroc"] is None and summary["iou"] is None
    pooled = occluder.summarize([a, only_visible])  # the second image adds two negatives at 0
    assert pooled["visible_cells"] == 3
    assert pooled["auroc"] == pytest.approx(_direct_auroc([0.3], [0.3, 0.0, 0.0]))


def _scene(seed=0):
    """A cuboid whose vertex features are the observed map's own (rendered at the true pose), with
    the left half of the object's cells overwritten by the clutter feature (the occluder)."""
    rng = np.random.default_rng(seed)
    v, f = cuboid_mesh([-0.5, -1.0, -0.4], [0.5, 1.0, 0.4], 200)
    d = 16
    feats = normalize(jnp.asarray(rng.normal(size=(len(v), d)), jnp.float32))
    clutter = normalize(jnp.asarray(rng.normal(size=(d,)), jnp.float32))
    h = w = 24
    settings = RasterSettings(height=h, width=w, tile_height=4, tile_width=4, tile_budget=4 * len(f))
    pose = jnp.array([0.7, 0.3, 0.1, 6.0], jnp.float32)
    focal, principal = 60.0, jnp.array([11.5, 11.5], jnp.float32)
    cam = camera_from_viewpoint(pose[0], pose[1], pose[2], pose[3], principal[0], principal[1], focal, 1.0)
    out = render(jnp.asarray(v), jnp.asarray(f), cam, settings, attributes=feats)
    obj = np.asarray(out.coverage) > 0.5
    background = np.asarray(normalize(jnp.asarray(rng.normal(size=(h, w, d)), jnp.float32)))
    observed = np.where(obj[..., None], np.asarray(normalize(out.features)), background)
    cols = np.where(obj.any(axis=0))[0]
    occluded = obj & (np.arange(w)[None, :] < (cols.min() + cols.max()) / 2)
    observed[occluded] = np.asarray(clutter)
    inputs = dict(vertex_features=feats, clutter=clutter, vertices=jnp.asarray(v), faces=jnp.asarray(f))
    return observed, inputs, pose, focal, principal, settings, obj, occluded


def test_scores_at_the_true_pose_find_the_known_occluder_exactly_and_a_wrong_pose_does_not():
    observed, inputs, pose, focal, principal, settings, obj, occluded = _scene()
    args = (
        inputs["vertex_features"],
        inputs["clutter"],
        inputs["vertices"],
        inputs["faces"],
        focal,
        principal,
    )

    def measures(p):
        score, mask = occluder.occlusion_scores(jnp.asarray(observed), *args, p, settings)
        counts = occluder.image_counts(score, mask, obj.astype(float), occluded.astype(float))
        return occluder.summarize([counts])

    at_truth = measures(pose)
    assert at_truth["auroc"] == pytest.approx(1.0) and at_truth["iou"] == pytest.approx(1.0)
    # Too close: the rendered object spills onto background cells, some of which clutter wins.
    wrong = measures(pose.at[3].multiply(0.7))
    assert wrong["iou"] < 0.95


def test_batched_scores_equal_one_image_at_a_time():
    observed, inputs, pose, focal, principal, settings, _, _ = _scene(1)
    obs = jnp.stack([jnp.asarray(observed)] * 2)
    poses = jnp.stack([pose, pose.at[0].add(0.4)])
    clutter = jnp.stack([inputs["clutter"]] * 2)
    score, mask = occluder.batch_occlusion_scores(
        obs, inputs["vertex_features"], clutter, inputs["vertices"], inputs["faces"],
        jnp.full(2, focal), jnp.stack([principal] * 2), poses, settings,
    )  # fmt: skip
    for i in range(2):
        one, one_mask = occluder.occlusion_scores(
            obs[i], inputs["vertex_features"], inputs["clutter"], inputs["vertices"], inputs["faces"],
            focal, principal, poses[i], settings,
        )  # fmt: skip
        np.testing.assert_allclose(score[i], one, atol=1e-5)  # jitted vs eager rounding
        np.testing.assert_array_equal(mask[i], one_mask)
