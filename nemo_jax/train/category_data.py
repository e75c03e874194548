"""Config -> meshes and data for ONE backbone trained on several categories at once
(``config.categories``, a non-empty tuple of names; ``configs/synthetic_all.py``,
``configs/nemo_pascal3d_all.py``).

A category is handled as a sub-type with its own mesh (:mod:`nemo_jax.mesh.subtypes`): the
categories' neural meshes are padded to common vertex and face counts and stacked (leading axis
``C`` in ``config.categories`` order), and every example carries ``category_index`` (0-based), which
selects its mesh, memory bank and clutter queue in the train step. Batches mix categories.
Crops of different sizes (PASCAL3D+) are pasted onto one canvas, ``config.data.image_size``
(:mod:`nemo_jax.data.canvas`).
"""

from __future__ import annotations

import numpy as np

from nemo_jax import data
from nemo_jax import mesh as mesh_lib
from nemo_jax.data.canvas import pad_to_canvas
from nemo_jax.mesh.subtypes import SUBTYPE_KINDS
from nemo_jax.train.step import CATEGORY_FIELD


def shared_categories(config) -> tuple[str, ...]:
    """The categories of a shared run (``config.categories``), empty for a one-category run."""
    return tuple(str(c) for c in (config.get("categories", ()) or ()))


def is_shared_config(config) -> bool:
    return bool(shared_categories(config))


def category_index(categories, category: str, where: str) -> int:
    """0-based index of ``category`` in a run's ``categories``; a ValueError naming it and the
    known ones otherwise (``where``: the run, named in the message)."""
    categories = list(categories)
    if category not in categories:
        raise ValueError(f"{where}: category {category!r} is not one of the run's categories {categories}")
    return categories.index(category)


def check_shared_config(config) -> tuple[str, ...]:
    """The categories, checked: no duplicates, and one mesh per category (no sub-type meshes)."""
    cats = shared_categories(config)
    if len(set(cats)) != len(cats):
        raise ValueError(f"config.categories: duplicate names in {list(cats)}")
    if config.mesh.kind in SUBTYPE_KINDS:
        raise ValueError(
            f"config.mesh.kind={config.mesh.kind!r}: per-sub-type meshes are not supported with "
            "config.categories (one mesh per category)"
        )
    return cats


class CategoryExamples:
    """Random-access examples of several categories: the step fields of ``source[i]`` plus
    ``category_index``, the image pasted onto the ``canvas`` (H, W) when its size differs."""

    def __init__(self, parts, fields, canvas):
        """``parts``: ``[(source, indices, category_index)]`` (``None``: read from each example)."""
        self.fields, self.canvas = tuple(fields), tuple(int(v) for v in canvas)
        self.items = [(src, int(i), c) for src, idx, c in parts for i in idx]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        src, j, c = self.items[int(i)]
        ex = src[j]
        c = int(ex[CATEGORY_FIELD]) if c is None else c  # None: the example carries it
        out = {k: np.asarray(ex[k], np.uint8 if k == "image" else np.float32) for k in self.fields}
        if "box" in ex:
            out["box"] = np.asarray(ex["box"], np.float32)
        out = pad_to_canvas(out, self.canvas)
        if "box" not in out:  # same size as the canvas and no box: the whole image
            h, w = out["image"].shape[:2]
            out["box"] = np.array([-0.5, -0.5, w - 0.5, h - 0.5], np.float32)
        out[CATEGORY_FIELD] = np.int32(c)
        return out


class _ListSource:
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[int(i)]


def category_rows(src, split: str, category: str, field: str = "config.category"):
    """``(indices, (H, W))``: the rows of ``category`` in the loaded split ``src`` (read from the
    labels, no image decoded) and its first image's size. Errors name the file, the split and the
    config ``field`` that asked for the category."""
    if category not in src.categories:
        raise ValueError(f"{field}: {category!r} not in {src.path} ({src.categories})")
    idx = src.indices_of(category)
    if not idx:
        raise ValueError(f"{src.path} [{split}]: no examples of category {category!r}")
    return idx, tuple(src[idx[0]]["image"].shape[:2])


def shared_sources(config, meshes: mesh_lib.MeshSet, fields):
    """``(train, eval)`` :class:`CategoryExamples` of every category of ``config.categories``.

    ``meshes``: the stacked category meshes (toy data renders them). ``fields``: the step fields.
    """
    from nemo_jax.train.subtype_data import toy_subtype_dataset  # noqa: PLC0415

    d, cats = config.data, shared_categories(config)
    canvas = tuple(int(s) for s in d.image_size)
    if d.source == "toy":  # rendered as toy sub-types: each category in its own hue
        out = []
        for num, seed in ((int(d.num_train), int(d.seed)), (int(d.num_eval), int(d.seed) + 1)):
            exs = toy_subtype_dataset(meshes, num, canvas, seed, float(d.distance))
            for ex in exs:
                ex[CATEGORY_FIELD] = np.int32(ex.pop("cad_index") - 1)
            out.append(CategoryExamples([(_ListSource(exs), range(num), None)], fields, canvas))
        return tuple(out)
    if d.source != "tfds":
        raise ValueError(f"config.data.source: {d.source!r} is not 'toy' or 'tfds'")
    out = []
    for split in (d.train_split, d.eval_split):
        src = data.load(d.name, split, d.data_dir)
        parts = []
        for c, name in enumerate(cats):
            idx, shape = category_rows(src, split, name, "config.categories")
            if shape[0] > canvas[0] or shape[1] > canvas[1]:
                raise ValueError(
                    f"{src.path} [{split}]: {name!r} images are {shape}, larger than the canvas "
                    f"config.data.image_size {canvas}"
                )
            parts.append((src, idx, c))
        out.append(CategoryExamples(parts, fields, canvas))
    return tuple(out)
