"""Static shapes for jit: rounding sizes up to buckets and padding meshes / per-vertex arrays.

Padding convention (shared by the rasterizer, the search and the datasets): vertex rows and
per-vertex values are padded with zeros (``False`` for bool), face rows with ``-1`` (faces with an
index outside ``[0, V)`` draw nothing).
"""

from __future__ import annotations

import numpy as np


def round_up(n: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is ``>= n`` (``multiple >= 1``)."""
    if int(multiple) < 1:
        raise ValueError(f"round_up: multiple must be >= 1, got {multiple}")
    return -(-int(n) // int(multiple)) * int(multiple)


def pad_rows(array, size: int, fill=None, what: str = "pad_rows") -> np.ndarray:
    """Pads the leading axis of ``array`` to ``size`` rows of ``fill``.

    ``fill`` defaults to ``-1`` for integer arrays (face indices) and to 0 / ``False`` otherwise.
    Raises ``ValueError`` naming ``what`` when ``array`` already has more than ``size`` rows.
    """
    array = np.asarray(array)
    if len(array) > size:
        raise ValueError(f"{what}: {len(array)} rows > {size}")
    if fill is None:
        fill = -1 if np.issubdtype(array.dtype, np.integer) else 0
    padding = np.full((size - len(array), *array.shape[1:]), fill, array.dtype)
    return np.concatenate([array, padding])


def pad_mesh(vertices, faces, num_vertices: int, num_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices [num_vertices, 3], faces [num_faces, 3])``: zero vertex rows, ``-1`` face rows."""
    return (
        pad_rows(vertices, num_vertices, 0, "pad_mesh: vertices"),
        pad_rows(faces, num_faces, -1, "pad_mesh: faces"),
    )


def pad_to_common(meshes) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pads a list of ``(vertices [V_i, 3], faces [F_i, 3])`` to the largest ``V`` and ``F``."""
    meshes = list(meshes)
    if not meshes:
        raise ValueError("pad_to_common: no meshes given")
    nv = max(len(v) for v, _ in meshes)
    nf = max(len(f) for _, f in meshes)
    return [pad_mesh(v, f, nv, nf) for v, f in meshes]
