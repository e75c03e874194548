"""Config -> per-sub-type meshes and data for training one neural mesh per CAD sub-type
(``config.mesh.kind`` in :data:`nemo_jax.mesh.subtypes.SUBTYPE_KINDS`).

The CAD models come from ``config.mesh.cad_dir`` (``{cad_dir}/{category}/01.off, 02.off, ...``, as
PASCAL3D+'s ``CAD`` folder) or, when that is empty, from the models stored with the built dataset
(:func:`nemo_jax.data.load_meshes`). Sub-type ``s`` (0-based) is ``cad_index = s + 1``.
"""

from __future__ import annotations

import colorsys
import os
import re

import numpy as np

from nemo_jax import mesh as mesh_lib
from nemo_jax.data.toy import toy_dataset, vertex_colours
from nemo_jax.mesh.subtypes import SUBTYPE_KINDS, subtype_geometry


def is_subtype_config(config) -> bool:
    return config.mesh.kind in SUBTYPE_KINDS


def cad_models(config) -> tuple[list, str]:
    """``([(vertices, faces)] in cad_index order, where)`` for ``config.category``."""
    m = config.mesh
    if m.cad_dir:
        folder = os.path.join(m.cad_dir, config.category)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"config.mesh.cad_dir: no folder {folder}")
        names = sorted(n for n in os.listdir(folder) if n.endswith(".off"))
        if not names:
            raise FileNotFoundError(f"config.mesh.cad_dir: no .off files in {folder}")
        expected = [f"{k:02d}.off" for k in range(1, len(names) + 1)]
        if names != expected or not all(re.fullmatch(r"\d+\.off", n) for n in names):
            raise ValueError(
                f"config.mesh.cad_dir: {folder} must hold CAD models 01.off .. {len(names):02d}.off "
                f"(cad_index order), found {names}"
            )
        return [mesh_lib.load_off(os.path.join(folder, n)) for n in names], folder
    from nemo_jax import data  # noqa: PLC0415 (optional layer, only without cad_dir)

    meshes = data.load_meshes(config.data.name, config.data.data_dir, [config.category])
    where = os.path.join(data.dataset_dir(config.data.name, config.data.data_dir), "meshes", config.category)
    return meshes[config.category].cad, where


def build_subtype_meshes(config) -> mesh_lib.MeshSet:
    """The padded sub-type meshes ``config.mesh`` asks for (kind, coverage, target_vertices,
    symmetric)."""
    m = config.mesh
    cads, _ = cad_models(config)
    return subtype_geometry(
        m.kind, cads, float(m.coverage), int(m.target_vertices), symmetric=bool(m.symmetric)
    )


def unpadded(meshes: mesh_lib.MeshSet, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-type ``s``'s ``(vertices [V_s, 3], faces [F_s, 3])`` without padding."""
    mask = np.asarray(meshes.vertex_mask[s])
    faces = np.asarray(meshes.faces[s])
    return np.asarray(meshes.vertices[s])[mask], faces[faces[:, 0] >= 0]


def check_cad_indices(cad_index, ids, num_subtypes: int, where: str) -> None:
    """Raises ValueError naming the example and its ``cad_index`` if a sub-type has no mesh.

    Args:
      cad_index: ``[N]`` 1-based sub-type of each example; ids: their names (``N``).
      where: the data's location (file or split), named in the error.
    """
    cad_index = np.asarray(cad_index).reshape(-1)
    bad = np.flatnonzero((cad_index < 1) | (cad_index > num_subtypes))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{where}: example {ids[i]!r} has cad_index {int(cad_index[i])}, but the per-sub-type mesh "
            f"has meshes for cad_index 1..{num_subtypes} only ({bad.size} such example(s))"
        )


def toy_subtype_dataset(
    meshes: mesh_lib.MeshSet, num: int, image_size, seed: int = 0, distance: float = 5.0
) -> list[dict]:
    """:func:`nemo_jax.train.toy_data.toy_dataset` for several sub-types: each example renders the
    mesh of a random sub-type and carries its ``cad_index`` (1-based). The camera's scale comes from
    the largest sub-type, so the sub-types keep their relative sizes in the images; each sub-type's
    random vertex colours (one part) are mixed with its own hue (three parts), so sub-types look different
    in colour as well as in shape."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, meshes.num_meshes, num)
    extent = max(float(np.ptp(unpadded(meshes, s)[0], axis=0).max()) for s in range(meshes.num_meshes))
    out: list = [None] * num
    for s in range(meshes.num_meshes):
        where = np.flatnonzero(labels == s)
        if where.size == 0:
            continue
        v, f = unpadded(meshes, s)
        fill = 0.6 * float(np.ptp(v, axis=0).max()) / extent
        hue = 255.0 * np.array(colorsys.hsv_to_rgb(s / meshes.num_meshes, 1.0, 1.0), np.float32)
        colours = 0.25 * vertex_colours(v, np.arange(len(v)), s) + 0.75 * hue
        exs = toy_dataset(
            v, f, None, int(where.size), tuple(image_size), seed=seed * 1000 + s,
            distance=distance, fill=fill, colours=colours,
        )  # fmt: skip
        for i, ex in zip(where, exs, strict=True):
            out[i] = {**ex, "cad_index": np.int32(s + 1), "id": f"toy_{seed}_{i}"}
    return out
