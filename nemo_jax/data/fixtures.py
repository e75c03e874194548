"""Writers of small dataset trees in the exact on-disk formats of the real releases: the test
suite's fixtures, and a tree for users to try the real-data path on (``python tools/write_fixture_tree.py``).

PASCAL3D+ release1.1: ``Images/{cat}_imagenet/*.JPEG``, ``Annotations/{cat}_imagenet/*.mat`` (MATLAB
``record`` struct; ``record.objects`` a struct array with ``class``, ``viewpoint`` (struct: azimuth,
elevation, theta, distance, focal, px, py, viewport), ``bbox``, ``cad_index``, ``truncated``,
``occluded``, ``difficult``), ``CAD/{cat}/NN.off``, ``Image_sets/{cat}_imagenet_{train,val}.txt``.
OccludedPASCAL3D+: ``images/{cat}FGL{l}_BGL{l}/*.JPEG``, ``annotations/.../*.npz``, ``lists/*.txt``.
ObjectNet3D (:func:`write_objectnet3d_release`): ``Images/{id}.JPEG``, ``Annotations/{id}.mat``,
``CAD/off/{cat}/NN.off`` and ``CAD/cads.mat``, ``Image_sets/{train,val,test}.txt``.

Images are white silhouettes of the (convex) CAD model projected with ``project_pascal3d`` at the annotated
viewpoint on a black background, so tests can check that crops keep the object where the viewpoint says.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import scipy.io
import scipy.spatial
import trimesh
from PIL import Image, ImageDraw

from nemo_jax.data.images import read_image
from nemo_jax.geometry import project_pascal3d
from nemo_jax.mesh import save_off

IMAGE_SIZE = (120, 160)  # (H, W) of the full fixture images
OBJECT_FIELDS = ("class", "viewpoint", "bbox", "cad_index", "truncated", "occluded", "difficult")


def cad_mesh(category: str) -> tuple[np.ndarray, np.ndarray]:
    """A small closed CAD model (a box elongated along y for cars, else a cube-ish box)."""
    extents = (0.45, 1.0, 0.35) if category == "car" else (0.6, 0.6, 0.8)
    mesh = trimesh.creation.box(extents=extents).subdivide()
    return np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32)


def silhouette(vertices, view: dict, size=IMAGE_SIZE, one_based: bool = True) -> np.ndarray:
    """``[H, W]`` bool silhouette of a CONVEX CAD model: the convex hull of ``project_pascal3d`` of
    its vertices, filled with PIL (pixel centres at integer coordinates). ``view``: DEGREES; its
    ``px, py`` are MATLAB 1-based if ``one_based`` (annotations), else 0-based (crops)."""
    shift = 1.0 if one_based else 0.0
    uv = np.asarray(
        project_pascal3d(
            jnp.asarray(vertices, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32),
            view["azimuth"], view["elevation"], view["theta"], view["distance"],
            view["px"] - shift, view["py"] - shift, view["focal"], view["viewport"],
        )
    )  # fmt: skip
    hull = uv[scipy.spatial.ConvexHull(uv).vertices]
    canvas = Image.new("L", (size[1], size[0]), 0)
    # PIL polygon coordinates put pixel j's centre at j + 0.5.
    ImageDraw.Draw(canvas).polygon([(float(x) + 0.5, float(y) + 0.5) for x, y in hull], fill=255)
    return np.asarray(canvas) > 127


def random_view(rng: np.random.Generator, size=IMAGE_SIZE) -> dict:
    """An annotation viewpoint: angles in DEGREES, MATLAB 1-based principal point near the centre."""
    h, w = size
    return {
        "azimuth": float(rng.uniform(0, 360)),
        "elevation": float(rng.uniform(-5, 30)),
        "theta": float(rng.uniform(-10, 10)),
        "distance": float(rng.uniform(35, 45)),
        "focal": 1.0,
        "px": float(w / 2 + rng.uniform(-10, 10) + 1),
        "py": float(h / 2 + rng.uniform(-8, 8) + 1),
        "viewport": 3000.0,
    }


def _objects(objects: list[dict]) -> np.ndarray:
    """A MATLAB struct array (1 x N) of objects, as savemat writes it."""
    arr = np.empty((1, len(objects)), dtype=[(f, "O") for f in OBJECT_FIELDS])
    for i, obj in enumerate(objects):
        for f in OBJECT_FIELDS:
            arr[0, i][f] = obj[f]
    return arr


#: The fixed MAT-file header text of :func:`write_record` with ``fixed_header`` (scipy writes the
#: time of writing there, so two writes of one record would differ).
MAT_HEADER = b"MATLAB 5.0 MAT-file, written by nemo_jax"


def write_record(
    path: str, image_name: str, objects: list[dict], size=IMAGE_SIZE, fixed_header=False
) -> None:
    """Writes a PASCAL3D+ annotation .mat with a ``record`` struct. ``fixed_header``: the file's
    116-byte header text is :data:`MAT_HEADER` instead of scipy's, which holds the time of writing,
    so the same record gives the same bytes."""
    record = {
        "filename": image_name + ".JPEG",
        "folder": os.path.basename(os.path.dirname(path)),
        "size": {"width": size[1], "height": size[0], "depth": 3},
        "imgname": image_name + ".JPEG",
        "objects": _objects(objects),
    }
    if not fixed_header:
        scipy.io.savemat(path, {"record": record})
        return
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"record": record})
    data = bytearray(buf.getvalue())
    data[:116] = MAT_HEADER.ljust(116, b" ")
    with open(path, "wb") as fh:
        fh.write(bytes(data))


def make_object(
    category: str, view: dict, bbox, cad_index: int = 1, truncated=0, occluded=0, difficult=0
) -> dict:
    return {
        "class": category,
        "viewpoint": {k: np.float64(v) for k, v in view.items()},
        "bbox": np.asarray(bbox, np.float64),
        "cad_index": np.float64(cad_index),
        "truncated": np.float64(truncated),
        "occluded": np.float64(occluded),
        "difficult": np.float64(difficult),
    }


def save_npz(path: str, **arrays) -> None:
    """``numpy.savez_compressed`` with fixed member dates and no pickled objects: the same arrays
    give the same bytes (numpy stamps each member with the time of writing). Compressed, because
    the occluded releases' masks are mostly zeros (375 KB -> a few KB per image)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED  # a ZipInfo of its own is stored, not deflated
            zf.writestr(info, buf.getvalue(), compresslevel=6)


