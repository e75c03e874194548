"""Synthetic dataset: build (through tools/build_data.py), storage, loading, batching, occlusion levels."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import run_tool

from nemo_jax import data
from nemo_jax.data import prepare as build_lib
from nemo_jax.data import synthetic
from nemo_jax.geometry import camera_from_viewpoint, project_pascal3d, to_camera_frame

OPTIONS = dict(categories="car,chair", height=48, width=48, train_per_category=6, val_per_category=2,
               test_per_category=4, neural_vertices=120, render_batch=8)  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("synthetic_data"))
    argv = ["--dataset", "synthetic", "--data_dir", data_dir, "--no_progress"]
    for key, value in OPTIONS.items():
        argv += ["--option", f"{key}={value}"]
    first = run_tool("build_data", *argv)
    assert first.returncode == 0, first.stderr[-3000:]
    assert run_tool("build_data", *argv).returncode == 1  # already built: refused, nothing overwritten
    return data_dir


def test_counts_per_split(built):
    expected = {"train": 12, "val": 4, "test_l0": 8, "test_l1": 8, "test_l2": 8, "test_l3": 8}
    for split, count in expected.items():
        assert len(data.load("synthetic", split, built)) == count
    source = data.load("synthetic", "train", built)
    assert source.categories == ["car", "chair"]
    assert source.metadata["build_stats"]["written"]["train"] == 12


def test_fields_and_projection(built):
    source = data.load("synthetic", "val", built)
    meshes = data.load_meshes("synthetic", built)
    for i in range(len(source)):
        ex = source[i]
        assert ex["image"].shape == (48, 48, 3) and ex["image"].dtype == np.uint8
        assert isinstance(ex["id"], str)
        name = source.categories[ex["category"]]
        assert ex["id"].startswith(name)
        verts = meshes[name].neural_vertices
        assert ex["kp2d"].shape == (len(verts), 2) and ex["visible"].shape == (len(verts),)
        assert -np.deg2rad(10) - 1e-6 <= ex["elevation"] <= np.deg2rad(40) + 1e-6
        assert abs(ex["theta"]) <= np.deg2rad(15) + 1e-6
        # kp2d is the PASCAL3D+ projection of the neural mesh at the stored viewpoint (degrees API).
        angles = np.rad2deg([ex["azimuth"], ex["elevation"], ex["theta"]])
        camera = [ex[k] for k in ("distance", "px", "py", "focal", "viewport")]
        uv = np.asarray(project_pascal3d(verts, *angles, *camera))
        np.testing.assert_allclose(ex["kp2d"], uv, atol=1e-2)
        # The neural vertex nearest the camera is visible, the farthest is not; visible ones are in the image.
        vis = ex["kp2d"][ex["visible"]]
        assert 0.15 < ex["visible"].mean() < 0.85
        assert (vis >= -0.5).all() and (vis <= 47.5).all()
        cam = camera_from_viewpoint(
            ex["azimuth"], ex["elevation"], ex["theta"], ex["distance"], ex["px"], ex["py"]
        )
        depth = np.asarray(to_camera_frame(verts, cam))[:, 2]
        assert ex["visible"][np.argmin(depth)] and not ex["visible"][np.argmax(depth)]


def test_occlusion_levels_in_range(built):
    clean = {
        e["id"].replace("test_l0", "X"): e
        for e in (data.load("synthetic", "test_l0", built)[i] for i in range(8))
    }
    for level in (1, 2, 3):
        source = data.load("synthetic", f"test_l{level}", built)
        low, high = data.LEVELS[level]
        for i in range(len(source)):
            ex = source[i]
            assert ex["occlusion_level"] == level
            ratio = data.occlusion_ratio(ex["object_mask"], ex["occluder_mask"])
            assert low <= ratio < high, (ex["id"], ratio)
            base = clean[ex["id"].replace(f"test_l{level}", "X")]  # same view as the clean image
            np.testing.assert_array_equal(ex["object_mask"], base["object_mask"])
            assert ex["azimuth"] == base["azimuth"]
            assert np.any(ex["image"] != base["image"])
    assert all(e["occluder_mask"].sum() == 0 and e["occlusion_level"] == 0 for e in clean.values())


def test_category_indices_read_labels_without_images(built, monkeypatch):
    source = data.load("synthetic", "train", built)
    expected = {
        c: [i for i in range(len(source)) if source[i]["category"] == k]
        for k, c in enumerate(source.categories)
    }
    monkeypatch.setattr(type(source), "__getitem__", lambda self, i: pytest.fail("decoded an example"))
    got = {c: source.indices_of(c) for c in source.categories}
    assert got == expected and all(got.values())
    with pytest.raises(ValueError, match="category 'boat' not in"):
        source.indices_of("boat")


def test_batches_deterministic(built):
    source = data.load("synthetic", "train", built)
    ids = lambda seed: [list(b["id"]) for b in data.batches(source, 5, seed=seed, epochs=2)]
    first = ids(3)
    assert first == ids(3) and first != ids(4)
    assert len(first) == 4 and all(len(b) == 5 for b in first)  # 2 * 12 // 5 batches, remainder dropped
    batch = next(data.batches(source, 4, seed=0, shuffle=False, pad_vertices=200))
    assert batch["image"].shape == (4, 48, 48, 3) and batch["kp2d"].shape == (4, 200, 2)
    assert batch["visible"].shape == (4, 200) and not batch["visible"][:, 150:].any()
    assert batch["azimuth"].dtype == np.float32 and batch["category"].dtype == np.int32
    shapes = {b["kp2d"].shape for b in data.batches(source, 3, seed=1)}  # both categories mixed
    assert shapes == {(3, source.max_vertices, 2)}
    assert source.max_vertices == max(
        len(m.neural_vertices) for m in data.load_meshes("synthetic", built).values()
    )
    grain = pytest.importorskip("grain")
    padded = grain.MapDataset.source(source).map(lambda e: data.pad_example(e, source.max_vertices)).batch(4)
    assert padded[0]["visible"].shape == (4, source.max_vertices)
    rest = list(data.batches(source, 5, shuffle=False, drop_remainder=False, prefetch=0))
    assert [len(b["id"]) for b in rest] == [5, 5, 2]


def test_failed_build_leaves_no_dataset(tmp_path, monkeypatch):
    real = synthetic.generate

    def broken(options, split):
        yield next(real(options, split))
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(synthetic, "generate", broken)
    options = build_lib.make_options("synthetic", OPTIONS)  # same shapes: jit cache hit
    with pytest.raises(RuntimeError, match="disk on fire"):
        build_lib.build("synthetic", str(tmp_path), options, progress=False)
    with pytest.raises(FileNotFoundError, match="no complete version"):
        data.load("synthetic", "train", str(tmp_path))
    assert not any("incomplete" in n for n in os.listdir(tmp_path / "synthetic"))


def test_overwrite_replaces_only_on_success(tmp_path, monkeypatch):
    data_dir = str(tmp_path)
    small = build_lib.make_options("synthetic", {**OPTIONS, "train_per_category": 2})
    build_lib.build("synthetic", data_dir, small, progress=False)
    with pytest.raises(FileExistsError, match="already built"):
        build_lib.build("synthetic", data_dir, small, progress=False)
    real = synthetic.generate

    def broken(options, split):
        yield next(real(options, split))
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(synthetic, "generate", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        build_lib.build("synthetic", data_dir, build_lib.make_options("synthetic", OPTIONS), overwrite=True)
    assert len(data.load("synthetic", "train", data_dir)) == 4  # the old dataset survived
    monkeypatch.setattr(synthetic, "generate", real)
    stats = build_lib.build(
        "synthetic", data_dir, build_lib.make_options("synthetic", OPTIONS), overwrite=True
    )
    source = data.load("synthetic", "train", data_dir)
    assert len(source) == 12 == stats.written["train"]
    assert source.metadata["options"]["train_per_category"] == 6
    assert sorted(os.listdir(data_dir)) == ["synthetic"] and os.listdir(tmp_path / "synthetic") == ["1.0.0"]


def test_bad_options():
    with pytest.raises(ValueError, match="unknown category 'spaceship'"):
        build_lib.make_options("synthetic", {"categories": "car,spaceship"})
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        build_lib.make_options("synthetic", {"colour": "red"})
    with pytest.raises(ValueError, match="unknown dataset"):
        build_lib.make_options("imagenet", {})


def test_occlude_any_image_levels():
    mask = np.zeros((40, 50), np.uint8)
    mask[8:32, 10:42] = 1
    image = np.full((40, 50, 3), 128, np.uint8)
    for level in (1, 2, 3):
        for seed in range(3):
            out, occ, ratio = data.occlude(image, mask, level, np.random.default_rng(seed))
            low, high = data.LEVELS[level]
            assert low <= ratio < high and ratio == pytest.approx(data.occlusion_ratio(mask, occ))
            assert np.all(out[occ == 0] == 128)
            again = data.occlude(image, mask, level, np.random.default_rng(seed))
            np.testing.assert_array_equal(again[0], out)
    with pytest.raises(ValueError, match="object mask is empty"):
        data.occlude(image, np.zeros_like(mask), 1, np.random.default_rng(0))


def test_unseen_pose_bins():
    rng = np.random.default_rng(0)
    seen = np.array([data.sample_azimuth(rng, "seen") for _ in range(500)])
    unseen = np.array([data.sample_azimuth(rng, "unseen") for _ in range(500)])
    assert data.in_seen_bins(seen).all() and not data.in_seen_bins(unseen).any()
    assert ((seen >= 0) & (seen < 360)).all() and ((unseen >= 45) & (unseen < 315)).all()
    np.testing.assert_array_equal(data.in_seen_bins([0, 44.9, 45, 134.9, 135, 224.9, 225, 314.9, 315, 359]),
                                  [1, 1, 0, 0, 1, 1, 0, 0, 1, 1])  # fmt: skip


def test_generation_is_deterministic(built):
    options = build_lib.make_options("synthetic", OPTIONS)
    first, again = next(synthetic.generate(options, "val")), next(synthetic.generate(options, "val"))
    stored = {e["id"]: e for e in (data.load("synthetic", "val", built)[i] for i in range(4))}[first["id"]]
    for key in ("image", "kp2d", "visible", "object_mask"):
        np.testing.assert_array_equal(first[key], again[key])
        np.testing.assert_array_equal(first[key], stored[key])
    assert first["azimuth"] == stored["azimuth"]
