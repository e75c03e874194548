"""Independent reference renders for tests: trimesh ray casting through pixel centres."""

import numpy as np
import trimesh


def ray_cast(mesh: trimesh.Trimesh, camera, height: int, width: int):
    """First hit of the ray through each pixel centre ``(u, v) = (col, row)``.

    Returns ``(hit [H, W] bool, depth [H, W] camera-frame z, face [H, W] int, -1 on miss)``.
    """
    rot = np.asarray(camera.rotation, np.float64)
    t = np.asarray(camera.translation, np.float64)
    focal = float(camera.focal)
    px, py = np.asarray(camera.principal, np.float64)
    centre = -rot.T @ t
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    d_cam = np.stack([(cols - px) / focal, (rows - py) / focal, np.ones(cols.shape)], -1).reshape(-1, 3)
    d_world = d_cam @ rot  # rot.T @ d for each row
    origins = np.repeat(centre[None], len(d_world), 0)
    locations, ray_index, tri_index = mesh.ray.intersects_location(origins, d_world, multiple_hits=False)
    hit = np.zeros(height * width, bool)
    depth = np.zeros(height * width)
    face = -np.ones(height * width, np.int64)
    hit[ray_index] = True
    depth[ray_index] = ((locations - centre) @ rot.T)[:, 2]
    face[ray_index] = tri_index
    return hit.reshape(height, width), depth.reshape(height, width), face.reshape(height, width)


def interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood has a uniform ``mask`` value (away from edges)."""
    padded = np.pad(mask, 1, mode="edge")
    same = np.ones(mask.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same &= padded[1 + dy : 1 + dy + mask.shape[0], 1 + dx : 1 + dx + mask.shape[1]] == mask
    return same
