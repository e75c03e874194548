"""Other neural-mesh geometries: MultiCuboid (one cuboid per CAD sub-type) and remeshed CAD models.

Several meshes of one category are stored padded to common static sizes (``MeshSet``); the
rasterizer skips faces with index ``-1``, and ``vertex_mask`` marks the real vertices.
"""

from __future__ import annotations

import flax.struct
import jax
import numpy as np
import trimesh

from nemo_jax.mesh.cuboid import coverage_bounds, cuboid_mesh
from nemo_jax.mesh.padding import pad_to_common


@flax.struct.dataclass
class MeshSet:
    """``M`` meshes padded to ``V`` vertices and ``F`` faces.

    Attributes:
      vertices: ``[M, V, 3]`` float32 (padding vertices at the origin).
      faces: ``[M, F, 3]`` int32, padding faces are ``-1`` (the rasterizer masks them).
      vertex_mask: ``[M, V]`` bool, True for real vertices.
    """

    vertices: jax.Array
    faces: jax.Array
    vertex_mask: jax.Array

    @property
    def num_meshes(self) -> int:
        return self.vertices.shape[0]


def pad_meshes(meshes) -> MeshSet:
    """Stacks a list of ``(vertices [V_i, 3], faces [F_i, 3])`` into a :class:`MeshSet`."""
    meshes = [(np.asarray(v, np.float32), np.asarray(f, np.int32)) for v, f in meshes]
    padded = pad_to_common(meshes)
    mask = np.stack([np.arange(len(padded[0][0])) < len(v) for v, _ in meshes])
    return MeshSet(
        vertices=np.stack([v for v, _ in padded]), faces=np.stack([f for _, f in padded]), vertex_mask=mask
    )


def multi_cuboid(vertex_sets, coverage: float = 0.99, target_vertices: int = 1000) -> MeshSet:
    """NeMo's MultiCuboid: one cuboid per CAD sub-type, each covering ``coverage`` of that sub-type's
    vertices per axis, ~``target_vertices`` vertices each.

    Args:
      vertex_sets: one ``[N_i, 3]`` vertex array per CAD model (``CAD/{category}/NN.off``, in order).
    """
    meshes = [cuboid_mesh(*coverage_bounds([v], coverage), target_vertices) for v in vertex_sets]
    return pad_meshes(meshes)


def _cluster(vertices: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex-clustering decimation: vertices in one grid cell merge to their mean; faces that
    collapse are dropped."""
    keys = np.floor((vertices - vertices.min(0)) / cell).astype(np.int64)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    count = np.bincount(inverse)
    merged = np.stack([np.bincount(inverse, vertices[:, a]) / count for a in range(3)], 1)
    new_faces = inverse[faces]
    keep = (
        (new_faces[:, 0] != new_faces[:, 1])
        & (new_faces[:, 1] != new_faces[:, 2])
        & (new_faces[:, 0] != new_faces[:, 2])
    )
    mesh = trimesh.Trimesh(merged, new_faces[keep], process=False)
    mesh.update_faces(mesh.unique_faces())
    mesh.remove_unreferenced_vertices()
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def remesh(vertices, faces, target_vertices: int = 1000, tolerance: float = 0.15):
    """A CAD mesh resampled to about ``target_vertices`` vertices, in the same (CAD) frame.

    Denser meshes are decimated by vertex clustering, sparser ones subdivided (trimesh
    ``subdivide_to_size``); the grid cell / edge length is found by bisection.

    Args:
      vertices: ``[V, 3]``; faces: ``[F, 3]`` (e.g. from :func:`nemo_jax.mesh.load_off`).
      target_vertices: wanted vertex count.
      tolerance: accepted relative deviation from the target; the closest result found is
        returned either way.
    Returns:
      ``(vertices [V', 3] float32, faces [F', 3] int32)``.
    """
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    if target_vertices < 4:
        raise ValueError(f"remesh: target_vertices must be >= 4, got {target_vertices}")
    extent = float(np.ptp(vertices, axis=0).max())
    if len(vertices) > target_vertices:

        def make(size):
            return _cluster(vertices, faces, size)

    else:

        def make(size):
            v, f = trimesh.remesh.subdivide_to_size(vertices, faces, max_edge=size, max_iter=20)
            mesh = trimesh.Trimesh(v, f, process=True)  # merge duplicated edge midpoints
            return np.asarray(mesh.vertices), np.asarray(mesh.faces)

    lo, hi = extent * 1e-3, extent
    best = (vertices, faces)
    for _ in range(30):  # vertex count decreases with the cell / edge size
        mid = np.sqrt(lo * hi)
        v, f = make(mid)
        if abs(len(v) - target_vertices) < abs(len(best[0]) - target_vertices):
            best = (v, f)
        if abs(len(v) - target_vertices) <= tolerance * target_vertices / 4:
            break
        lo, hi = (mid, hi) if len(v) > target_vertices else (lo, mid)
    return best[0].astype(np.float32), best[1].astype(np.int32)
