"""The generated validation trees: procedural CAD models, PASCAL3D+-like views, the release-format
writer read back by the existing builders, occluded levels and the occluder families."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.io
import trimesh
from conftest import run_tool

from nemo_jax import data, output
from nemo_jax.data import fixtures, occlusion, pascal3d
from nemo_jax.data import prepare as build_lib
from nemo_jax.data.scenes import categories, tree, views
from nemo_jax.geometry import project_pascal3d
from nemo_jax.mesh import load_off

CATS = ("car", "bicycle")
OPTIONS = tree.TreeOptions(categories=CATS, train_per_category=3, val_per_category=2, seed=7, sprites=6)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A tiny tree, and the two builders' datasets made from it."""
    out = str(tmp_path_factory.mktemp("tree"))
    summary = tree.write_validation_tree(out, OPTIONS)
    data_dir = str(tmp_path_factory.mktemp("data"))
    options = pascal3d.Pascal3DOptions(manual_dir=out, categories=CATS, neural_vertices=150, shrink=8)
    for name in ("pascal3d", "occluded_pascal3d"):
        build_lib.build(name, data_dir, options, progress=False)
    return out, data_dir, summary


def _annotation(out, category, name):
    path = os.path.join(out, pascal3d.PASCAL_ROOT, "Annotations", f"{category}_imagenet", name + ".mat")
    record = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["record"]
    obj = np.atleast_1d(record.objects)[0]
    view = {k: float(getattr(obj.viewpoint, k)) for k in pascal3d.VIEWPOINT_FIELDS}
    return view, np.asarray(obj.bbox, float), int(obj.cad_index), int(obj.truncated), record


def _names(out, category, split):
    path = os.path.join(out, pascal3d.PASCAL_ROOT, "Image_sets", f"{category}_imagenet_{split}.txt")
    return pascal3d.read_list(path)


def _tree_bytes(root):
    """``{relative path: bytes}`` of every file under ``root`` but the output manifest (it records
    modification times)."""
    files = {}
    for folder, _, names in os.walk(root):
        for n in names:
            path = os.path.join(folder, n)
            if n != output.MANIFEST:
                with open(path, "rb") as fh:
                    files[os.path.relpath(path, root)] = fh.read()
    return files


# ----------------------------------------------------------------------------- CAD models


@pytest.mark.parametrize("category", categories.CATEGORIES)
def test_cad_models_are_closed_outward_and_sized(category):
    models = categories.cad_models(category)
    assert len(models) == len(categories.styles(category)) >= 4
    for model in models:
        mesh = trimesh.Trimesh(model.vertices, model.faces, process=False)
        assert mesh.is_watertight  # every part closed: back-face culling is exact
        assert all(part.volume > 0 for part in mesh.split(only_watertight=False))  # outward winding
        centre = (model.vertices.min(0) + model.vertices.max(0)) / 2
        np.testing.assert_allclose(centre, 0.0, atol=1e-5)
        assert 0.9 * categories.SIZES[category] <= model.extents.max() <= 1.1 * categories.SIZES[category]
        assert len(model.materials) == len(model.groups) == model.face_group.max() + 1
    # sub-types differ in proportions
    extents = np.array([m.extents / m.extents.max() for m in models])
    assert np.ptp(extents, axis=0).max() > 0.05


def test_cad_models_face_front_at_negative_y():
    # the car's headlamps and the bus's windscreen are at the front, which azimuth 0 looks at (-y)
    for category, group in (("car", "lamp_front"), ("bus", "lamp_front"), ("car", "lamp_rear")):
        for model in categories.cad_models(category):
            faces = model.faces[model.face_group == model.groups.index(group)]
            y = model.vertices[faces.ravel(), 1].mean()
            assert (y < -0.3 * model.extents[1]) if group == "lamp_front" else (y > 0.3 * model.extents[1])


def test_unknown_category_is_refused():
    with pytest.raises(ValueError, match="spaceship"):
        categories.styles("spaceship")


# ----------------------------------------------------------------------------- views


