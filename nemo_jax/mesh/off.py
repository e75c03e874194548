"""Reading and writing OFF meshes (the PASCAL3D+ CAD format) with trimesh, with clear errors."""

from __future__ import annotations

import os

import numpy as np
import trimesh


def load_off(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Loads an ``.off`` triangle mesh without altering it (no merging, no reordering).

    Args:
      path: the file.
    Returns:
      ``(vertices [V, 3] float32, faces [F, 3] int32)`` in the file's frame (for PASCAL3D+ CAD
      models: the CAD frame the viewpoint annotations refer to).
    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: the file does not parse as a triangle mesh, has no faces, non-finite vertices or
        face indices out of range; the message names the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such mesh file")
    try:
        mesh = trimesh.load(path, file_type="off", process=False, force="mesh")
    except Exception as err:  # trimesh raises many types for malformed files
        raise ValueError(f"{path}: not a readable OFF mesh ({type(err).__name__}: {err})") from err
    vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), np.float64)
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))))
    if vertices.ndim != 2 or vertices.shape[0] == 0:
        raise ValueError(f"{path}: OFF mesh has no vertices")
    if faces.ndim != 2 or faces.shape[0] == 0 or faces.shape[1] != 3:
        raise ValueError(f"{path}: OFF mesh has no triangle faces (faces shape {faces.shape})")
    if not np.all(np.isfinite(vertices)):
        raise ValueError(f"{path}: OFF mesh has non-finite vertex coordinates")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError(f"{path}: OFF face indices out of range [0, {len(vertices)})")
    return vertices.astype(np.float32), faces.astype(np.int32)


def save_off(path: str | os.PathLike, vertices, faces) -> None:
    """Writes a triangle mesh as ASCII OFF (the PASCAL3D+ CAD format)."""
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    lines = ["OFF", f"{len(vertices)} {len(faces)} 0"]
    lines += [" ".join(f"{c:.9g}" for c in v) for v in vertices]
    lines += ["3 " + " ".join(str(int(i)) for i in f) for f in faces]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
