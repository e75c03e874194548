"""Procedural object categories for the synthetic dataset: meshes composed from trimesh primitives.

Every category is a fixed CAD model in the PASCAL3D+ CAD frame (+z up, the object's front facing -y,
so azimuth 0 looks at the front), centred on its bounding box and scaled to a largest extent of 1 CAD
unit. Each face belongs to a *part*; each part has a fixed procedural texture (a function of the 3D
surface point), which makes the appearance of a surface point, and so the pose, learnable.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import trimesh

# Texture kinds: 0 solid, 1 stripes sin(k . p), 2 checker sign(sin kx sin ky sin kz), 3 rings |p_xy|.
SOLID, STRIPES, CHECKER, RINGS = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class PartTexture:
    """A procedural texture: ``colour * (1 - contrast * pattern(p))`` with ``pattern`` in [0, 1].

    Attributes:
      colour: RGB in [0, 1].
      kind: SOLID, STRIPES, CHECKER or RINGS.
      frequency: ``[3]`` spatial frequency vector (radians per CAD unit).
      contrast: pattern amplitude in [0, 1].
    """

    colour: tuple[float, float, float]
    kind: int = SOLID
    frequency: tuple[float, float, float] = (0.0, 0.0, 0.0)
    contrast: float = 0.0


@dataclasses.dataclass(frozen=True)
class Category:
    """A procedural category.

    Attributes:
      vertices: ``[V, 3]`` float32 CAD frame, largest extent 1.
      faces: ``[F, 3]`` int32, outward (counter-clockwise) winding, every part closed.
      face_part: ``[F]`` int32 part index per face.
      textures: one :class:`PartTexture` per part.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    face_part: np.ndarray
    textures: tuple[PartTexture, ...]


def _box(extents, centre):
    return trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(centre))


def _cylinder(radius, height, centre, axis="z", sections=20):
    transform = trimesh.transformations.translation_matrix(centre)
    if axis == "x":
        transform = transform @ trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0])
    elif axis == "y":
        transform = transform @ trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0])
    return trimesh.creation.cylinder(radius=radius, height=height, sections=sections, transform=transform)


def _cone(radius, height, base_centre, sections=20):
    return trimesh.creation.cone(
        radius=radius,
        height=height,
        sections=sections,
        transform=trimesh.transformations.translation_matrix(base_centre),
    )


def _car():
    wheel = PartTexture((0.08, 0.08, 0.08), RINGS, (60.0, 60.0, 0.0), 0.5)
    parts = [
        (_box((0.8, 1.8, 0.4), (0, 0, 0.0)), PartTexture((0.75, 0.1, 0.1), STRIPES, (0.0, 9.0, 0.0), 0.35)),
        (_box((0.7, 0.9, 0.32), (0, 0.15, 0.36)), PartTexture((0.55, 0.75, 0.9), CHECKER, (12, 12, 12), 0.5)),
        (_box((0.6, 0.06, 0.15), (0, -0.92, 0.0)), PartTexture((0.95, 0.9, 0.3), SOLID)),  # front grille
    ]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append((_cylinder(0.2, 0.14, (sx * 0.4, sy * 0.55, -0.22), axis="x"), wheel))
    return parts


def _chair():
    leg = PartTexture((0.35, 0.2, 0.08), STRIPES, (0.0, 0.0, 30.0), 0.3)
    parts = [
        (_box((0.5, 0.5, 0.07), (0, 0, 0)), PartTexture((0.2, 0.45, 0.8), CHECKER, (18, 18, 18), 0.45)),
        (_box((0.5, 0.07, 0.55), (0, 0.215, 0.31)), PartTexture((0.85, 0.6, 0.2), STRIPES, (14, 0, 0), 0.5)),
    ]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append((_box((0.06, 0.06, 0.45), (sx * 0.21, sy * 0.21, -0.26)), leg))
    return parts


