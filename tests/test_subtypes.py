"""One neural mesh per CAD sub-type (MultiCuboid / per-sub-type CAD): the stacked meshes, the
one-hot bank and clutter updates, training two banks with one backbone, the sub-type search, and
the errors for data the run has no mesh for."""

from __future__ import annotations

import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import tiny_config

from configs import smoke
from nemo_jax import eval as eval_lib
from nemo_jax import mesh as mesh_lib
from nemo_jax.apps import evaluate as evaluate_app
from nemo_jax.mesh import subtypes
from nemo_jax.train import contrastive, loop, run, sources, subtype_data

# Two clearly different sub-types: a long low box and a tall narrow one (CAD frame, z up, CAD units).
BOXES = (((-1.0, -0.4, -0.3), (1.0, 0.4, 0.3)), ((-0.4, -0.4, -0.9), (0.4, 0.4, 0.9)))


def write_cad(root, category="toy", boxes=BOXES, vertices=40):
    folder = os.path.join(root, category)
    os.makedirs(folder, exist_ok=True)
    for k, (lo, hi) in enumerate(boxes, start=1):
        mesh_lib.save_off(os.path.join(folder, f"{k:02d}.off"), *mesh_lib.cuboid_mesh(lo, hi, vertices))
    return str(root)


def test_multi_cuboid_stacks_one_padded_mesh_per_subtype():
    cads = [mesh_lib.cuboid_mesh(lo, hi, 60) for lo, hi in BOXES]
    cads[1] = mesh_lib.cuboid_mesh(*BOXES[1], 150)  # different vertex counts -> padding
    meshes = subtypes.subtype_geometry("multi_cuboid", cads, coverage=1.0, target_vertices=60)
    assert meshes.num_meshes == 2
    for s, (lo, hi) in enumerate(BOXES):
        v, f = subtype_data.unpadded(meshes, s)
        np.testing.assert_allclose(v.min(0), lo, atol=1e-5)
        np.testing.assert_allclose(v.max(0), hi, atol=1e-5)
        assert f.max() < len(v)
    neural = subtypes.init_subtype_meshes(jax.random.PRNGKey(0), meshes, 8, 16)
    v_max = meshes.vertices.shape[1]
    assert neural.features.shape == (2, v_max, 8) and neural.clutter.shape == (2, 16, 8)
    mask = np.asarray(subtypes.vertex_mask(neural.faces, v_max))
    np.testing.assert_array_equal(mask, np.asarray(meshes.vertex_mask))
    # padding vertices carry zero features; real ones unit features
    norms = np.linalg.norm(np.asarray(neural.features), axis=-1)
    np.testing.assert_allclose(norms[mask], 1.0, rtol=1e-5)
    assert np.all(norms[~mask] == 0)
    with pytest.raises(ValueError, match="not one of"):
        subtypes.subtype_geometry("single", cads)


def test_cad_per_subtype_remeshes_each_cad_model():
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=1)  # 42 vertices -> subdivided
    box = trimesh.creation.box((2.0, 0.8, 0.6))  # 8 vertices -> subdivided
    cads = [(np.asarray(m.vertices), np.asarray(m.faces)) for m in (sphere, box)]
    meshes = subtypes.subtype_geometry("cad_per_subtype", cads, target_vertices=120)
    for s, (v0, _) in enumerate(cads):
        v, f = subtype_data.unpadded(meshes, s)
        assert 60 <= len(v) <= 180 and f.max() < len(v)
        np.testing.assert_allclose(v.min(0), v0.min(0), atol=1e-5)  # same frame and extent
        np.testing.assert_allclose(v.max(0), v0.max(0), atol=1e-5)


def test_bank_update_touches_only_the_banks_of_the_batchs_subtypes():
    rng = np.random.default_rng(0)
    s_count, b, v, d = 3, 4, 5, 6
    banks = mesh_lib.normalize(jnp.asarray(rng.normal(size=(s_count, v, d)), jnp.float32))
    feats = mesh_lib.normalize(jnp.asarray(rng.normal(size=(b, v, d)), jnp.float32))
    visible = jnp.asarray(rng.random((b, v)) > 0.3)
    subtype = jnp.array([0, 2, 0, 2])
    target, count = subtypes.subtype_bank_targets(feats, visible, subtype, s_count)
    new = subtypes.subtype_momentum_update(banks, target, count, 0.9)
    np.testing.assert_array_equal(np.asarray(new[1]), np.asarray(banks[1]))  # no image of sub-type 1
    for s in (0, 2):  # each equals the single-bank update on that sub-type's images alone
        rows = np.asarray(subtype) == s
        t, c = contrastive.bank_targets(feats[rows], visible[rows])
        want = mesh_lib.momentum_update(banks[s], t, c, 0.9)
        np.testing.assert_allclose(np.asarray(new[s]), np.asarray(want), atol=1e-6)


