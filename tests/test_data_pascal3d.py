"""PASCAL3D+ / OccludedPASCAL3D+ builders on fixture trees written in the real on-disk formats."""

from __future__ import annotations

import os

import data_fixtures as fx
import numpy as np
import pytest
from conftest import run_tool
from PIL import Image

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
            # Visible vertices lie in the object's box (NeMo), which the object fills.
            kp, box = ex["kp2d"][ex["visible"]], ex["box"]
            assert np.all((kp >= box[:2]) & (kp <= box[2:]))
            rows, cols = np.nonzero(observed)
            h, w = observed.shape  # the box may extend past the crop (the crop cuts the object)
            box = np.clip(box, -0.5, [w - 0.5, h - 0.5, w - 0.5, h - 0.5])
            # the object inside its box, the box at most a few pixels larger (the silhouette's thin
            # corners fade below the threshold in the resampled JPEG)
            assert (
                box[0] <= cols.min()
                and cols.max() <= box[2]
                and box[1] <= rows.min()
                and rows.max() <= box[3]
            )
            assert cols.min() - box[0] < 4 and box[2] - cols.max() < 4
            assert rows.min() - box[1] < 4 and box[3] - rows.max() < 4


def test_crop_protocol_of_the_training_set_recrops_new_boxes(built):
    """Unlabeled images: the training set's box statistics map an annotated box to nearly NeMo's
    crop (the distance / 5 scale, the principal point at the crop centre) without the distance."""
    from nemo_jax.data import crop_protocol

    _, data_dir, views, _ = built
    stats = crop_protocol.box_statistics(data.load("pascal3d", "train", data_dir))
    assert stats["image_size"] == [32, 96] and stats["examples"] == 3
    val = data.load("pascal3d", "val", data_dir)
    for i in range(len(val)):
        ex = val[i]
        view = views[ex["id"].split("/")[1]]
        x0, y0, scale, _ = pascal3d.crop_viewpoint(view, "car", _options(""))
        # the annotated bbox (MATLAB 1-based pixel indices) as pixel edges of the full image
        mat = os.path.join(built[0], "PASCAL3D+_release1.1", "Annotations", "car_imagenet")
        obj = pascal3d.first_object(pascal3d.load_record(os.path.join(mat, ex["id"][4:] + ".mat")), "car", "")
        box = np.asarray(obj["bbox"], np.float64) - 1.0 + np.array([-0.5, -0.5, 0.5, 0.5])
        got_scale, got_x0, got_y0 = crop_protocol.crop_for_box(box, (32, 96), stats)
        assert got_scale == pytest.approx(scale, rel=0.2), ex["id"]
        # where the true principal point lands in the new crop: near (W / 2, H / 2)
        px0, py0 = view["px"] - 1.0, view["py"] - 1.0
        assert abs(got_scale * px0 - got_x0 - 48) < 6 and abs(got_scale * py0 - got_y0 - 16) < 6


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


def test_unseen_pose_split(tmp_path):
    """Train and val keep NeMo's seen azimuth bins; L0 (test_l0) holds the val images of UNSEEN
    azimuths, and the evaluation scores L0 there, not on val."""
    from nemo_jax.apps.evaluate import level_source

    manual, data_dir = str(tmp_path / "manual"), str(tmp_path / "data")
    views = fx.write_pascal3d(manual, per_split=(4, 6), seed=3)
    val = {n: bool(data.in_seen_bins(v["azimuth"])) for n, v in views.items() if "_val_" in n}
    assert 0 < sum(val.values()) < len(val)  # the fixture has both kinds
    stats = build_lib.build("pascal3d", data_dir, _options(manual, pose_split="unseen"), progress=False)
    train = data.load("pascal3d", "train", data_dir)
    azimuths = np.rad2deg([train[i]["azimuth"] for i in range(len(train))])
    assert data.in_seen_bins(azimuths).all()
    expected = sum(bool(data.in_seen_bins(v["azimuth"])) for n, v in views.items() if "_train_" in n)
    assert len(train) == expected == stats.written.get("train", 0)
    assert stats.skipped[("train", "azimuth outside the pose split")] == 4 - expected
    l0 = level_source("pascal3d", 0, data_dir)
    assert l0.split == "test_l0"
    ids = sorted(l0[i]["id"].split("/")[1] for i in range(len(l0)))
    assert ids == sorted(n for n, seen in val.items() if not seen)
    assert len(data.load("pascal3d", "val", data_dir)) == sum(val.values())


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