def test_view_distributions_are_pascal3d_like():
    rng = np.random.default_rng(0)
    angles = np.array([views.sample_angles(rng) for _ in range(3000)])
    az, el, th = angles.T
    assert np.histogram(az, bins=8, range=(0, 360))[0].min() > 250  # all around
    assert 0.85 < np.mean((el >= -10) & (el <= 40)) < 0.97  # mostly -10..40 degrees
    assert np.abs(th).max() <= 15 and np.std(th) < 6  # small in-plane rotation


def test_sampled_views_place_the_object_inside_the_image():
    model = categories.cad_models("car")[0]
    rng = np.random.default_rng(3)
    points = views.hull_points(model)
    for _ in range(20):
        v = views.sample_view(rng, model, truncation=0.0)
        u0, v0, u1, v1 = views.projected_box(points, v.azimuth, v.elevation, v.theta, v.distance)
        assert -0.5 <= v.px + u0 and v.px + u1 <= v.width - 0.5
        assert -0.5 <= v.py + v0 and v.py + v1 <= v.height - 0.5
        fill = max((u1 - u0) / v.width, (v1 - v0) / v.height)
        assert 0.4 < fill < 1.0


# ----------------------------------------------------------------------------- the written tree


def test_tree_has_the_release_layout(written):
    out, _, summary = written
    for cat in CATS:
        assert len(_names(out, cat, "train")) == 3 and len(_names(out, cat, "val")) == 2
        cads = sorted(os.listdir(os.path.join(out, pascal3d.PASCAL_ROOT, "CAD", cat)))
        assert cads == [f"{k + 1:02d}.off" for k in range(len(categories.styles(cat)))]
        for level in (1, 2, 3):
            folder = f"{cat}FGL{level}_BGL{level}"
            listed = pascal3d.read_list(os.path.join(out, pascal3d.OCCLUDED_ROOT, "lists", folder + ".txt"))
            assert listed == _names(out, cat, "val")
            for sub, ext in (("images", ".JPEG"), ("annotations", ".npz")):
                files = sorted(os.listdir(os.path.join(out, pascal3d.OCCLUDED_ROOT, sub, folder)))
                assert files == sorted(n + ext for n in listed)
    assert summary["counts"]["car/train"] == 3 and not summary["skipped"]
    with open(os.path.join(out, tree.RECORD)) as fh:
        record = json.load(fh)
    assert record["options"]["seed"] == 7 and record["counts"] == summary["counts"]


def test_annotations_agree_with_the_cad_models_and_images(written):
    out, _, _ = written
    for cat in CATS:
        cads = [
            load_off(os.path.join(out, pascal3d.PASCAL_ROOT, "CAD", cat, n))
            for n in sorted(os.listdir(os.path.join(out, pascal3d.PASCAL_ROOT, "CAD", cat)))
        ]
        for split in ("train", "val"):
            for name in _names(out, cat, split):
                view, bbox, cad_index, truncated, record = _annotation(out, cat, name)
                assert record.size.height > 0 and 1 <= cad_index <= len(cads)
                x1, y1, x2, y2 = bbox
                # the CAD origin's projection (the principal point) lies inside the object's box
                assert x1 <= view["px"] <= x2 and y1 <= view["py"] <= y2
                if truncated:
                    continue
                # the box of the annotated object's pixels is the projected CAD model's box
                uv = np.asarray(project_pascal3d(cads[cad_index - 1][0], **view))
                projected = np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
                np.testing.assert_allclose(bbox, projected, atol=2.0)


def test_built_examples_carry_the_written_viewpoints(written):
    out, data_dir, _ = written
    for split in ("train", "val"):
        source = data.load("pascal3d", split, data_dir)
        assert len(source) == (3 if split == "train" else 2) * len(CATS)
        for k in range(len(source)):
            ex = source[k]
            cat, name = str(ex["id"]).split("/")
            view, _, cad_index, truncated, _ = _annotation(out, cat, name)
            got = np.rad2deg([ex["azimuth"], ex["elevation"], ex["theta"]])
            np.testing.assert_allclose(got, [view["azimuth"], view["elevation"], view["theta"]], atol=1e-4)
            assert int(ex["cad_index"]) == cad_index
            if not truncated:  # the crop's principal point is inside the object's box
                x0, y0, x1, y1 = ex["box"]
                assert x0 <= ex["px"] <= x1 and y0 <= ex["py"] <= y1
            assert ex["visible"].any()


