"""Mesh primitives for the procedural CAD models, and a model assembled from named parts.

Every primitive is a closed, outward-wound (counter-clockwise) ``trimesh.Trimesh`` in the PASCAL3D+
CAD frame: x to the object's side, y along it with the FRONT at -y (azimuth 0 looks at the front),
z up. Units are the builder's own (about metres); :func:`assemble` centres the model on its
bounding box and scales it to the category's size in CAD units.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import trimesh

_SECTIONS = 16


@dataclasses.dataclass(frozen=True)
class Part:
    """One closed mesh of a model and the appearance group its faces belong to (parts of one group,
    e.g. a car's body panels, share one sampled appearance per image)."""

    mesh: trimesh.Trimesh
    group: str


@dataclasses.dataclass(frozen=True)
class Model:
    """A procedural CAD model.

    Attributes:
      vertices: ``[V, 3]`` float32, CAD frame, centred on the bounding box, CAD units.
      faces: ``[F, 3]`` int32, outward winding; every part closed.
      face_group: ``[F]`` int32 index into ``groups``.
      groups: appearance-group names, e.g. ``("body", "tyre", ...)``.
      materials: material name of each group (see :mod:`nemo_jax.data.scenes.textures`).
      on_ground: the object stands on the plane ``z = vertices[:, 2].min()`` (it casts a shadow there).
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_group: np.ndarray
    groups: tuple[str, ...]
    materials: tuple[str, ...]
    on_ground: bool = True

    @property
    def face_normals(self) -> np.ndarray:
        """``[F, 3]`` float32 unit outward normals."""
        tri = self.vertices[self.faces].astype(np.float64)
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        return (n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)).astype(np.float32)

    @property
    def extents(self) -> np.ndarray:
        """``[3]`` bounding-box size (x, y, z), CAD units."""
        return self.vertices.max(0) - self.vertices.min(0)


def assemble(parts: list[Part], materials: dict[str, str], size: float, on_ground: bool = True) -> Model:
    """Joins ``parts`` into one :class:`Model`, centred on its bounding box, largest extent ``size``.

    ``materials``: material name per group; every part's group must have one.
    """
    groups = tuple(dict.fromkeys(p.group for p in parts))
    missing = [g for g in groups if g not in materials]
    if missing:
        raise ValueError(f"assemble: no material for groups {missing}")
    vertices, faces, face_group = [], [], []
    offset = 0
    for part in parts:
        v, f = np.asarray(part.mesh.vertices), np.asarray(part.mesh.faces)
        vertices.append(v)
        faces.append(f + offset)
        face_group.append(np.full(len(f), groups.index(part.group)))
        offset += len(v)
    v = np.concatenate(vertices)
    lo, hi = v.min(0), v.max(0)
    v = (v - (lo + hi) / 2) * (size / (hi - lo).max())
    return Model(
        vertices=v.astype(np.float32),
        faces=np.concatenate(faces).astype(np.int32),
        face_group=np.concatenate(face_group).astype(np.int32),
        groups=groups,
        materials=tuple(materials[g] for g in groups),
        on_ground=on_ground,
    )


def box(extents, centre=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    """An axis-aligned box of ``extents (x, y, z)`` centred at ``centre``."""
    return trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(centre))


def hull(points) -> trimesh.Trimesh:
    """The convex hull of ``points [N, 3]``: wedges, tapered boxes, wings, hulls, noses."""
    return trimesh.convex.convex_hull(np.asarray(points, np.float64))


def prism(profile, axis: str, lo: float, hi: float) -> trimesh.Trimesh:
    """A convex 2D ``profile [N, 2]`` extruded from ``lo`` to ``hi`` along ``axis``. The profile's
    coordinates are the other two axes in order (axis 'x': (y, z); 'y': (x, z); 'z': (x, y))."""
    profile = np.asarray(profile, np.float64)
    pts = []
    for t in (lo, hi):
        for a, b in profile:
            pts.append({"x": (t, a, b), "y": (a, t, b), "z": (a, b, t)}[axis])
    return hull(pts)


def rounded_box(
    extents, centre=(0.0, 0.0, 0.0), radius: float = 0.05, subdivisions: int = 1
) -> trimesh.Trimesh:
    """A box with rounded edges: the hull of 8 corner spheres (``radius`` clipped to the extents)."""
    e = np.asarray(extents, np.float64) / 2
    r = float(min(radius, 0.49 * e.min() * 2))
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=r).vertices
    corners = [np.array([sx, sy, sz]) * (e - r) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
    return hull(np.concatenate([sphere + c for c in corners]) + np.asarray(centre))


def tube(p0, p1, radius: float, sections: int = 8) -> trimesh.Trimesh:
    """A cylinder of ``radius`` from point ``p0`` to ``p1`` (frames, legs, spokes, masts)."""
    return trimesh.creation.cylinder(radius=radius, segment=[p0, p1], sections=sections)


def disc(centre, axis: str, radius: float, width: float, sections: int = _SECTIONS) -> trimesh.Trimesh:
    """A cylinder of ``radius`` and length ``width`` along ``axis`` ('x', 'y' or 'z') at ``centre``."""
    d = {"x": (1, 0, 0), "y": (0, 1, 0), "z": (0, 0, 1)}[axis]
    c = np.asarray(centre, np.float64)
    half = np.asarray(d) * width / 2
    return trimesh.creation.cylinder(radius=radius, segment=[c - half, c + half], sections=sections)


def ring(centre, axis: str, major: float, minor: float, sections: int = 40, minor_sections: int = 8):
    """A torus of ``major`` and ``minor`` radius around ``axis`` at ``centre`` (tyres, rims, rings)."""
    rot = {
        "x": trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]),
        "y": trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]),
        "z": np.eye(4),
    }[axis]
    transform = trimesh.transformations.translation_matrix(centre) @ rot
    return trimesh.creation.torus(major, minor, sections, minor_sections, transform=transform)


def ellipsoid(centre, radii, subdivisions: int = 2) -> trimesh.Trimesh:
    """An ellipsoid with semi-axes ``radii (x, y, z)`` at ``centre``."""
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    mesh.apply_scale(np.asarray(radii, np.float64))
    mesh.apply_translation(centre)
    return mesh


def revolve(profile, centre=(0.0, 0.0, 0.0), axis: str = "z", sections: int = 24) -> trimesh.Trimesh:
    """A solid of revolution: ``profile [N, 2]`` of ``(radius, height)`` points from the axis
    (radius 0) round to the axis again, revolved around ``axis`` through ``centre``."""
    mesh = trimesh.creation.revolve(np.asarray(profile, np.float64), sections=sections)
    if axis == "y":
        mesh.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    elif axis == "x":
        mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]))
    mesh.apply_translation(centre)
    return mesh


def arc_patch(
    centre, radius: float, z0: float, z1: float, half_angle: float, depth: float, sections: int = 12
):
    """A curved patch on a vertical cylinder of ``radius`` around the z axis through ``centre``,
    facing -y, spanning ``+-half_angle`` radians and heights ``z0..z1``: the hull of the arc and a
    chord ``depth`` inside (a bottle's front label, a curved screen)."""
    angles = np.linspace(-half_angle, half_angle, sections)
    pts = []
    for z in (z0, z1):
        for a in angles:
            pts.append((radius * np.sin(a), -radius * np.cos(a), z))
        for a in (-half_angle, half_angle):
            r = radius - depth
            pts.append((r * np.sin(a), -r * np.cos(a), z))
    return hull(np.asarray(pts) + np.asarray(centre))


def wheel_spokes(centre, axis: str, inner: float, outer: float, count: int, radius: float, phase=0.0):
    """``count`` straight spokes from radius ``inner`` to ``outer`` in the wheel plane normal to
    ``axis`` ('x' or 'y'), as tubes."""
    c = np.asarray(centre, np.float64)
    out = []
    for k in range(count):
        a = phase + 2 * np.pi * k / count
        u = (0.0, np.cos(a), np.sin(a)) if axis == "x" else (np.cos(a), 0.0, np.sin(a))
        u = np.asarray(u)
        out.append(tube(c + inner * u, c + outer * u, radius, sections=6))
    return out


def mirror_x(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The mesh reflected through the plane x = 0 (winding restored, so still outward)."""
    m = mesh.copy()
    m.vertices[:, 0] *= -1
    m.faces = m.faces[:, ::-1]
    return m