def test_clutter_queues_get_their_own_images_samples_in_fifo_order():
    s_count, k, d = 2, 6, 1
    queues = jnp.arange(s_count * k * d, dtype=jnp.float32).reshape(s_count, k, d) + 100
    new = jnp.arange(3 * 1 * d, dtype=jnp.float32).reshape(3, 1, d)  # 3 images, 1 sample each
    out = np.asarray(subtypes.push_clutter_by_subtype(queues, new, jnp.array([1, 0, 1])))[..., 0]
    q = np.asarray(queues)[..., 0]
    np.testing.assert_array_equal(out[0], [1, *q[0, :5]])
    np.testing.assert_array_equal(out[1], [0, 2, *q[1, :4]])


def test_per_image_banks_give_the_shared_bank_loss_and_padding_is_no_negative():
    rng = np.random.default_rng(1)
    b, v, d, k, n = 2, 5, 4, 3, 2
    unit = lambda *shape: mesh_lib.normalize(jnp.asarray(rng.normal(size=shape), jnp.float32))  # noqa: E731
    feats, bank, clutter, samples = unit(b, v, d), unit(v, d), unit(k, d), unit(b, n, d)
    visible = jnp.ones((b, v), bool)
    pos = jnp.asarray(rng.uniform(0, 100, (b, v, 2)), jnp.float32)
    kw = dict(distance_thr=1.0)
    shared, _ = contrastive.contrastive_loss(feats, visible, pos, bank, clutter, samples, **kw)
    stacked, _ = contrastive.contrastive_loss(
        feats, visible, pos, jnp.stack([bank] * b), jnp.stack([clutter] * b), samples, **kw
    )
    np.testing.assert_allclose(float(stacked), float(shared), rtol=1e-6)
    # a padding entry (last vertex) changes nothing once masked
    mask = jnp.arange(v) < v - 1
    vis = visible & mask
    padded_bank = bank.at[-1].set(feats[0, 0])  # a would-be hard negative
    masked, _ = contrastive.contrastive_loss(feats, vis, pos, padded_bank, clutter, samples, None, mask, **kw)
    bank_v = bank[:-1]
    ref, _ = contrastive.contrastive_loss(
        feats[:, :-1], vis[:, :-1], pos[:, :-1], bank_v, clutter, samples, **kw
    )
    np.testing.assert_allclose(float(masked), float(ref), rtol=1e-5)


def test_cad_index_without_a_mesh_names_the_example_and_index():
    with pytest.raises(ValueError, match=r"example 'img_7'.*cad_index 3.*1\.\.2"):
        subtype_data.check_cad_indices([1, 2, 3], ["img_5", "img_6", "img_7"], 2, "data/train.tfrecord")
    subtype_data.check_cad_indices([1, 2, 2], ["a", "b", "c"], 2, "x")  # fine


def test_cad_dir_must_number_models_in_cad_index_order(tmp_path):
    root = write_cad(tmp_path)
    os.rename(os.path.join(root, "toy", "02.off"), os.path.join(root, "toy", "03.off"))
    config = smoke.get_config()
    config.mesh.kind, config.mesh.cad_dir = "multi_cuboid", root
    with pytest.raises(ValueError, match="01.off .. 02.off"):
        subtype_data.build_subtype_meshes(config)


def test_evaluation_refuses_data_the_run_does_not_match():
    config = types.SimpleNamespace(data=types.SimpleNamespace(image_size=(32, 32)))
    source = types.SimpleNamespace(path="/data/pascal3d/1.0.0", split="val")
    batch = {"image": np.zeros((2, 48, 32, 3), np.uint8), "id": ["n01_a", "n01_b"], "cad_index": [1, 4]}
    with pytest.raises(ValueError, match=r"32x32 crops.*48x32 images"):
        evaluate_app.check_crop_size("/runs/car", config, source, batch)
    with pytest.raises(ValueError, match=r"example 'n01_b' has cad_index 4.*1\.\.3"):
        evaluate_app.check_subtypes("/runs/car", 3, dict(batch, source="/data/pascal3d/1.0.0 [val]"))


