"""Cuboid meshes: NeMo's SingleCuboid surface, a box sampled on a regular grid.

NeMo replaces the CAD model by the box covering (most of) a category's CAD vertices, sampled with
roughly uniform spacing so that about ``target_vertices`` vertices lie on its surface. Every grid
point on the box surface is a vertex; each grid cell on a side is split into two triangles, wound
counter-clockwise around the outward normal.
"""

from __future__ import annotations

import numpy as np
import trimesh


def _grid_counts(extent: np.ndarray, target_vertices: int) -> np.ndarray:
    """Points per axis (>= 2) whose box surface holds about ``target_vertices`` grid points."""

    def surface_points(spacing):
        n = np.maximum(np.round(extent / spacing).astype(int) + 1, 2)
        return n, int(np.prod(n) - np.prod(np.maximum(n - 2, 0)))

    lo, hi = 1e-6 * extent.max(), extent.max()
    for _ in range(60):  # bisection on the spacing; surface count decreases with spacing
        mid = np.sqrt(lo * hi)
        _, count = surface_points(mid)
        lo, hi = (mid, hi) if count > target_vertices else (lo, mid)
    n_hi, c_hi = surface_points(hi)
    n_lo, c_lo = surface_points(lo)
    return n_hi if abs(c_hi - target_vertices) <= abs(c_lo - target_vertices) else n_lo


def cuboid_mesh(lower, upper, target_vertices: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """A closed box mesh from ``lower`` to ``upper`` with about ``target_vertices`` vertices.

    Args:
      lower, upper: ``[3]`` opposite corners (CAD frame units), ``upper > lower`` per axis.
      target_vertices: approximate number of surface vertices (NeMo's SingleCuboid uses ~1000).
    Returns:
      ``(vertices [V, 3] float32, faces [F, 3] int32)``; faces are wound counter-clockwise seen
      from outside (outward normals), the mesh is watertight.
    """
    lower = np.asarray(lower, np.float64)
    upper = np.asarray(upper, np.float64)
    if lower.shape != (3,) or upper.shape != (3,) or not np.all(upper > lower):
        raise ValueError(f"cuboid_mesh: need upper > lower per axis, got {lower}, {upper}")
    if target_vertices < 8:
        raise ValueError(f"cuboid_mesh: target_vertices must be >= 8, got {target_vertices}")
    n = _grid_counts(upper - lower, target_vertices)
    axes = [np.linspace(lower[a], upper[a], n[a]) for a in range(3)]

    ids = -np.ones(n, np.int64)
    surface = np.zeros(n, bool)
    for a in range(3):
        index = [slice(None)] * 3
        for end in (0, n[a] - 1):
            index[a] = end
            surface[tuple(index)] = True
    ids[surface] = np.arange(surface.sum())
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    vertices = grid[surface]

    faces = []
    for a in range(3):
        b, c = [x for x in range(3) if x != a]
        for end, sign in ((0, -1.0), (n[a] - 1, 1.0)):
            index = [slice(None)] * 3
            index[a] = end
            side = ids[tuple(index)]  # [n_b, n_c]
            q00, q10 = side[:-1, :-1].ravel(), side[1:, :-1].ravel()
            q01, q11 = side[:-1, 1:].ravel(), side[1:, 1:].ravel()
            tris = np.concatenate([np.stack([q00, q10, q11], 1), np.stack([q00, q11, q01], 1)])
            # (b, c, a) is a right-handed cycle iff c == (b + 1) % 3; flip to face outward.
            right_handed = c == (b + 1) % 3
            if (sign > 0) != right_handed:
                tris = tris[:, ::-1]
            faces.append(tris)
    faces = np.concatenate(faces)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    return vertices.astype(np.float32), faces.astype(np.int32)


def coverage_bounds(vertex_sets, coverage: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis interval holding ``coverage`` of all vertices (NeMo's ``linear_coverage``).

    Args:
      vertex_sets: iterable of ``[N_i, 3]`` vertex arrays (e.g. every CAD model of a category).
      coverage: fraction of vertices inside the interval on each axis, in (0, 1].
    Returns:
      ``(lower [3], upper [3])``: the ``(1 - coverage) / 2`` and ``(1 + coverage) / 2`` quantiles.
    """
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage_bounds: coverage must be in (0, 1], got {coverage}")
    points = np.concatenate([np.asarray(v, np.float64).reshape(-1, 3) for v in vertex_sets])
    if len(points) == 0:
        raise ValueError("coverage_bounds: no vertices given")
    lower = np.quantile(points, (1 - coverage) / 2, axis=0)
    upper = np.quantile(points, (1 + coverage) / 2, axis=0)
    return lower, upper


def single_cuboid(
    vertex_sets, coverage: float = 0.99, target_vertices: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """NeMo's SingleCuboid neural-mesh geometry for a category: the box covering ``coverage`` of
    the category's CAD vertices per axis, sampled with about ``target_vertices`` vertices."""
    lower, upper = coverage_bounds(vertex_sets, coverage)
    return cuboid_mesh(lower, upper, target_vertices)
