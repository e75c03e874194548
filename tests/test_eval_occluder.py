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


def _direct_measures(score, predicted_object, region, occluded):
    """AUROC (pairs counted) and IoU straight from one image's cell maps (bool region/occluded)."""
    pos, neg = score[region & occluded], score[region & ~occluded]
    predicted = predicted_object & (score > 0)
    truth = region & occluded
    return _direct_auroc(pos, neg), np.sum(predicted & truth) / np.sum(predicted | truth)


def _hand_made_batch():
    """Two images of 4 x 4 cells (stride 2: 8 x 8 crop pixels), scores on bin centres (distinct
    scores in distinct bins), the predicted and the true pose's maps differing."""
    rng = np.random.default_rng(3)
    centres = occluder.EDGES[:-1] + 0.005
    score = rng.choice(centres[40:360], size=(2, 2, 4, 4), replace=False)  # [B, pose, h, w]
    obj = np.zeros((2, 2, 4, 4), bool)
    obj[:, 0, 0:3, 0:3] = True  # predicted pose: top-left 3 x 3 cells
    obj[:, 1, 1:4, 0:4] = True  # true pose: the lower three rows
    object_mask = np.zeros((2, 8, 8), np.uint8)
    object_mask[:, 0:6, 0:8] = 1  # cells rows 0-2
    occluder_mask = np.zeros((2, 8, 8), np.uint8)
    occluder_mask[0, 0:4, 2:6] = 255  # image 0: cells (0-1, 1-2)
    occluder_mask[1, 2:8, 0:2] = 1  # image 1: cells (1-3, 0)
    return score, obj, object_mask, occluder_mask


def test_batch_counts_equal_direct_computations_at_the_predicted_and_the_true_pose():
    score, obj, object_mask, occluder_mask = _hand_made_batch()
    cells = lambda m: m.reshape(4, 2, 4, 2).mean(axis=(1, 3)) >= 0.5  # noqa: E731
    for with_object_mask in (True, False):
        batch = {"occluder_mask": occluder_mask}
        if with_object_mask:
            batch["object_mask"] = object_mask
        counts = occluder.batch_counts(batch, score, obj, stride=2)
        for p, pose in enumerate(occluder.POSES):
            for i in range(2):
                # the true object region: the dataset's mask, else the silhouette at the TRUE pose
                region = cells(object_mask[i]) if with_object_mask else obj[i, 1]
                assert counts[i]["region"] == ("object_mask" if with_object_mask else "silhouette")
                auroc, iou = _direct_measures(score[i, p], obj[i, p], region, cells(occluder_mask[i]))
                assert occluder.image_iou(counts[i][pose]) == pytest.approx(iou)
                one = occluder.summarize([counts[i][pose]])
                assert one["auroc"] == pytest.approx(auroc, abs=1e-12)
            entry = occluder.level_entry(counts)
            suffix = "" if pose == "predicted_pose" else "_true_pose"
            # pooled over the images: all pairs of the level's cells, the summed IoU counts
            regions = [cells(object_mask[i]) if with_object_mask else obj[i, 1] for i in range(2)]
            occ = [cells(occluder_mask[i]) for i in range(2)]
            pos = np.concatenate([score[i, p][regions[i] & occ[i]] for i in range(2)])
            neg = np.concatenate([score[i, p][regions[i] & ~occ[i]] for i in range(2)])
            assert entry[f"occluder_auroc{suffix}"] == pytest.approx(_direct_auroc(pos, neg), abs=1e-12)
            predicted = [obj[i, p] & (score[i, p] > 0) for i in range(2)]
            inter = sum(np.sum(predicted[i] & regions[i] & occ[i]) for i in range(2))
            union = sum(np.sum(predicted[i] | (regions[i] & occ[i])) for i in range(2))
            assert entry[f"occluder_iou{suffix}"] == pytest.approx(inter / union)
        assert entry["occluder_auroc"] != entry["occluder_auroc_true_pose"]  # the poses differ
    assert occluder.batch_counts({"object_mask": object_mask}, score, obj, stride=2) is None


def test_masks_of_a_crop_pasted_on_a_canvas_move_with_it():
    score, obj, object_mask, occluder_mask = _hand_made_batch()
    big = np.zeros((2, 2, 6, 6))
    big[..., 1:5, 2:6] = score  # the crop's cells at cell offset (1, 2): pixel offset (2, 4)
    big_obj = np.zeros((2, 2, 6, 6), bool)
    big_obj[..., 1:5, 2:6] = obj
    batch = {"occluder_mask": occluder_mask, "object_mask": object_mask}
    on_canvas = occluder.batch_counts(batch, big, big_obj, stride=2, offset=(2, 4))
    assert on_canvas == occluder.batch_counts(batch, score, obj, stride=2)