@pytest.mark.extended
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


# NeMo's values as shared/reference/nemo-original.md lists them (Angtian/NeMo: kp_list.top_50_size_dict,
# MeshPoseSolveAll.distance_render), written out here rather than read from the module under test.
NEMO_CROP_SIZES = {
    "car": (256, 672), "aeroplane": (320, 1024), "bicycle": (608, 608), "boat": (480, 1120),
    "bottle": (512, 736), "bus": (320, 800), "chair": (544, 384), "diningtable": (320, 800),
    "motorbike": (512, 512), "sofa": (352, 736), "train": (256, 608), "tvmonitor": (480, 480),
}  # fmt: skip
NEMO_DISTANCE_RENDER = {
    "car": 5.0, "bus": 5.2, "motorbike": 4.5, "bottle": 5.75, "boat": 8.0, "bicycle": 5.2,
    "aeroplane": 7.0, "sofa": 5.4, "tvmonitor": 5.5, "chair": 4.0, "diningtable": 7.0, "train": 3.75,
}  # fmt: skip


def test_nemo_tables_as_the_reference_lists_them():
    assert pascal3d.CROP_SIZES == NEMO_CROP_SIZES
    assert pascal3d.RENDER_DISTANCES == NEMO_DISTANCE_RENDER
    assert set(pascal3d.PASCAL_CATEGORIES) == set(NEMO_CROP_SIZES)
    for category, size in NEMO_CROP_SIZES.items():  # NeMo's sizes are used as they are
        assert pascal3d.Pascal3DOptions().crop_size(category) == size
    # resize_rate = 200 * distance / 1000: every category is rescaled to distance 5.
    view = {"azimuth": 30.0, "elevation": 10.0, "theta": 0.0, "distance": 12.5, "focal": 1.0,
            "px": 101.0, "py": 51.0, "viewport": 3000.0}  # fmt: skip
    for category in NEMO_CROP_SIZES:
        x0, y0, scale, new = pascal3d.crop_viewpoint(view, category, pascal3d.Pascal3DOptions())
        assert scale == pytest.approx(12.5 / 5) and new["distance"] == 5.0, category
        h, w = NEMO_CROP_SIZES[category]  # centred on the (0-based) principal point
        assert abs(new["px"] - w / 2) <= 0.5 and abs(new["py"] - h / 2) <= 0.5
    shrunk = pascal3d.crop_viewpoint(view, "chair", pascal3d.Pascal3DOptions(shrink=4))
    assert shrunk[2] == pytest.approx(12.5 / 20) and shrunk[3]["distance"] == 20.0


def test_nemo_render_distance_in_the_data_camera():
    # NeMo's fov-12 square render of side max(H, W): focal (max(H, W) / 2) / tan(6 deg) px.
    car_focal = 336.0 / np.tan(np.deg2rad(6.0))  # 3196.8 px for 256 x 672
    assert pascal3d.nemo_render_distance("car") == pytest.approx(5.0 * 3000.0 / car_focal)
    assert pascal3d.nemo_render_distance("car") == pytest.approx(4.692, abs=1e-3)
    chair = 4.0 * 3000.0 / (272.0 / np.tan(np.deg2rad(6.0)))
    assert pascal3d.nemo_render_distance("chair") == pytest.approx(chair)
    assert pascal3d.nemo_render_distance("car", (32, 84)) == pytest.approx(8 * 4.692, abs=1e-2)
    with pytest.raises(ValueError, match="bed"):
        pascal3d.nemo_render_distance("bed")


