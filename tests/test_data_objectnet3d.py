"""ObjectNet3D as NeMo's experiments use it, built from a fixture tree in the release's on-disk layout:
NeMo's 18 categories and 640 x 800 crops, images counted for the class of their first object, the
coarse angles where the fine ones are empty, and every built example carrying its true viewpoint."""

from __future__ import annotations

import data_fixtures as fx
import numpy as np
import pytest

from nemo_jax import data
from nemo_jax import eval as eval_lib
from nemo_jax.data import pascal3d
from nemo_jax.data import prepare as build_lib

SHRINK = 16  # 640 x 800 / 16 = 40 x 50, rounded up to 64 x 64
CATS = ("bed", "cabinet")


def _options(manual, categories=CATS):
    return pascal3d.Pascal3DOptions(
        manual_dir=manual, categories=categories, neural_vertices=150, shrink=SHRINK
    )


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    manual = str(tmp_path_factory.mktemp("manual"))
    data_dir = str(tmp_path_factory.mktemp("data"))
    truth = fx.write_objectnet3d_release(manual, CATS, per_split=(3, 2))
    stats = build_lib.build("objectnet3d", data_dir, _options(manual), progress=False)
    return manual, data_dir, truth, stats


def test_nemos_category_list_and_crop_size():
    """The refactor's list (wufeim/NeMo nemo/utils/objectnet3d_utils.py), 640 x 800 each."""
    assert pascal3d.OBJECTNET3D_CATEGORIES == (
        "bed", "bookshelf", "calculator", "cellphone", "computer", "cabinet", "guitar", "iron", "knife",
        "microwave", "pen", "pot", "rifle", "slipper", "stove", "toilet", "tub", "wheelchair",
    )  # fmt: skip
    options = pascal3d.Pascal3DOptions()
    assert {options.crop_size(c) for c in pascal3d.OBJECTNET3D_CATEGORIES} == {(640, 800)}
    assert pascal3d.Pascal3DOptions(shrink=8).crop_size("bed") == (96, 128)  # 80 x 100 rounded up to 32
    assert pascal3d.Pascal3DOptions(default_crop=(320, 320)).crop_size("bed") == (320, 320)
    assert options.crop_size("car") == (256, 672)  # PASCAL3D+'s sizes are untouched
    for name in ("door", "shoe", "filing_cabinet"):
        with pytest.raises(ValueError, match=f"unknown category '{name}'"):
            pascal3d.ObjectNet3D(options=pascal3d.Pascal3DOptions(categories=(name,)))


def test_default_crop_option_is_parsed_and_checked():
    assert build_lib.make_options("objectnet3d", {"default_crop": "96,128"}).crop_size("bed") == (96, 128)
    with pytest.raises(ValueError, match="default_crop"):
        pascal3d.Pascal3DOptions(default_crop=(0, 5))
    with pytest.raises(ValueError, match="default_crop"):
        build_lib.make_options("objectnet3d", {"default_crop": "a,b"})


def test_images_go_to_the_class_of_their_first_object(release):
    _, data_dir, truth, stats = release
    assert dict(stats.written) == {"train": 6, "val": 4} and not stats.skipped
    for split in ("train", "val"):
        source = data.load("objectnet3d", split, data_dir)
        assert source.categories == list(CATS)
        ids = sorted(source[i]["id"] for i in range(len(source)))
        expected = sorted(
            f"{t['category']}/{n}" for n, t in truth.items() if f"_{split}_" in n and t["first"]
        )
        assert ids == expected  # the images whose first object is a chair are not there


