"""Writes generated photographs as a PASCAL3D+ release1.1 tree and an OccludedPASCAL3D+ tree.

``write_validation_tree(out, TreeOptions(...))`` writes, under ``out``:

  PASCAL3D+_release1.1/
    Images/{cat}_imagenet/{name}.JPEG        generated photographs (:mod:`.renderer`)
    Annotations/{cat}_imagenet/{name}.mat    ``record.objects``: class, viewpoint (azimuth,
                                             elevation, theta DEGREES, distance, focal 1, px, py
                                             MATLAB 1-based, viewport 3000), bbox (1-based x1 y1
                                             x2 y2 of the object's visible pixels), cad_index,
                                             truncated, occluded (0), difficult (0)
    CAD/{cat}/NN.off                         the procedural sub-types (:mod:`.categories`)
    Image_sets/{cat}_imagenet_{train,val}.txt
  OccludedPASCAL3D+/                         the val images with occluders of one family
    images/{cat}FGL{l}_BGL{l}/{name}.JPEG
    annotations/{cat}FGL{l}_BGL{l}/{name}.npz   source, occluder_mask, mask, box, occluder_box,
                                                category, occluder_level
    lists/{cat}FGL{l}_BGL{l}.txt
  validation_tree.json                       what was asked for and what was written

The formats are :mod:`nemo_jax.data.fixtures`' (the builders ``pascal3d`` and ``occluded_pascal3d``
read the tree as a release). The same options give the same bytes on the same machine (the output
manifest of :mod:`nemo_jax.output` aside, which records modification times): every image draws from
its own generator seeded by ``(seed, category, split, index)``, the occluded levels by ``(seed,
category, index, level)``, and the annotation files carry no time stamps. The CAD models do not
depend on the seed (as a release's CAD folder does not). ``out`` is written as every tool's output
folder is (:func:`nemo_jax.output.output_folder`): a folder holding files this writer did not write
is refused before any work, and the tree appears only once complete.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time

import numpy as np
from PIL import Image

from nemo_jax import output
from nemo_jax.data import fixtures, occlusion
from nemo_jax.data.pascal3d import OCCLUDED_ROOT, PASCAL_CATEGORIES, PASCAL_ROOT
from nemo_jax.data.scenes import categories, renderer, sprites, views
from nemo_jax.mesh import save_off

#: The tree's own record: options, counts of written images, measured occluded shares.
RECORD = "validation_tree.json"
#: The tool name in the output manifest and in refusals.
TOOL = "write-validation-tree"
#: ImageNet synset of each category: the image names' prefix, as in the release.
SYNSETS = {
    "aeroplane": "n02691156", "bicycle": "n02834778", "boat": "n02858304", "bottle": "n02876657",
    "bus": "n02924116", "car": "n02958343", "chair": "n03001627", "diningtable": "n03201208",
    "motorbike": "n03790512", "sofa": "n04256520", "train": "n04468005", "tvmonitor": "n03211117",
}  # fmt: skip
_SPLITS = ("train", "val")
_OCCLUSION_STREAM = 2  # the generator stream of the occluded levels (splits use 0 and 1)
_SPRITE_STREAM = 3


@dataclasses.dataclass(frozen=True)
class TreeOptions:
    """What :func:`write_validation_tree` writes.

    Attributes:
      categories: PASCAL3D+ category names.
      train_per_category, val_per_category: clean images per category and split.
      seed: the tree's seed (use one that no test set uses).
      occluders: occluder family of the occluded levels (:data:`nemo_jax.data.occlusion.FAMILIES`).
      levels: occlusion levels written (1, 2, 3: FGL{l}_BGL{l}).
      sprites: size of the ``objects`` family's sprite bank.
    """

    categories: tuple[str, ...] = ("car",)
    train_per_category: int = 200
    val_per_category: int = 100
    seed: int = 0
    occluders: str = "objects"
    levels: tuple[int, ...] = (1, 2, 3)
    sprites: int = 96

    def __post_init__(self):
        if not self.categories:
            raise ValueError("TreeOptions.categories: empty")
        for c in self.categories:
            if c not in PASCAL_CATEGORIES:
                raise ValueError(
                    f"TreeOptions.categories: unknown {c!r}; known: {', '.join(PASCAL_CATEGORIES)}"
                )
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"TreeOptions.categories: repeated names in {self.categories}")
        for name in ("train_per_category", "val_per_category"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"TreeOptions.{name}: must be >= 0, got {getattr(self, name)}")
        if self.occluders not in occlusion.FAMILIES:
            raise ValueError(
                f"TreeOptions.occluders: {self.occluders!r} unknown; known: {occlusion.FAMILIES}"
            )
        if not set(self.levels) <= {1, 2, 3}:
            raise ValueError(f"TreeOptions.levels: must be among 1, 2, 3, got {self.levels}")
        if self.occluders == "objects" and int(self.sprites) < 1:
            raise ValueError(f"TreeOptions.sprites: must be >= 1 for the objects family, got {self.sprites}")


def image_name(category: str, split: str, seed: int, index: int) -> str:
    """The file stem of one generated image: synset, seed, split, index."""
    return f"{SYNSETS[category]}_s{seed}_{split}_{index:05d}"


def _annotation_view(view: views.SceneView) -> dict:
    """The annotation's viewpoint: DEGREES, MATLAB 1-based principal point."""
    return {
        "azimuth": view.azimuth, "elevation": view.elevation, "theta": view.theta, "distance": view.distance,
        "focal": views.FOCAL, "px": view.px + 1.0, "py": view.py + 1.0, "viewport": views.VIEWPORT,
    }  # fmt: skip


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def _occluded_levels(out, options, family, category, ci, index, name, jpeg, mask, stats) -> None:
    """Writes the occluded versions of one val image (the clean JPEG as the release pastes onto)."""
    clean = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    ys, xs = np.nonzero(mask)
    box = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1, *mask.shape)
    source = f"{PASCAL_ROOT}/Images/{category}_imagenet/{name}.JPEG"
    for level in options.levels:
        rng = np.random.default_rng([options.seed, ci, _OCCLUSION_STREAM, index, level])
        result = None
        for _ in range(3):  # a draw that misses its ranges is retried with the generator's next draws
            try:
                result = occlusion.occlude_to_level(clean, mask, level, family, rng)
                break
            except RuntimeError:
                continue
        folder = f"{category}FGL{level}_BGL{level}"
        if result is None:  # the release, too, leaves out images whose levels were not reached
            stats["skipped"][folder] = stats["skipped"].get(folder, 0) + 1
            continue
        _write_bytes(os.path.join(out, OCCLUDED_ROOT, "images", folder, name + ".JPEG"),
                     renderer.encode_jpeg(result.image, rng))  # fmt: skip
        fixtures.write_occluded_annotation(
            os.path.join(out, OCCLUDED_ROOT, "annotations", folder, name + ".npz"), source, category, level,
            result.occluder_mask, mask, box, result.boxes,
        )  # fmt: skip
        stats["lists"].setdefault(folder, []).append(name)
        stats["ratios"].setdefault(folder, []).append(result.ratio)