def test_object_rescaled_by_distance_over_5(tmp_path):
    """A fixture object annotated at distance d comes out rescaled by d / 5 (here d / 40: shrink 8).

    The chair: NeMo's distance_render for it is 4, so rescaling to the render distance instead would
    make it 1.25 x too large."""
    manual, data_dir = str(tmp_path / "manual"), str(tmp_path / "data")
    views = fx.write_pascal3d(manual, categories=("chair",), per_split=(2, 1), distances=(30.0, 52.0))
    options = pascal3d.Pascal3DOptions(
        manual_dir=manual, categories=("chair",), neural_vertices=150, shrink=8
    )
    build_lib.build("pascal3d", data_dir, options, progress=False)
    root = os.path.join(manual, "PASCAL3D+_release1.1", "Images", "chair_imagenet")
    seen = set()
    for split in ("train", "val"):
        source = data.load("pascal3d", split, data_dir)
        for i in range(len(source)):
            ex = source[i]
            name = ex["id"].split("/")[1]
            d = views[name]["distance"]
            seen.add(d)
            assert ex["image"].shape[:2] == (96, 64)  # 544 x 384 / 8 = 68 x 48, rounded up to 32
            assert ex["distance"] == np.float32(5.0 * 8)
            full = np.asarray(Image.open(os.path.join(root, name + ".JPEG")).convert("L")) > 127
            crop = ex["image"].mean(-1) > 127
            rows_full, rows_crop = np.nonzero(full.any(1))[0], np.nonzero(crop.any(1))[0]
            assert 0 < rows_full[0] and rows_full[-1] < full.shape[0] - 1  # whole in the image
            assert 0 < rows_crop[0] and rows_crop[-1] < crop.shape[0] - 1  # and in the crop
            extent_full = rows_full[-1] - rows_full[0] + 1
            extent_crop = rows_crop[-1] - rows_crop[0] + 1
            assert extent_crop == pytest.approx(extent_full * d / 40.0, abs=2.0), (name, d)
    assert seen == {30.0, 52.0}


def test_crop_box_excludes_zero_padding():
    """The visibility box is the annotated bbox (1-based, inclusive) within the image, in crop pixels."""
    whole = pascal3d.crop_box({"bbox": [1, 1, 200, 100]}, (100, 200), -50, -20, 1.0)
    np.testing.assert_allclose(whole, [49.5, 19.5, 249.5, 119.5])  # the padding stays outside
    part = pascal3d.crop_box({"bbox": [11, 21, 60, 80]}, (100, 200), 0, 0, 2.0)
    np.testing.assert_allclose(part, [19.0, 39.0, 119.0, 159.0])
    beyond = pascal3d.crop_box({"bbox": [-5, 1, 300, 100]}, (100, 200), 0, 0, 1.0)
    np.testing.assert_allclose(beyond, [-0.5, -0.5, 199.5, 99.5])
    with pytest.raises(pascal3d.Skip, match="bbox outside the image"):
        pascal3d.crop_box({"bbox": [250, 1, 300, 100]}, (100, 200), 0, 0, 1.0)
    points = np.array([[49.0, 50.0], [49.5, 50.0], [249.5, 119.5], [250.0, 60.0]])
    np.testing.assert_array_equal(pascal3d.inside_box(points, whole), [False, True, True, False])


def test_shrunk_crop_sizes_round_up_to_the_backbone_multiple():
    assert pascal3d.Pascal3DOptions(shrink=8).crop_size("car") == (32, 96)
    assert pascal3d.Pascal3DOptions(shrink=4).crop_size("chair") == (160, 96)  # 136 x 96
    assert pascal3d.Pascal3DOptions(shrink=8, crop_multiple=1).crop_size("car") == (32, 84)
    with pytest.raises(ValueError, match="crop_multiple"):
        pascal3d.Pascal3DOptions(crop_multiple=0)