def test_built_examples_carry_their_true_viewpoints(release):
    """Angles as annotated (the fine ones; the coarse ones where only those exist), the object at
    NeMo's distance 5 (x shrink), the annotation's focal and viewport, and the principal point where
    the image shows the object: the CAD silhouette drawn from the example's own viewpoint covers
    what the crop shows."""
    _, data_dir, truth, _ = release
    seen_coarse = seen_2000 = 0
    for split in ("train", "val"):
        source = data.load("objectnet3d", split, data_dir)
        for i in range(len(source)):
            ex = source[i]
            cat, name = ex["id"].split("/")
            ann = truth[name]["view"]
            assert source.categories[int(ex["category"])] == cat == truth[name]["category"]
            for key in ("azimuth", "elevation", "theta"):
                assert ex[key] == pytest.approx(np.deg2rad(ann[key]), abs=1e-6), key
            assert ex["distance"] == pytest.approx(5.0 * SHRINK)
            assert ex["viewport"] == ann["viewport"] and ex["focal"] == ann["focal"]
            seen_coarse += ann["azimuth"] % 15 == 0
            seen_2000 += ann["viewport"] == 2000
            assert ex["image"].shape == (64, 64, 3)
            vertices, _ = fx.cad_mesh(cat)
            view = {k: float(np.rad2deg(ex[k])) for k in ("azimuth", "elevation", "theta")}
            view.update({k: float(ex[k]) for k in ("distance", "px", "py", "focal", "viewport")})
            predicted = fx.silhouette(vertices, view, ex["image"].shape[:2], one_based=False)
            observed = ex["image"].mean(-1) > 127
            assert (predicted & observed).sum() / (predicted | observed).sum() > 0.9, ex["id"]
            assert ex["visible"].any()
    assert seen_coarse >= len(CATS) and seen_2000 >= len(CATS)


def test_nemo_lists_are_read_and_a_listed_image_of_another_first_class_is_skipped(tmp_path):
    manual, data_dir = str(tmp_path / "manual"), str(tmp_path / "data")
    truth = fx.write_objectnet3d_release(manual, ("bed",), per_split=(3, 2), nemo_lists=True)
    stats = build_lib.build("objectnet3d", data_dir, _options(manual, categories=("bed",)), progress=False)
    assert dict(stats.written) == {"train": 3, "val": 2}
    assert dict(stats.skipped) == {("train", "first object is not a 'bed'"): 1}
    built = {data.load("objectnet3d", "train", data_dir)[i]["id"] for i in range(3)}
    assert built == {f"bed/{n}" for n, t in truth.items() if "_train_" in n and t["first"]}


def test_cad_models_from_cads_mat_match_the_off_files(tmp_path):
    """``CAD/cads.mat`` (the release's one file of every class's models) reads as the OFF files do."""
    manual = str(tmp_path / "manual")
    fx.write_objectnet3d_release(manual, ("bed", "cabinet", "tub"), per_split=(1, 1))
    path = f"{manual}/ObjectNet3D/CAD/cads.mat"
    for cat in ("bed", "cabinet", "tub"):
        (vertices, faces), *rest = pascal3d.load_objectnet_cads(path, cat)
        v, f = fx.cad_mesh(cat)
        assert not rest
        np.testing.assert_allclose(vertices, v, rtol=1e-6)
        np.testing.assert_array_equal(faces, f)
    with pytest.raises(ValueError, match="'class_names' has no 'pen'"):
        pascal3d.load_objectnet_cads(path, "pen")


def test_the_mean_pools_the_categories_images_as_nemos_table():
    """NeMo's "mean" over the ObjectNet3D categories (its refactor's print_3d_pose_estimation: the
    errors of every category's images together) weights each category by its images."""
    errors = {"bed": [0.1, 0.2, 1.0], "cabinet": [0.05, 1.5], "tub": [0.3, 0.4, 0.45, 2.0, 0.1]}
    records = [
        {"id": f"{c}/{i}", "category": c, "level": 0, "pred": {"azimuth": e, "elevation": 0.0, "theta": 0.0},
         "true": {"azimuth": 0.0, "elevation": 0.0, "theta": 0.0}}
        for c, errs in errors.items() for i, e in enumerate(errs)
    ]  # fmt: skip
    mean = eval_lib.evaluate_records(records)["results"]["mean"]["L0"]
    pooled = np.concatenate(list(errors.values()))
    assert mean["n"] == 10
    assert mean["acc_pi6"] == pytest.approx(np.mean(pooled < np.pi / 6))
    assert mean["med_err_deg"] == pytest.approx(np.degrees(np.median(pooled)))
    per_class = np.mean([np.mean(np.array(e) < np.pi / 6) for e in errors.values()])
    assert mean["acc_pi6"] != pytest.approx(per_class)  # not the plain mean of the 3 classes