def _tiny_subtype_config(cad_dir, steps):
    c = tiny_config(steps)
    c.mesh.kind = "multi_cuboid"
    c.mesh.cad_dir = cad_dir
    c.mesh.symmetric = False
    return c


@pytest.mark.extended
def test_two_subtypes_train_two_banks_and_search_picks_the_right_one(tmp_path, monkeypatch):
    """A fixture category with two CAD sub-types trains two banks with one
    backbone, and ``subtype="search"`` picks each rendered test image's sub-type."""
    cad = write_cad(tmp_path / "cad")
    config = _tiny_subtype_config(cad, steps=60)
    workdir = str(tmp_path / "run")
    _, state = loop.train(config, workdir)
    init, _, _ = run.build_neural_mesh(config, jax.random.split(jax.random.PRNGKey(0))[0])
    assert state.mesh.features.shape[0] == 2
    for s in range(2):  # both banks were trained (each by its own images)
        moved = np.linalg.norm(np.asarray(state.mesh.features[s] - init.features[s]), axis=-1)
        assert np.mean(moved > 1e-3) > 0.3, s

    run_config, _, _, mesh = run.load_run(workdir)
    np.testing.assert_array_equal(np.asarray(mesh.features), np.asarray(state.mesh.features))
    _, held = sources.build_sources(
        run_config, run.build_neural_mesh(run_config, jax.random.PRNGKey(0))[1], None, None
    )
    labels = np.array([int(held[i]["cad_index"]) for i in range(len(held))])
    assert set(labels.tolist()) == {1, 2}  # the test images hold both sub-types

    class HeldOut:  # the rendered test images as an evaluation split
        path, split, categories = "toy-held-out", "test_l0", ["toy"]

        def __init__(self, cad_index):
            self.cad_index = cad_index

        def __len__(self):
            return len(held)

        def indices_of(self, category):
            return list(range(len(held))) if category == "toy" else []

        def __getitem__(self, i):
            ex = dict(held[i], id=f"toy_{i}", category=0, occlusion_level=0)
            return dict(ex, cad_index=np.int32(self.cad_index[i]))

    grid = dict(azimuths_deg=tuple(range(0, 360, 45)), elevations_deg=(15.0,), thetas_deg=(0.0,), steps=0)

    def records(mode, cad_index):
        monkeypatch.setattr(evaluate_app, "level_source", lambda *a: HeldOut(cad_index))
        return evaluate_app.nemo_records(workdir, "toy", "", (0,), inference_overrides=grid, subtype=mode)

    unlabelled = np.ones_like(labels)  # "search" must not read the labels
    searched = eval_lib.evaluate_records(records("search", unlabelled))["predictions"]
    assert [p["subtype"] for p in searched] == labels.tolist()
    # "ground_truth" takes the annotated sub-type's mesh whatever its loss: with the labels swapped
    # it uses the other mesh, and its loss is no better than the search's
    wrong = 3 - labels
    forced = records("ground_truth", wrong)
    assert [r["subtype"] for r in forced] == wrong.tolist()
    assert all(f["loss"] >= p["loss"] - 1e-6 for f, p in zip(forced, searched, strict=True))


def test_checkpoint_with_other_subtypes_is_refused(tmp_path):
    from nemo_jax.train.checkpoint import Checkpointer

    config = smoke.get_config()
    cads = [mesh_lib.cuboid_mesh(lo, hi, 40) for lo, hi in BOXES]

    def info(n):
        meshes = subtypes.subtype_geometry("multi_cuboid", (cads * 2)[:n], target_vertices=40)
        return run.mesh_info(config, subtypes.init_subtype_meshes(jax.random.PRNGKey(0), meshes, 4, 8))

    assert info(2)["num_subtypes"] == 2
    ck = Checkpointer(str(tmp_path), config.to_dict(), info(2), every=1)
    ck.save(1, {"w": np.ones(3, np.float32)})
    ck.close()
    with pytest.raises(RuntimeError, match="num_subtypes=2 but the current neural mesh has num_subtypes=3"):
        Checkpointer(str(tmp_path), config.to_dict(), info(3), every=1)