def test_occluded_levels_cover_the_object_at_their_ratios(written):
    out, data_dir, _ = written
    for level in (1, 2, 3):
        assert len(data.load("occluded_pascal3d", f"test_l{level}", data_dir)) == 2 * len(CATS)
        for cat in CATS:
            folder = os.path.join(out, pascal3d.OCCLUDED_ROOT, "annotations", f"{cat}FGL{level}_BGL{level}")
            for n in sorted(os.listdir(folder)):
                with np.load(os.path.join(folder, n), allow_pickle=False) as ann:
                    obj, occ = ann["mask"], ann["occluder_mask"]
                    assert str(ann["category"]) == cat and int(ann["occluder_level"]) == level
                    assert os.path.basename(str(ann["source"])) == n.replace(".npz", ".JPEG")
                    boxes = ann["occluder_box"]
                low, high = occlusion.LEVELS[level]
                assert low <= (obj & occ).sum() / obj.sum() < high
                low, high = occlusion.BACKGROUND_LEVELS[level]
                assert low <= (~obj & occ).sum() / (~obj).sum() < high
                assert boxes.shape[1] == 6 and len(boxes) >= 1


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    small = tree.TreeOptions(
        categories=("car",), train_per_category=1, val_per_category=1, seed=3, levels=(2,), sprites=2
    )
    tree.write_validation_tree(str(tmp_path / "a"), small)
    tree.write_validation_tree(str(tmp_path / "b"), small)
    a, b = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert sorted(a) == sorted(b) and all(a[k] == b[k] for k in a)
    other = tree.TreeOptions(**{**small.__dict__, "seed": 4})
    tree.write_validation_tree(str(tmp_path / "a"), other)  # a tree it wrote is replaced
    c = _tree_bytes(tmp_path / "a")
    jpegs = [k for k in c if k.endswith(".JPEG")]
    assert jpegs and not set(jpegs) & set(a)  # names carry the seed
    assert sorted(c[k] for k in jpegs) != sorted(a[k] for k in a if k.endswith(".JPEG"))


def test_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="--out .*did not write .*mine.txt"):
        tree.write_validation_tree(str(tmp_path), OPTIONS)
    assert os.listdir(tmp_path) == ["mine.txt"] and (tmp_path / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("categories", ("spaceship",), "spaceship"),
        ("occluders", "lasers", "lasers"),
        ("levels", (4,), "levels"),
        ("train_per_category", -1, "train_per_category"),
    ],
)
def test_bad_options_are_named(field, value, match):
    with pytest.raises(ValueError, match=match):
        tree.TreeOptions(**{field: value})


# ----------------------------------------------------------------------------- occluder families


def _scene():
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w]
    obj = ((xx - 80) / 45.0) ** 2 + ((yy - 60) / 30.0) ** 2 < 1
    image = np.full((h, w, 3), 90, np.uint8)
    image[obj] = (30, 160, 60)
    return image, obj


def _sprites():
    """Three sprites of four solid colour blocks each (resizing keeps the blocks' colours inside)."""
    rng = np.random.default_rng(0)
    out = []
    for k in range(3):
        mask = np.zeros((40, 60), bool)
        mask[5 + k : 35, 10 : 50 - k] = True
        rgb = np.zeros((40, 60, 3), np.uint8)
        for ys in (slice(0, 20), slice(20, 40)):
            for xs in (slice(0, 30), slice(30, 60)):
                rgb[ys, xs] = rng.integers(0, 255, 3)
        out.append(occlusion.Sprite(rgb=rgb, mask=mask, category="x"))
    return out


@pytest.mark.parametrize("level", (1, 2, 3))
def test_each_family_reaches_each_level(level):
    image, obj = _scene()
    for name in occlusion.FAMILIES:
        family = occlusion.make_family(name, sprites=_sprites())
        result = occlusion.occlude_to_level(image, obj, level, family, np.random.default_rng(level))
        ratio = (result.occluder_mask & obj).sum() / obj.sum()
        assert occlusion.LEVELS[level][0] <= ratio < occlusion.LEVELS[level][1]
        np.testing.assert_allclose(result.ratio, ratio)
        back = (result.occluder_mask & ~obj).sum() / (~obj).sum()
        assert occlusion.BACKGROUND_LEVELS[level][0] <= back < occlusion.BACKGROUND_LEVELS[level][1]
        assert (result.image[~result.occluder_mask] == image[~result.occluder_mask]).all()