def write_occluded_annotation(
    path: str, source: str, category: str, level: int, occluder_mask, object_mask, box, occluder_boxes
) -> None:
    """Writes one OccludedPASCAL3D+ annotation ``.npz`` (the release's per-image fields): ``source``
    (the clean image's path), ``occluder_mask`` and ``mask`` (the object's) ``[H, W]`` bool, ``box``
    ``(y0, y1, x0, x1, H, W)`` of the object, ``occluder_box`` ``[K, 6]`` one such row per occluder,
    ``category`` and ``occluder_level``. Deterministic bytes (:func:`save_npz`)."""
    save_npz(
        path,
        source=np.str_(source),
        occluder_mask=np.asarray(occluder_mask, bool),
        mask=np.asarray(object_mask, bool),
        box=np.asarray(box, np.int64),
        occluder_box=np.asarray(occluder_boxes, np.int64).reshape(-1, 6),
        category=np.str_(category),
        occluder_level=np.int64(level),
    )


def write_pascal3d(
    manual_dir: str, categories=("car",), per_split=(3, 2), seed=0, bad=(), distances=()
) -> dict:
    """Writes ``manual_dir/PASCAL3D+_release1.1`` with ``per_split = (train, val)`` good images per
    category plus the bad cases named in ``bad``: 'no_annotation', 'zero_box', 'zero_distance',
    'other_class' (each one extra train image, skipped by the builder). ``distances``: annotation
    distances the good images cycle through (default: random in [35, 45]).

    Returns ``{image name: annotation viewpoint}`` of the good images.
    """
    rng = np.random.default_rng(seed)
    root = os.path.join(manual_dir, "PASCAL3D+_release1.1")
    views = {}
    for cat in categories:
        for sub in (f"Images/{cat}_imagenet", f"Annotations/{cat}_imagenet", f"CAD/{cat}", "Image_sets"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        vertices, faces = cad_mesh(cat)
        save_off(os.path.join(root, "CAD", cat, "01.off"), vertices, faces)
        lists = {"train": [], "val": []}
        for split, count in zip(("train", "val"), per_split, strict=True):
            for i in range(count):
                name = f"n0000_{cat}_{split}_{i:03d}"
                view = random_view(rng)
                if distances:
                    view["distance"] = float(distances[len(views) % len(distances)])
                mask = silhouette(vertices, view)
                ys, xs = np.nonzero(mask)
                bbox = [xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1]
                other = make_object("person" if cat != "person" else "dog", random_view(rng), bbox)
                objects = [other, make_object(cat, view, bbox)] if i == 0 else [make_object(cat, view, bbox)]
                write_record(
                    os.path.join(root, "Annotations", f"{cat}_imagenet", name + ".mat"), name, objects
                )
                img = np.where(mask[..., None], 230, 20).astype(np.uint8).repeat(3, -1)
                Image.fromarray(img).save(
                    os.path.join(root, "Images", f"{cat}_imagenet", name + ".JPEG"), quality=95
                )
                lists[split].append(name)
                views[name] = view
        for case in bad:
            name = f"n0000_{cat}_bad_{case}"
            view = random_view(rng)
            bbox = [10, 10, 50, 40]
            if case == "zero_box":
                bbox = [30, 10, 30, 40]
            if case == "zero_distance":
                view["distance"] = 0.0
            obj = make_object("person" if case == "other_class" else cat, view, bbox)
            if case != "no_annotation":
                write_record(os.path.join(root, "Annotations", f"{cat}_imagenet", name + ".mat"), name, [obj])
            Image.fromarray(np.zeros((*IMAGE_SIZE, 3), np.uint8)).save(
                os.path.join(root, "Images", f"{cat}_imagenet", name + ".JPEG")
            )
            lists["train"].append(name)
        for split, names in lists.items():
            with open(os.path.join(root, "Image_sets", f"{cat}_imagenet_{split}.txt"), "w") as fh:
                fh.write("".join(f"{n} 1\n" for n in names))
    return views


def write_occluded(manual_dir: str, views: dict, category: str = "car", levels=(1, 2, 3), seed=0) -> None:
    """Writes ``manual_dir/OccludedPASCAL3D+`` for the clean images in ``views`` (names of ``category``):
    a vertical occluder bar over part of each image, ``.npz`` annotations and lists."""
    rng = np.random.default_rng(seed)
    root = os.path.join(manual_dir, "OccludedPASCAL3D+")
    src = os.path.join(manual_dir, "PASCAL3D+_release1.1", "Images", f"{category}_imagenet")
    h, w = IMAGE_SIZE
    for level in levels:
        folder = f"{category}FGL{level}_BGL{level}"
        for sub in ("images", "annotations"):
            os.makedirs(os.path.join(root, sub, folder), exist_ok=True)
        os.makedirs(os.path.join(root, "lists"), exist_ok=True)
        names = [n for n in views if f"_{category}_" in n]
        for name in names:
            image = read_image(os.path.join(src, name + ".JPEG"), orientation="refuse")
            occ = np.zeros((h, w), bool)
            x = int(rng.integers(w // 2 - 15, w // 2 + 5))  # over the object
            occ[:, x : x + 10 * level] = True
            image[occ] = (200, 40, 40)
            Image.fromarray(image).save(os.path.join(root, "images", folder, name + ".JPEG"), quality=95)
            np.savez(
                os.path.join(root, "annotations", folder, name + ".npz"),
                source=name + ".JPEG",
                occluder_mask=occ,
                mask=occ,
                box=np.array([0, h, 0, w, h, w]),
                occluder_box=np.array([0, h, x, x + 10 * level]),
            )
        with open(os.path.join(root, "lists", folder + ".txt"), "w") as fh:
            fh.write("".join(n + ".JPEG\n" for n in names))  # the release lists file names


def write_objectnet3d(manual_dir: str, category: str = "bed", per_split=(2, 1), seed=0) -> dict:
    """Writes ``manual_dir/ObjectNet3D`` (Images/, Annotations/*.mat, CAD/off/{cat}/NN.off,
    Image_sets/{train,val}.txt) with one ``category`` object per image; returns the viewpoints."""
    rng = np.random.default_rng(seed)
    root = os.path.join(manual_dir, "ObjectNet3D")
    for sub in ("Images", "Annotations", f"CAD/off/{category}", "Image_sets"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    vertices, faces = cad_mesh(category)
    save_off(os.path.join(root, "CAD", "off", category, "01.off"), vertices, faces)
    views = {}
    for split, count in zip(("train", "val"), per_split, strict=True):
        names = []
        for i in range(count):
            name = f"n{split}_{i:04d}"
            view = random_view(rng)
            mask = silhouette(vertices, view)
            ys, xs = np.nonzero(mask)
            bbox = [xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1]
            write_record(
                os.path.join(root, "Annotations", name + ".mat"), name, [make_object(category, view, bbox)]
            )
            img = np.where(mask[..., None], 230, 20).astype(np.uint8).repeat(3, -1)
            Image.fromarray(img).save(os.path.join(root, "Images", name + ".JPEG"), quality=95)
            names.append(name)
            views[name] = view
        with open(os.path.join(root, "Image_sets", f"{split}.txt"), "w") as fh:
            fh.write("".join(n + "\n" for n in names))
    return views


def _coarse(angle_deg: float) -> float:
    """An angle (DEGREES) on the 15-degree grid of a coarse annotation."""
    return float(round(angle_deg / 15.0) * 15.0)


def _objectnet_object(category: str, view: dict, bbox, coarse_only: bool = False) -> dict:
    """An ObjectNet3D ``record.objects`` entry: its annotation tool writes ``azimuth_coarse`` /
    ``elevation_coarse`` (DEGREES) beside the fine ``azimuth`` / ``elevation``, which may be empty
    (``coarse_only``)."""
    obj = make_object(category, view, bbox)
    vp = obj["viewpoint"]
    vp["azimuth_coarse"] = np.float64(_coarse(view["azimuth"]) % 360.0)
    vp["elevation_coarse"] = np.float64(_coarse(view["elevation"]))
    if coarse_only:
        vp["azimuth"] = vp["elevation"] = np.zeros((0, 0))
    return obj


def _write_objectnet_record(path: str, image_name: str, objects: list[dict], size=IMAGE_SIZE) -> None:
    """An ObjectNet3D annotation .mat: ``record`` with ``filename``, ``imgsize`` ([width, height,
    depth], as its toolbox reads it) and ``objects``."""
    record = {
        "filename": image_name + ".JPEG",
        "imgsize": np.array([size[1], size[0], 3], np.float64),
        "objects": _objects(objects),
    }
    scipy.io.savemat(path, {"record": record})


def write_objectnet3d_release(
    manual_dir: str, categories=("bed", "cabinet"), per_split=(3, 2), seed=0, nemo_lists: bool = False
) -> dict:
    """Writes ``manual_dir/ObjectNet3D`` in the release's layout (as its toolbox,
    github yuxng/ObjectNet3D_toolbox, and NeMo's refactor, github wufeim/NeMo
    ``data/prepare_objectnet3d.py``, read it):

    * ``Images/{id}.JPEG``; ``Annotations/{id}.mat`` (one ``record`` per image, every object of the
      image in ``record.objects``: ``class``, ``bbox``, ``cad_index``, ``viewpoint``, flags);
    * ``CAD/cads.mat`` (``cads``: one struct array of ``vertices`` / ``faces`` per class, in the
      order of ``class_names``) for every category, and ``CAD/off/{cat}/01.off`` for all but the
      last one (which then reads from ``cads.mat``);
    * ``Image_sets/{train,val,test}.txt``: image ids, one per line (``test`` lists nothing here);
    * ``nemo_lists``: also NeMo's per-category ``lists/{cat}_imagenet_{train,val}.txt`` (the
      refactor's extra download).

    Per category and split, ``per_split = (train, val)`` images whose first object is of the
    category; the first train image of each category has only coarse angles, the second a
    viewport of 2000 (the toolbox's default) instead of 3000. Plus, per category, one train image
    whose FIRST object is a ``chair`` and second one of the category: NeMo leaves it out.

    Returns ``{image id: {"category", "view" (the annotated viewpoint, angles DEGREES; on the
    coarse-only image the coarse angles), "first" (whether the category's object comes first)}}``.
    """
    rng = np.random.default_rng(seed)
    root = os.path.join(manual_dir, "ObjectNet3D")
    for sub in ("Images", "Annotations", "CAD/off", "Image_sets"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    cad_cells = np.empty(len(categories), dtype=object)  # a cell array of struct arrays
    for i, cat in enumerate(categories):
        vertices, faces = cad_mesh(cat)
        cad_cells[i] = _struct_array({"vertices": vertices.astype(np.float64), "faces": faces + 1.0})
        if i < len(categories) - 1:
            os.makedirs(os.path.join(root, "CAD", "off", cat), exist_ok=True)
            save_off(os.path.join(root, "CAD", "off", cat, "01.off"), vertices, faces)
    scipy.io.savemat(
        os.path.join(root, "CAD", "cads.mat"),
        {"cads": cad_cells, "class_names": np.array(list(categories), dtype=object)},
    )
    lists = {split: [] for split in ("train", "val", "test")}
    per_category = {(cat, split): [] for cat in categories for split in ("train", "val")}
    truth = {}
    for cat in categories:
        vertices, _ = cad_mesh(cat)
        for split, count in zip(("train", "val"), per_split, strict=True):
            for i in range(count + (split == "train")):
                name = f"n0{zlib.crc32(cat.encode()) % 10_000_000:07d}_{split}_{i:03d}"  # ImageNet-like ids
                view = random_view(rng)
                coarse_only = split == "train" and i == 0
                if coarse_only:  # the object drawn at the coarse angles, the only ones annotated
                    view["azimuth"] = _coarse(view["azimuth"]) % 360.0
                    view["elevation"] = _coarse(view["elevation"])
                if split == "train" and i == 1:
                    view["viewport"] = 2000.0
                first = not (split == "train" and i == count)  # the extra image: a chair comes first
                mask = silhouette(vertices, view)
                ys, xs = np.nonzero(mask)
                bbox = [xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1]
                obj = _objectnet_object(cat, view, bbox, coarse_only)
                objects = [obj] if first else [_objectnet_object("chair", random_view(rng), bbox), obj]
                if first and i == 0:  # a second, other-class object after the first is harmless
                    objects.append(_objectnet_object("sofa", random_view(rng), [5, 5, 40, 30]))
                _write_objectnet_record(os.path.join(root, "Annotations", name + ".mat"), name, objects)
                img = np.where(mask[..., None], 230, 20).astype(np.uint8).repeat(3, -1)
                Image.fromarray(img).save(os.path.join(root, "Images", name + ".JPEG"), quality=95)
                lists[split].append(name)
                per_category[(cat, split)].append(name)
                truth[name] = {"category": cat, "view": view, "first": first}
    for split, names in lists.items():
        with open(os.path.join(root, "Image_sets", f"{split}.txt"), "w") as fh:
            fh.write("".join(n + "\n" for n in names))
    if nemo_lists:
        os.makedirs(os.path.join(root, "lists"), exist_ok=True)
        for (cat, split), names in per_category.items():
            with open(os.path.join(root, "lists", f"{cat}_imagenet_{split}.txt"), "w") as fh:
                fh.write("".join(n + "\n" for n in names))
    return truth


def _struct_array(fields: dict) -> np.ndarray:
    """A 1 x 1 MATLAB struct array of ``fields``, as savemat writes it."""
    arr = np.empty((1, 1), dtype=[(f, "O") for f in fields])
    for f, v in fields.items():
        arr[0, 0][f] = v
    return arr
