"""Simple Lambertian shading of rendered meshes, for overlays (numpy, host side)."""

from __future__ import annotations

import numpy as np


def face_normals_camera(vertices, faces, rotation) -> np.ndarray:
    """Unit face normals ``[F, 3]`` in the camera frame (``rotation``: world-to-camera ``[3, 3]``)."""
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
    return normals @ np.asarray(rotation, np.float64).T


def shade(face_index, normals_cam, ambient: float = 0.35) -> np.ndarray:
    """``[H, W]`` intensity in [0, 1]: a headlight (light at the camera) on the visible faces.

    Two-sided: a face seen from behind is lit like its front. Background pixels get 0.
    """
    face_index = np.asarray(face_index)
    covered = face_index >= 0
    # The camera looks along +z: a face facing it has normal z < 0 (or > 0 seen from behind).
    lambert = np.abs(normals_cam[np.maximum(face_index, 0), 2])
    return np.where(covered, ambient + (1.0 - ambient) * lambert, 0.0)


def overlay(image, intensity, mask, color=(1.0, 0.55, 0.25), alpha: float = 0.6) -> np.ndarray:
    """Blends a shaded mesh (``intensity``, ``mask`` ``[H, W]``) in ``color`` over ``image``
    (``[H, W, 3]`` uint8). Returns uint8 ``[H, W, 3]``."""
    base = np.asarray(image, np.float64) / 255.0
    mesh = np.asarray(intensity)[..., None] * np.asarray(color)[None, None]
    blend = np.where(np.asarray(mask)[..., None] > 0, (1 - alpha) * base + alpha * mesh, base)
    return np.clip(np.rint(blend * 255.0), 0, 255).astype(np.uint8)


def checkerboard(height: int, width: int, cell: int = 16) -> np.ndarray:
    """A grey checkerboard ``[H, W, 3]`` uint8 background."""
    rows, cols = np.meshgrid(np.arange(height) // cell, np.arange(width) // cell, indexing="ij")
    value = np.where((rows + cols) % 2 == 0, 200, 150).astype(np.uint8)
    return np.repeat(value[..., None], 3, axis=-1)