def test_source_values_reads_one_field_without_decoding_images(built):
    _, data_dir, _, _ = built
    src = data.load("pascal3d", "train", data_dir)
    assert src.values("cad_index") == [src[i]["cad_index"] for i in range(len(src))]
    assert src.values("id", [1, 0]) == [src[1]["id"], src[0]["id"]]
    with pytest.raises(ValueError, match="no field 'nope'"):
        src.values("nope")


def test_any_real_format_tree(tmp_path):
    """Release quirks: grayscale and CMYK JPEGs, .jpg files, CAD/{cat}.mat instead of NN.off,
    VOC-style '-1' list entries, objects without a bbox, empty viewpoint fields, records without
    objects: the build keeps what is usable and counts the rest by reason."""
    import scipy.io

    manual, data_dir = str(tmp_path / "manual"), str(tmp_path / "data")
    fx.write_pascal3d(manual, per_split=(4, 1))
    root = os.path.join(manual, "PASCAL3D+_release1.1")
    images = os.path.join(root, "Images", "car_imagenet")
    anns = os.path.join(root, "Annotations", "car_imagenet")
    rgb = Image.open(os.path.join(images, "n0000_car_train_000.JPEG"))
    rgb.convert("L").save(os.path.join(images, "n0000_car_train_000.JPEG"))
    Image.open(os.path.join(images, "n0000_car_train_001.JPEG")).convert("CMYK").save(
        os.path.join(images, "n0000_car_train_001.JPEG")
    )
    os.rename(
        os.path.join(images, "n0000_car_train_002.JPEG"), os.path.join(images, "n0000_car_train_002.jpg")
    )
    # CAD as the release's MATLAB file (1-based faces) instead of NeMo's converted .off files
    vertices, faces = fx.cad_mesh("car")
    cad = np.empty((1, 1), dtype=[("vertices", "O"), ("faces", "O")])
    cad[0, 0]["vertices"], cad[0, 0]["faces"] = vertices.astype(np.float64), (faces + 1).astype(np.float64)
    os.remove(os.path.join(root, "CAD", "car", "01.off"))
    os.rmdir(os.path.join(root, "CAD", "car"))
    scipy.io.savemat(os.path.join(root, "CAD", "car.mat"), {"car": cad})
    # broken annotations
    full = {"azimuth": 10.0, "elevation": 5.0, "theta": 0.0, "distance": 40.0, "focal": 1.0, "px": 20.0,
            "py": 20.0, "viewport": 3000.0}  # fmt: skip
    no_box = {"class": "car", "viewpoint": full}
    scipy.io.savemat(os.path.join(anns, "n_nobox.mat"), {"record": {"objects": [no_box]}})
    view = {k: 1.0 for k in pascal3d.VIEWPOINT_FIELDS}
    view["distance"] = np.zeros((0, 0))  # empty, as in coarse-only annotations
    obj = {"class": "car", "viewpoint": view, "bbox": np.array([1.0, 1, 20, 20])}
    scipy.io.savemat(os.path.join(anns, "n_nodist.mat"), {"record": {"objects": [obj]}})
    scipy.io.savemat(os.path.join(anns, "n_noobj.mat"), {"record": {"filename": "n_noobj.JPEG"}})
    for name in ("n_nobox", "n_nodist", "n_noobj", "n_negative"):
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(os.path.join(images, name + ".JPEG"))
    with open(os.path.join(root, "Image_sets", "car_imagenet_train.txt"), "a") as fh:
        fh.write("n_nobox\nn_nodist\nn_noobj 1\nn_negative -1\n")
    stats = build_lib.build("pascal3d", data_dir, _options(manual), progress=False)
    assert dict(stats.written) == {"train": 4, "val": 1}
    skipped = {reason: n for (split, reason), n in stats.skipped.items()}
    assert skipped == {"objects.bbox missing": 1, "viewpoint.distance missing": 1, "record has no objects": 1}
    np.testing.assert_allclose(data.load_meshes("pascal3d", data_dir)["car"].cad[0][0], vertices, atol=1e-6)
    train = data.load("pascal3d", "train", data_dir)
    assert all(train[i]["image"].shape == (32, 96, 3) for i in range(len(train)))