def test_families_draw_different_occluders():
    image, obj = _scene()
    masks, images = {}, {}
    for name in occlusion.FAMILIES:
        family = occlusion.make_family(name, sprites=_sprites())
        result = occlusion.occlude_to_level(image, obj, 2, family, np.random.default_rng(5))
        masks[name], images[name] = result.occluder_mask, result.image
    for a in occlusion.FAMILIES:
        for b in occlusion.FAMILIES:
            if a < b:
                assert (masks[a] != masks[b]).mean() > 0.05
    # the objects family pastes the sprites' own pixels: its colours are the sprites'
    sprite_colours = {tuple(c) for s in _sprites() for c in s.rgb[s.mask]}
    pasted = images["objects"][masks["objects"]]
    assert np.mean([tuple(c) in sprite_colours for c in pasted[::7]]) > 0.7


def test_unknown_family_and_empty_sprites_are_refused():
    with pytest.raises(ValueError, match="lasers"):
        occlusion.make_family("lasers")
    with pytest.raises(ValueError, match="sprites"):
        occlusion.make_family("objects")


# ----------------------------------------------------------------------------- deterministic files


def test_fixed_header_records_and_npz_are_byte_stable(tmp_path):
    view = fixtures.random_view(np.random.default_rng(0))
    objects = [fixtures.make_object("car", view, [1, 2, 30, 40], truncated=1)]
    for name in ("a", "b"):
        fixtures.write_record(str(tmp_path / f"{name}.mat"), "img", objects, fixed_header=True)
        fixtures.save_npz(str(tmp_path / f"{name}.npz"), x=np.arange(5), s=np.str_("src"))
    assert (tmp_path / "a.mat").read_bytes() == (tmp_path / "b.mat").read_bytes()
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    record = scipy.io.loadmat(tmp_path / "a.mat", squeeze_me=True, struct_as_record=False)["record"]
    assert float(record.objects.truncated) == 1 and float(record.objects.viewpoint.azimuth) == view["azimuth"]
    with np.load(tmp_path / "a.npz", allow_pickle=False) as npz:
        assert npz["x"].tolist() == [0, 1, 2, 3, 4] and str(npz["s"]) == "src"
    fixtures.save_npz(str(tmp_path / "mask.npz"), mask=np.zeros((375, 500), bool))
    assert os.path.getsize(tmp_path / "mask.npz") < 5000  # deflated: masks are mostly zeros


# ----------------------------------------------------------------------------- the command


@pytest.mark.extended
def test_tool_names_bad_flags_and_refuses_foreign_folders(tmp_path):
    bad = run_tool("write_validation_tree", "--out", tmp_path / "x", "--categories", "spaceship", timeout=300)
    assert bad.returncode == 1 and "spaceship" in bad.stderr.strip().splitlines()[-1]
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "photo.jpg").write_bytes(b"")
    refused = run_tool(
        "write_validation_tree", "--out", tmp_path / "y", "--train_per_category", 1, timeout=300
    )
    assert refused.returncode == 1 and "photo.jpg" in refused.stderr.strip().splitlines()[-1]
    assert os.listdir(tmp_path / "y") == ["photo.jpg"]


@pytest.mark.extended
def test_tool_writes_a_tree_the_builders_read(tmp_path):
    out = tmp_path / "p3d"
    result = run_tool(
        "write_validation_tree",
        "--out",
        out,
        "--categories",
        "chair",
        "--train_per_category",
        2,
        "--val_per_category",
        1,
        "--levels",
        "3",
        "--occluders",
        "blobs",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "chairFGL3_BGL3 1" in result.stdout
    options = pascal3d.Pascal3DOptions(
        manual_dir=str(out), categories=("chair",), neural_vertices=150, shrink=8
    )
    build_lib.build("pascal3d", str(tmp_path / "data"), options, progress=False)
    assert len(data.load("pascal3d", "train", str(tmp_path / "data"))) == 2
