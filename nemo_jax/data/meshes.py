"""Category meshes stored beside a built dataset.

Layout (inside the dataset's version directory, written atomically with the examples)::

    <data_dir>/<dataset>/<version>/meshes/<category>/cad_01.off   CAD models (01, 02, ...), CAD frame
    <data_dir>/<dataset>/<version>/meshes/<category>/neural.off   the SingleCuboid neural mesh

``load_meshes(name, data_dir)`` finds them from the same ``data_dir`` as ``nemo_jax.data.load``.
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from nemo_jax.data.layout import dataset_dir
from nemo_jax.mesh import load_off, save_off


@dataclasses.dataclass(frozen=True)
class CategoryMeshes:
    """Meshes of one category.

    Attributes:
      cad: list of ``(vertices [V_k, 3] float32, faces [F_k, 3] int32)``; ``cad[k - 1]`` is CAD model
        ``k`` (the examples' ``cad_index`` is 1-based as in PASCAL3D+).
      neural_vertices: ``[V, 3]`` float32 SingleCuboid vertices; the examples' ``kp2d``/``visible``
        index these.
      neural_faces: ``[F, 3]`` int32.
    """

    cad: list[tuple[np.ndarray, np.ndarray]]
    neural_vertices: np.ndarray
    neural_faces: np.ndarray


def write_meshes(dataset_dir: str, category: str, cad, neural) -> None:
    """Writes ``cad`` (list of ``(v, f)``) and ``neural`` ``(v, f)`` under ``dataset_dir/meshes/category``."""
    folder = os.path.join(os.fspath(dataset_dir), "meshes", category)
    os.makedirs(folder, exist_ok=True)
    for k, (v, f) in enumerate(cad, start=1):
        save_off(os.path.join(folder, f"cad_{k:02d}.off"), v, f)
    save_off(os.path.join(folder, "neural.off"), *neural)


def load_category(folder: str) -> CategoryMeshes:
    """Reads one ``meshes/<category>`` folder."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such category mesh folder")
    names = sorted(n for n in os.listdir(folder) if re.fullmatch(r"cad_\d+\.off", n))
    if not names:
        raise FileNotFoundError(f"{folder}: no cad_NN.off files")
    cad = [load_off(os.path.join(folder, n)) for n in names]
    nv, nf = load_off(os.path.join(folder, "neural.off"))
    return CategoryMeshes(cad=cad, neural_vertices=nv, neural_faces=nf)


def load_meshes(name: str, data_dir: str, categories=None) -> dict[str, CategoryMeshes]:
    """The meshes of a built dataset: ``{category: CategoryMeshes}`` (all categories by default)."""
    root = os.path.join(dataset_dir(name, data_dir), "meshes")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: the dataset has no meshes folder")
    available = sorted(os.listdir(root))
    categories = available if categories is None else list(categories)
    for c in categories:
        if c not in available:
            raise ValueError(f"{root}: no meshes for category {c!r}; available: {', '.join(available)}")
    return {c: load_category(os.path.join(root, c)) for c in categories}