@pytest.mark.extended
def test_pose_scores_pick_each_poses_mesh_of_a_stack():
    observed, inputs, pose, focal, principal, settings, _, _ = _scene(2)
    other = jnp.asarray(inputs["vertices"]) * 0.7  # a second, smaller mesh
    stack = dict(
        vertex_features=jnp.stack([inputs["vertex_features"]] * 2),
        clutter=jnp.stack([inputs["clutter"]] * 2),
        vertices=jnp.stack([inputs["vertices"], other]),
        faces=jnp.stack([inputs["faces"]] * 2),
    )
    poses = jnp.stack([jnp.stack([pose, pose.at[0].add(0.3)])] * 2)  # [2, 2, 4]
    index = jnp.array([[0, 1], [1, 0]], jnp.int32)
    obs = jnp.stack([jnp.asarray(observed)] * 2)
    score, mask, overflow = occluder.pose_scores(
        obs, stack["vertex_features"], stack["clutter"], stack["vertices"], stack["faces"],
        jnp.full(2, focal), jnp.stack([principal] * 2), poses, index, settings,
    )  # fmt: skip
    assert score.shape == (2, 2, 24, 24) and int(np.max(overflow)) == 0
    for i in range(2):
        for p in range(2):
            s = int(index[i, p])
            one, one_mask = occluder.occlusion_scores(
                obs[i], inputs["vertex_features"], inputs["clutter"], stack["vertices"][s], inputs["faces"],
                focal, principal, poses[i, p], settings,
            )  # fmt: skip
            np.testing.assert_allclose(score[i, p], one, atol=1e-5)
            np.testing.assert_array_equal(mask[i, p], one_mask)
    assert not np.array_equal(mask[0, 1], mask[1, 1])  # the two meshes' silhouettes differ


# ---------------------------------------------------------------------------------------------
# A tiny evaluation: a 2-step run on 32 x 32 synthetic crops (an 8 x 8 feature map) at L0 and L3


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from configs import synthetic_cpu
    from nemo_jax import data
    from nemo_jax.train import train

    root = tmp_path_factory.mktemp("occluder_eval")
    options = {
        "categories": "car", "height": 32, "width": 32, "train_per_category": 8,
        "val_per_category": 4, "test_per_category": 3, "neural_vertices": 60,
    }  # fmt: skip
    data.build("synthetic", str(root / "data"), data.make_options("synthetic", options), progress=False)
    config = synthetic_cpu.get_config("car")
    config.data.data_dir = str(root / "data")
    config.data.image_size = (32, 32)
    config.train.steps, config.train.batch_size, config.train.checkpoint_every = 2, 4, 2
    config.train.clutter_size, config.train.progress = 16, False
    config.model.width = 0.25
    config.eval.batch_size, config.eval.num_batches = 4, 0
    train(config, str(root / "runs" / "car"))
    return root


@pytest.mark.extended
def test_tiny_evaluation_reports_the_four_occluder_measures_and_draws_them(tiny_run, tmp_path, monkeypatch):
    from nemo_jax import viz
    from nemo_jax.apps import evaluate
    from nemo_jax.eval import format_table

    titles = []
    figure_one = viz.figure_one
    monkeypatch.setattr(viz, "figure_one", lambda *a, **k: titles.append(k["title"]) or figure_one(*a, **k))
    figures = tmp_path / "figures"
    results = evaluate.evaluate(
        str(tiny_run / "runs" / "car"), "synthetic", str(tiny_run / "data"), levels=(0, 3),
        figures_dir=str(figures), inference_overrides={"steps": 3},
    )  # fmt: skip
    names = ("occluder_auroc", "occluder_iou", "occluder_auroc_true_pose", "occluder_iou_true_pose")
    for category in ("car", "mean"):
        l3 = results["results"][category]["L3"]
        for name in names:
            assert l3[name] is not None and 0.0 <= l3[name] <= 1.0 and np.isfinite(l3[name]), name
        assert results["results"][category]["L0"]["occluder_auroc"] is None  # nothing occluded at L0
    # The JSON keeps the histograms pooled per level, each prediction only its IoU counts.
    pooled = results["occluder"]["levels"]["L3"]
    assert pooled["region"] == ["object_mask"]
    assert pooled["predicted_pose"]["auroc"] == pytest.approx(
        results["results"]["mean"]["L3"]["occluder_auroc"]
    )
    assert len(pooled["true_pose"]["occluded"]) == occluder.BINS
    for p in results["predictions"]:
        for pose in occluder.POSES:
            assert set(p["occluder"][pose]) == {
                "intersection",
                "union",
                "iou",
                "occluded_cells",
                "visible_cells",
            }
    assert "OccAUROC" in format_table(results)
    assert (figures / "occluder_vs_occlusion.png").is_file()
    assert len(titles) == 2 and all("occluder IoU" in t for t in titles)  # Figure 1, one per level


@pytest.mark.extended
def test_without_an_object_mask_the_region_is_the_silhouette_at_the_true_pose(tiny_run, monkeypatch):
    from nemo_jax.apps import evaluate

    real = evaluate.level_source

    class NoObjectMask:  # OccludedPASCAL3D+-like: an occluder mask, no object mask
        def __init__(self, source):
            self.source, self.path, self.split = source, source.path, source.split
            self.categories = source.categories

        def __len__(self):
            return len(self.source)

        def indices_of(self, category):
            return self.source.indices_of(category)

        def __getitem__(self, i):
            return {k: v for k, v in self.source[i].items() if k != "object_mask"}

    monkeypatch.setattr(evaluate, "level_source", lambda *a: NoObjectMask(real(*a)))
    records = evaluate.nemo_records(
        str(tiny_run / "runs" / "car"), "synthetic", str(tiny_run / "data"), levels=(3,),
        inference_overrides={"steps": 3},
    )  # fmt: skip
    assert len(records) == 3 and all(r["occluder"]["region"] == "silhouette" for r in records)
    # at the true pose the region is the rendered object itself: every object cell is scored
    for r in records:
        counts = r["occluder"]["true_pose"]
        assert sum(counts["occluded"]) + sum(counts["visible"]) > 0
    entry = occluder.level_entry(r["occluder"] for r in records)
    assert all(v is None or 0.0 <= v <= 1.0 for v in entry.values())