def _write_category(out, options, family, category, stats, progress) -> None:
    ci = PASCAL_CATEGORIES.index(category)
    root = os.path.join(out, PASCAL_ROOT)
    models = categories.cad_models(category)
    for k, model in enumerate(models):
        save_off(os.path.join(root, "CAD", category, f"{k + 1:02d}.off"), model.vertices, model.faces)
    for split_id, split in enumerate(_SPLITS):
        count = options.train_per_category if split == "train" else options.val_per_category
        names = []
        start_time = time.time()
        for start in range(0, count, renderer.RENDER_BATCH):
            idx = list(range(start, min(count, start + renderer.RENDER_BATCH)))
            rngs = [np.random.default_rng([options.seed, ci, split_id, i]) for i in idx]
            cads = [int(r.integers(len(models))) for r in rngs]
            scene_views = [views.sample_view(r, models[c]) for r, c in zip(rngs, cads, strict=True)]
            rasters = renderer.rasterize(
                [models[c] for c in cads], scene_views, [models[c].on_ground for c in cads]
            )
            for i, rng, cad, view, raster in zip(idx, rngs, cads, scene_views, rasters, strict=True):
                image, mask = renderer.photograph(models[cad], view, raster, rng)
                if not mask.any():
                    raise RuntimeError(
                        f"write_validation_tree: {category} {split} {i}: the object left the image"
                    )
                name = image_name(category, split, options.seed, i)
                ys, xs = np.nonzero(mask)
                bbox = [xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1]
                touches = (
                    xs.min() == 0
                    or ys.min() == 0
                    or xs.max() == view.width - 1
                    or ys.max() == view.height - 1
                )
                obj = fixtures.make_object(
                    category, _annotation_view(view), bbox, cad + 1, truncated=int(touches)
                )
                annotation = os.path.join(root, "Annotations", f"{category}_imagenet", name + ".mat")
                fixtures.write_record(annotation, name, [obj], (view.height, view.width), fixed_header=True)
                jpeg = renderer.encode_jpeg(image, rng)
                _write_bytes(os.path.join(root, "Images", f"{category}_imagenet", name + ".JPEG"), jpeg)
                names.append(name)
                if split == "val" and options.levels:
                    _occluded_levels(out, options, family, category, ci, i, name, jpeg, mask, stats)
        with open(os.path.join(root, "Image_sets", f"{category}_imagenet_{split}.txt"), "w") as fh:
            fh.write("".join(n + "\n" for n in names))
        stats["counts"][f"{category}/{split}"] = len(names)
        if progress:
            progress(f"{category} {split}: {len(names)} images in {time.time() - start_time:.1f} s")
    for level in options.levels:
        folder = f"{category}FGL{level}_BGL{level}"
        names = stats["lists"].get(folder, [])
        with open(os.path.join(out, OCCLUDED_ROOT, "lists", folder + ".txt"), "w") as fh:
            fh.write("".join(n + ".JPEG\n" for n in names))  # the release lists file names
        stats["counts"][folder] = len(names)