def test_cpu_recipe_config_matches_the_shrunk_build(built):
    """configs/pascal3d_cpu.py: NeMo's crops shrunk; training needs only data_dir; a build with
    another shrink is refused with the fix in the message."""
    from configs import pascal3d_cpu
    from nemo_jax.train.sources import build_sources

    _, data_dir, _, _ = built  # built with shrink=8
    for category in pascal3d.PASCAL_CATEGORIES:
        c = pascal3d_cpu.get_config(category)
        shrink = int(c.data.shrink)
        assert tuple(c.data.image_size) == pascal3d.Pascal3DOptions(shrink=shrink).crop_size(category)
        assert c.data.distance == 5.0 * shrink and c.data.name == "pascal3d"
        assert c.train.flip_prob == 0 and 1000 <= c.train.steps <= 2500
    config = pascal3d_cpu.get_config("car")
    config.data.data_dir = data_dir
    train, held = build_sources(config, None, None, None)
    assert len(train) == 3 and len(held) == 2 and train[0]["box"].shape == (4,)
    config.data.shrink = 4
    with pytest.raises(ValueError, match="built with shrink=8, config.data.shrink is 4.*shrink=4"):
        build_sources(config, None, None, None)


class _MakesAFile:
    """Pickles to a call that creates ``path``: the payload of a hostile ``.npz`` field."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_occluded_npz_fields_are_never_unpickled(tmp_path):
    """OccludedPASCAL3D+ annotations are read without pickle: a pickled extra field is not run, a
    pickled ``source`` falls back to the file's name, a pickled ``occluder_mask`` is an error."""
    manual, data_dir = str(tmp_path / "manual"), str(tmp_path / "data")
    views = fx.write_pascal3d(manual, per_split=(2, 2))
    fx.write_occluded(manual, views)
    folder = os.path.join(manual, "OccludedPASCAL3D+", "annotations", "carFGL1_BGL1")
    marker = str(tmp_path / "ran")
    name = sorted(os.listdir(folder))[0]
    views_l1 = [n for n in os.listdir(folder)]  # every occluded image builds, the hostile one included
    with np.load(os.path.join(folder, name)) as npz:
        fields = {k: npz[k] for k in npz.files}
    hostile = np.empty(1, object)
    hostile[0] = _MakesAFile(marker)
    np.savez(os.path.join(folder, name), **{**fields, "source": hostile, "extra": hostile})
    build_lib.build("pascal3d", data_dir, _options(manual), progress=False)
    stats = build_lib.build("occluded_pascal3d", data_dir, _options(manual), progress=False)
    assert not os.path.exists(marker)
    built_l1 = len(data.load("occluded_pascal3d", "test_l1", data_dir))
    assert built_l1 == stats.written["test_l1"] == len(views_l1)
    np.savez(os.path.join(folder, name), **{**fields, "occluder_mask": hostile})
    with pytest.raises(ValueError, match=f"{name}: corrupt annotation .*pickled object"):
        build_lib.build("occluded_pascal3d", str(tmp_path / "data2"), _options(manual), progress=False)
    assert not os.path.exists(marker)


def test_image_lists_name_images_with_or_without_their_suffix(tmp_path):
    """OccludedPASCAL3D+'s release lists ``name.JPEG`` (its CreateOccludedDataset.py writes the file
    names), PASCAL3D+'s Image_sets bare names: both give the bare name the annotations are filed under."""
    from nemo_jax.data.pascal3d import read_list

    path = tmp_path / "carFGL1_BGL1.txt"
    path.write_text("n02814533_10003.JPEG\nn02814533_1004\n\nn02814533_77.jpg\nn02814533_10003\n")
    assert read_list(str(path)) == ["n02814533_10003", "n02814533_1004", "n02814533_77"]
