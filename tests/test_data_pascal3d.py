"""PASCAL3D+ / OccludedPASCAL3D+ builders on fixture trees written in the real on-disk formats."""

from __future__ import annotations

import os

import data_fixtures as fx
import numpy as np
import pytest
from conftest import run_tool

from nemo_jax import data
from nemo_jax.data import pascal3d
from nemo_jax.data import prepare as build_lib

BAD = ("no_annotation", "zero_box", "zero_distance", "other_class")


def _options(manual_dir, **kw):
    return pascal3d.Pascal3DOptions(
        manual_dir=manual_dir, categories=("car",), neural_vertices=150, shrink=8, **kw
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    manual = str(tmp_path_factory.mktemp("manual"))
    data_dir = str(tmp_path_factory.mktemp("data"))
    views = fx.write_pascal3d(manual, per_split=(3, 2), bad=BAD)
    fx.write_occluded(manual, views)
    stats = {name: build_lib.build(name, data_dir, _options(manual), progress=False)
             for name in ("pascal3d", "occluded_pascal3d")}  # fmt: skip
    return manual, data_dir, views, stats


def _annotation_view(ex):
    return {
        **dict(
            zip(
                ("azimuth", "elevation", "theta"),
                np.rad2deg([ex["azimuth"], ex["elevation"], ex["theta"]]),
                strict=True,
            )
        ),
        **{k: ex[k] for k in ("distance", "px", "py", "focal", "viewport")},
    }


def test_counts_and_skips(built):
    _, data_dir, _, stats = built
    assert len(data.load("pascal3d", "train", data_dir)) == 3
    assert len(data.load("pascal3d", "val", data_dir)) == 2
    skipped = {reason: n for (split, reason), n in stats["pascal3d"].skipped.items()}
    assert skipped == {"missing annotation .mat": 1, "zero-size bbox": 1, "viewpoint.distance is 0": 1,
                       "no 'car' object": 1}  # fmt: skip
    summary = build_lib.summary("pascal3d", stats["pascal3d"])
    assert "zero-size bbox" in summary and "train" in summary
    for level in (1, 2, 3):
        assert len(data.load("occluded_pascal3d", f"test_l{level}", data_dir)) == 5


def test_viewpoint_round_trip_exact(built):
    _, data_dir, views, _ = built
    for split in ("train", "val"):
        source = data.load("pascal3d", split, data_dir)
        for i in range(len(source)):
            ex = source[i]
            ann = views[ex["id"].split("/")[1]]
            for k in ("azimuth", "elevation", "theta"):
                assert ex[k] == np.float32(np.deg2rad(ann[k])), k
            assert ex["focal"] == np.float32(1.0) and ex["viewport"] == np.float32(3000.0)
            assert ex["distance"] == np.float32(5.0 * 8) and ex["cad_index"] == 1
            h, w = ex["image"].shape[:2]
            assert (h, w) == (32, 96)  # 256 x 672 / 8 = 32 x 84, width rounded up to 96
            assert abs(ex["px"] - w / 2) <= 0.5 and abs(ex["py"] - h / 2) <= 0.5


def test_crop_keeps_projection_on_object(built):
    """The crop's viewpoint projects the CAD model onto the object in the cropped image."""
    _, data_dir, _, _ = built
    vertices, _ = fx.cad_mesh("car")
    meshes = data.load_meshes("pascal3d", data_dir)
    np.testing.assert_allclose(meshes["car"].cad[0][0], vertices, atol=1e-6)
    for split in ("train", "val"):
        source = data.load("pascal3d", split, data_dir)
        for i in range(len(source)):
            ex = source[i]
            predicted = fx.silhouette(vertices, _annotation_view(ex), ex["image"].shape[:2], one_based=False)
            observed = ex["image"].mean(-1) > 127
            iou = (predicted & observed).sum() / (predicted | observed).sum()
            assert iou > 0.9, (ex["id"], iou)
            assert ex["kp2d"].shape == (len(meshes["car"].neural_vertices), 2)
            assert 0.1 < ex["visible"].mean() < 0.9


def test_occluded_join_and_masks(built):
    _, data_dir, _, _ = built
    clean = {
        e["id"]: e
        for s in ("train", "val")
        for e in data.load("pascal3d", s, data_dir).__getitems__(range(3 if s == "train" else 2))
    }
    for level in (1, 2, 3):
        source = data.load("occluded_pascal3d", f"test_l{level}", data_dir)
        for i in range(len(source)):
            ex = source[i]
            base = clean[ex["id"]]
            assert ex["occlusion_level"] == level
            for k in ("azimuth", "elevation", "theta", "distance", "px", "py"):
                assert ex[k] == base[k]
            assert ex["occluder_mask"].shape == ex["image"].shape[:2] and ex["occluder_mask"].any()
            red = (ex["image"][..., 0] > 150) & (ex["image"][..., 1] < 100)
            assert (red == (ex["occluder_mask"] > 0)).mean() > 0.95


def test_bad_input(tmp_path, built):
    manual = built[0]
    with pytest.raises(FileNotFoundError, match="manual_dir does not exist"):
        build_lib.build("pascal3d", str(tmp_path / "d0"), _options(str(tmp_path / "nowhere")), progress=False)
    with pytest.raises(ValueError, match="unknown category 'spaceship'"):
        pascal3d.Pascal3D(options=pascal3d.Pascal3DOptions(manual_dir=manual, categories=("spaceship",)))
    with pytest.raises(FileNotFoundError, match="OccludedPASCAL3D"):
        empty = tmp_path / "m2"
        (empty / "PASCAL3D+_release1.1").mkdir(parents=True)
        build_lib.build("occluded_pascal3d", str(tmp_path / "d1"), _options(str(empty)), progress=False)


def test_corrupt_mat_fails_without_leaving_a_dataset(tmp_path):
    manual = str(tmp_path / "manual")
    fx.write_pascal3d(manual, per_split=(3, 1))
    path = os.path.join(
        manual, "PASCAL3D+_release1.1", "Annotations", "car_imagenet", "n0000_car_train_001.mat"
    )
    with open(path, "wb") as fh:
        fh.write(b"MATLAB 5.0 MAT-file, garbage" + bytes(40))
    data_dir = str(tmp_path / "data")
    with pytest.raises(ValueError, match="n0000_car_train_001.mat: corrupt annotation"):
        build_lib.build("pascal3d", data_dir, _options(manual), progress=False)
    with pytest.raises(FileNotFoundError):
        data.load("pascal3d", "train", data_dir)
    assert not any("incomplete" in n for n in os.listdir(os.path.join(data_dir, "pascal3d")))


def test_unseen_pose_split(tmp_path, built):
    manual, _, views, _ = built
    data_dir = str(tmp_path / "data")
    stats = build_lib.build("pascal3d", data_dir, _options(manual, pose_split="unseen"), progress=False)
    train = data.load("pascal3d", "train", data_dir)
    azimuths = np.rad2deg([train[i]["azimuth"] for i in range(len(train))])
    assert data.in_seen_bins(azimuths).all()
    expected = sum(bool(data.in_seen_bins(v["azimuth"])) for n, v in views.items() if "_train_" in n)
    assert len(train) == expected == stats.written.get("train", 0)
    assert stats.skipped[("train", "azimuth outside the pose split")] == 3 - expected


def test_objectnet3d(tmp_path):
    manual, data_dir = str(tmp_path / "manual"), str(tmp_path / "data")
    views = fx.write_objectnet3d(manual, "bed", per_split=(2, 1))
    options = pascal3d.Pascal3DOptions(  # car's crop size: the jit cache of the other tests is reused
        manual_dir=manual, categories=("bed",), neural_vertices=150, shrink=8, default_crop=(256, 672)
    )
    stats = build_lib.build("objectnet3d", data_dir, options, progress=False)
    assert dict(stats.written) == {"train": 2, "val": 1} and not stats.skipped
    vertices, _ = fx.cad_mesh("bed")
    for split in ("train", "val"):
        source = data.load("objectnet3d", split, data_dir)
        for i in range(len(source)):
            ex = source[i]
            ann = views[ex["id"].split("/")[1]]
            assert ex["azimuth"] == np.float32(np.deg2rad(ann["azimuth"]))
            assert ex["image"].shape == (32, 96, 3)  # default_crop / 8, rounded up to 32
            predicted = fx.silhouette(vertices, _annotation_view(ex), ex["image"].shape[:2], one_based=False)
            observed = ex["image"].mean(-1) > 127
            assert (predicted & observed).sum() / (predicted | observed).sum() > 0.9


def test_synthetic_occlusion_of_val(tmp_path, built):
    """Without the occluded release: val crops with pasted occluders in the level's ratio range."""
    manual, _, views, _ = built
    data_dir = str(tmp_path / "data")
    stats = build_lib.build("pascal3d", data_dir, _options(manual, synthetic_occlusion=True), progress=False)
    assert all(stats.written[f"test_l{k}"] == 2 for k in range(4))
    vertices, _ = fx.cad_mesh("car")
    clean = data.load("pascal3d", "test_l0", data_dir)
    assert data.load("pascal3d", "train", data_dir)[0]["occluder_mask"].sum() == 0
    for level in (0, 1, 2, 3):
        source = data.load("pascal3d", f"test_l{level}", data_dir)
        low, high = data.LEVELS[level]
        for i in range(len(source)):
            ex = source[i]
            # The rendered object mask matches the fixture's silhouette of the CAD model.
            hull = fx.silhouette(vertices, _annotation_view(ex), ex["image"].shape[:2], one_based=False)
            mask = ex["object_mask"] > 0
            assert (hull & mask).sum() / (hull | mask).sum() > 0.9
            ratio = data.occlusion_ratio(ex["object_mask"], ex["occluder_mask"])
            assert (ratio == 0) if level == 0 else (low <= ratio < high)
    assert len(clean) == 2
    with pytest.raises(ValueError, match="synthetic_occlusion is for pascal3d only"):
        pascal3d.OccludedPascal3D(options=_options(manual, synthetic_occlusion=True))


def test_corrupt_files_name_the_file(tmp_path):
    manual = str(tmp_path / "manual")
    fx.write_pascal3d(manual, per_split=(2, 1))
    root = os.path.join(manual, "PASCAL3D+_release1.1")
    image = os.path.join(root, "Images", "car_imagenet", "n0000_car_train_001.JPEG")
    with open(image, "wb") as fh:
        fh.write(b"not a jpeg")
    with pytest.raises(ValueError, match="n0000_car_train_001.JPEG: unreadable image"):
        build_lib.build("pascal3d", str(tmp_path / "d0"), _options(manual), progress=False)
    os.remove(image)
    with pytest.raises(FileNotFoundError, match="n0000_car_train_001.JPEG: missing image"):
        build_lib.build("pascal3d", str(tmp_path / "d1"), _options(manual), progress=False)
    with open(os.path.join(root, "CAD", "car", "01.off"), "w") as fh:
        fh.write("OFF\n3 1 0\n0 0 0\n1 0 0\n")
    with pytest.raises(ValueError, match="01.off"):
        build_lib.build("pascal3d", str(tmp_path / "d2"), _options(manual), progress=False)
    for name in ("d0", "d1", "d2"):
        assert not os.path.exists(tmp_path / name / "pascal3d" / "1.0.0")


def test_tool_reports_errors(tmp_path):
    result = run_tool("build_data", "--dataset", "pascal3d", "--data_dir", tmp_path)  # --manual_dir missing
    assert result.returncode != 0
    assert "--manual_dir is required" in result.stderr
    argv = ["--dataset", "pascal3d", "--data_dir", tmp_path, "--manual_dir", tmp_path / "none"]
    result = run_tool("build_data", *argv, "--no_progress")
    assert result.returncode == 1
    assert "manual_dir does not exist" in result.stderr
    result = run_tool("build_data", *argv, "--categories", "car,spaceship")
    assert result.returncode == 1
    assert "unknown category 'spaceship'" in result.stderr


def test_empty_split_is_a_clear_error(tmp_path):
    manual = str(tmp_path / "manual")
    fx.write_pascal3d(manual, per_split=(2, 0))
    with pytest.raises(ValueError, match="split 'val' has no examples"):
        build_lib.build("pascal3d", str(tmp_path / "data"), _options(manual), progress=False)
    assert os.listdir(tmp_path / "data" / "pascal3d") == []


def test_crop_sizes_round_up_to_the_backbone_multiple():
    # NeMo's sizes are multiples of 32 and stay as they are; shrunk ones are rounded up.
    for category, size in pascal3d.CROP_SIZES.items():
        assert pascal3d.Pascal3DOptions().crop_size(category) == tuple(size)
    assert pascal3d.Pascal3DOptions(shrink=8).crop_size("car") == (32, 96)
    assert pascal3d.Pascal3DOptions(shrink=4).crop_size("chair") == (160, 96)  # 136 x 96
    assert pascal3d.Pascal3DOptions(shrink=8, crop_multiple=1).crop_size("car") == (32, 84)
    with pytest.raises(ValueError, match="crop_multiple"):
        pascal3d.Pascal3DOptions(crop_multiple=0)