def _write_tree(out: str, options: TreeOptions, progress) -> dict:
    for category in options.categories:
        root = os.path.join(out, PASCAL_ROOT)
        for sub in (
            f"Images/{category}_imagenet",
            f"Annotations/{category}_imagenet",
            f"CAD/{category}",
            "Image_sets",
        ):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        for level in options.levels:
            for sub in ("images", "annotations"):
                os.makedirs(
                    os.path.join(out, OCCLUDED_ROOT, sub, f"{category}FGL{level}_BGL{level}"), exist_ok=True
                )
        os.makedirs(os.path.join(out, OCCLUDED_ROOT, "lists"), exist_ok=True)
    bank = ()
    if options.occluders == "objects" and options.levels and options.val_per_category:
        bank = sprites.object_sprites(np.random.default_rng([options.seed, _SPRITE_STREAM]), options.sprites)
    stats = {"counts": {}, "skipped": {}, "lists": {}, "ratios": {}}
    for category in options.categories:
        family = None
        if options.levels and options.val_per_category:
            family = occlusion.make_family(
                options.occluders, sprites=[s for s in bank if s.category != category]
            )
        _write_category(out, options, family, category, stats, progress)
    ratios = {k: [float(np.min(v)), float(np.mean(v)), float(np.max(v))] for k, v in stats["ratios"].items()}
    summary = {"counts": stats["counts"], "skipped": stats["skipped"], "ratios": ratios}
    record = {"writer": f"nemo_jax.data.scenes ({TOOL})", "options": dataclasses.asdict(options), **summary}
    with open(os.path.join(out, RECORD), "w") as fh:
        json.dump(record, fh, indent=1, sort_keys=True)
        fh.write("\n")
    return summary


def write_validation_tree(out: str, options: TreeOptions, progress=None, flag: str = "--out") -> dict:
    """Writes the trees described in the module docstring under ``out``.

    ``out`` may be new, empty, or hold only an earlier tree of this writer (it is replaced); a
    folder holding anything else is refused with a ``ValueError`` naming ``flag`` and the files,
    before any work (:func:`nemo_jax.output.check_output_folder`). ``progress``: optional callable
    taking one line of text.

    Returns ``{"counts": {"car/train": 200, "carFGL1_BGL1": 100, ...}, "skipped": {folder: n},
    "ratios": {folder: [min, mean, max]}}`` (the measured occluded share of the object per level;
    ``skipped``: val images whose level was not reached, left out of that level as the release
    leaves such images out).
    """
    if not out:
        raise ValueError(f"{flag}: no folder given")
    with output.output_folder(out, TOOL, flag) as scratch:
        return _write_tree(scratch, options, progress)