def _aeroplane():
    return [
        (_cylinder(0.12, 1.6, (0, 0, 0), axis="y"), PartTexture((0.85, 0.85, 0.88), STRIPES, (0, 6, 0), 0.2)),
        (_cone(0.12, 0.3, (0, -0.8, 0)), PartTexture((0.9, 0.3, 0.1), SOLID)),
        (_box((1.6, 0.35, 0.05), (0, -0.05, 0)), PartTexture((0.25, 0.35, 0.7), CHECKER, (10, 10, 10), 0.4)),
        (_box((0.5, 0.2, 0.04), (0, 0.7, 0.02)), PartTexture((0.25, 0.35, 0.7), SOLID)),
        (_box((0.04, 0.25, 0.35), (0, 0.7, 0.18)), PartTexture((0.9, 0.75, 0.1), STRIPES, (0, 0, 25), 0.5)),
    ]


def _bottle():
    return [
        (_cylinder(0.18, 0.55, (0, 0, -0.15)), PartTexture((0.1, 0.55, 0.25), STRIPES, (0, 0, 25), 0.3)),
        (_cone(0.18, 0.16, (0, 0, 0.125)), PartTexture((0.1, 0.55, 0.25), SOLID)),
        (_cylinder(0.06, 0.2, (0, 0, 0.3)), PartTexture((0.1, 0.55, 0.25), SOLID)),
        (_cylinder(0.075, 0.06, (0, 0, 0.42)), PartTexture((0.9, 0.85, 0.2), SOLID)),
        # A label on the front (-y) side breaks the rotational symmetry, so azimuth is observable.
        (
            _box((0.22, 0.06, 0.25), (0, -0.17, -0.15)),
            PartTexture((0.95, 0.95, 0.9), CHECKER, (25, 25, 25), 0.6),
        ),
    ]


_BUILDERS = {"car": _car, "chair": _chair, "aeroplane": _aeroplane, "bottle": _bottle}
CATEGORIES = tuple(_BUILDERS)


def make_category(name: str) -> Category:
    """The procedural category ``name`` (one of :data:`CATEGORIES`); deterministic."""
    if name not in _BUILDERS:
        raise ValueError(f"synthetic category {name!r} is unknown; known: {', '.join(CATEGORIES)}")
    parts = _BUILDERS[name]()
    vertices, faces, face_part, textures = [], [], [], []
    offset = 0
    for index, (mesh, texture) in enumerate(parts):
        vertices.append(np.asarray(mesh.vertices))
        faces.append(np.asarray(mesh.faces) + offset)
        face_part.append(np.full(len(mesh.faces), index))
        textures.append(texture)
        offset += len(mesh.vertices)
    vertices = np.concatenate(vertices)
    lower, upper = vertices.min(0), vertices.max(0)
    vertices = (vertices - (lower + upper) / 2) / (upper - lower).max()
    return Category(
        name=name,
        vertices=vertices.astype(np.float32),
        faces=np.concatenate(faces).astype(np.int32),
        face_part=np.concatenate(face_part).astype(np.int32),
        textures=tuple(textures),
    )


def texture_arrays(category: Category) -> dict[str, np.ndarray]:
    """Part textures as arrays: colour ``[P, 3]``, kind ``[P]``, frequency ``[P, 3]``, contrast ``[P]``."""
    t = category.textures
    return {
        "colour": np.array([p.colour for p in t], np.float32),
        "kind": np.array([p.kind for p in t], np.int32),
        "frequency": np.array([p.frequency for p in t], np.float32),
        "contrast": np.array([p.contrast for p in t], np.float32),
    }


def shade_texture(points: np.ndarray, part: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Evaluates the part textures at surface points. ``points [..., 3]`` CAD frame, ``part [...]``
    int -> RGB ``[..., 3]`` in [0, 1] (before lighting)."""
    k = arrays["frequency"][part]  # [..., 3]
    kind = arrays["kind"][part]
    stripes = 0.5 + 0.5 * np.sin(np.sum(k * points, -1))
    checker = (np.prod(np.sin(k * points + 0.3), -1) > 0).astype(np.float32)
    rings = 0.5 + 0.5 * np.sin(np.linalg.norm(points[..., :2] * k[..., :2], axis=-1))
    pattern = np.select([kind == STRIPES, kind == CHECKER, kind == RINGS], [stripes, checker, rings], 0.0)
    return arrays["colour"][part] * (1.0 - arrays["contrast"][part] * pattern)[..., None]
