"""Materials and per-image surface textures of the procedural objects.

Every appearance group of a model (:class:`nemo_jax.data.scenes.primitives.Model`) has a material
(``paint``, ``glass``, ``rubber``, ...). For each image, each group draws one :class:`Appearance`
from its material: two colours mixed by a pattern (solid, 3D fractal noise, stripes, checks, a
gradient, wood grain), a fine grain, and the specular strength and shininess used by the shader.
Patterns are functions of the 3D surface point (CAD frame), so a texture sticks to the surface as
the object turns. Colours vary per image as real objects' colours do, while each material keeps
what makes parts tell apart (dark tyres, bluish glass, white front and red rear lamps).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nemo_jax.data import noise

SOLID, NOISE, STRIPES, CHECKS, GRADIENT, WOOD = range(6)


@dataclasses.dataclass(frozen=True)
class Appearance:
    """One group's look in one image.

    Attributes:
      colour_a, colour_b: ``[3]`` RGB in [0, 1], mixed by the pattern.
      kind: SOLID, NOISE, STRIPES, CHECKS, GRADIENT or WOOD.
      frequency: pattern frequency (radians per CAD unit; noise: lattice cells per CAD unit).
      direction: ``[3]`` unit vector of stripes, gradients and grain.
      phase: pattern phase, radians.
      contrast: how far the pattern moves from ``colour_a`` towards ``colour_b``, [0, 1].
      grain: amplitude of a fine multiplicative noise, [0, 1).
      specular: Blinn-Phong highlight strength; shininess: its exponent.
      emissive: light the surface gives off itself (lamps, screens showing a picture), [0, 1].
    """

    colour_a: np.ndarray
    colour_b: np.ndarray
    kind: int = SOLID
    frequency: float = 10.0
    direction: np.ndarray = dataclasses.field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))
    phase: float = 0.0
    contrast: float = 0.0
    grain: float = 0.05
    specular: float = 0.1
    shininess: float = 20.0
    emissive: float = 0.0


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _grey(rng, lo, hi, tint=0.03) -> np.ndarray:
    return np.clip(rng.uniform(lo, hi) + rng.normal(0, tint, 3), 0, 1)


def _pattern(rng, weights) -> int:
    kinds = (SOLID, NOISE, STRIPES, CHECKS, GRADIENT, WOOD)
    p = np.asarray(weights, np.float64)
    return int(kinds[rng.choice(len(kinds), p=p / p.sum())])


def _paint(rng):
    if rng.random() < 0.35:  # white, black, silver, grey
        a = _grey(rng, 0.08, 0.92)
    else:
        a = noise.random_colour(rng, (0.35, 0.95), (0.25, 0.9))
    kind = _pattern(rng, (0.5, 0.15, 0.15, 0.03, 0.17, 0.0))
    b = noise.random_colour(rng, (0.0, 0.9), (0.1, 0.95))
    contrast = {SOLID: 0.0, NOISE: rng.uniform(0.1, 0.3), GRADIENT: rng.uniform(0.2, 0.5)}.get(
        kind, rng.uniform(0.4, 0.9)
    )
    return dict(
        colour_a=a,
        colour_b=b,
        kind=kind,
        contrast=contrast,
        specular=rng.uniform(0.2, 0.6),
        shininess=rng.uniform(20, 80),
        frequency=rng.uniform(8, 30),
    )


def _glass(rng):
    a = np.clip(np.array([0.10, 0.14, 0.2]) * rng.uniform(0.6, 1.8) + rng.normal(0, 0.02, 3), 0, 1)
    b = np.clip(a + rng.uniform(0.15, 0.45), 0, 1)
    return dict(
        colour_a=a,
        colour_b=b,
        kind=GRADIENT,
        contrast=rng.uniform(0.3, 0.8),
        specular=rng.uniform(0.5, 0.9),
        shininess=rng.uniform(40, 120),
        grain=0.02,
    )


def _rubber(rng):
    a = _grey(rng, 0.04, 0.14, 0.01)
    return dict(
        colour_a=a,
        colour_b=a * 1.8,
        kind=NOISE,
        contrast=rng.uniform(0.1, 0.4),
        specular=rng.uniform(0.02, 0.1),
        shininess=8.0,
        frequency=rng.uniform(20, 60),
    )


def _metal(rng):
    a = _grey(rng, 0.45, 0.85)
    kind = _pattern(rng, (0.4, 0.3, 0.3, 0.0, 0.0, 0.0))
    return dict(
        colour_a=a,
        colour_b=a * 0.6,
        kind=kind,
        contrast=rng.uniform(0.05, 0.3),
        specular=rng.uniform(0.5, 0.9),
        shininess=rng.uniform(20, 60),
        frequency=rng.uniform(30, 90),
    )


def _dark(rng):
    a = _grey(rng, 0.03, 0.25, 0.02)
    return dict(
        colour_a=a,
        colour_b=a * 1.5,
        kind=_pattern(rng, (0.6, 0.4, 0, 0, 0, 0)),
        contrast=rng.uniform(0.1, 0.3),
        specular=rng.uniform(0.05, 0.4),
        frequency=rng.uniform(10, 40),
    )


def _lamp_front(rng):
    a = np.clip(np.array([1.0, 0.97, 0.85]) - rng.uniform(0, 0.15, 3), 0, 1)
    return dict(colour_a=a, colour_b=a, specular=0.8, shininess=60.0, emissive=rng.uniform(0.3, 0.7))


def _lamp_rear(rng):
    a = np.array([rng.uniform(0.7, 1.0), rng.uniform(0.0, 0.15), rng.uniform(0.0, 0.12)])
    return dict(colour_a=a, colour_b=a, specular=0.6, shininess=60.0, emissive=rng.uniform(0.2, 0.5))


def _wood(rng):
    a = noise.random_colour(rng, (0.35, 0.75), (0.25, 0.75), (0.04, 0.11))
    return dict(
        colour_a=a,
        colour_b=a * rng.uniform(0.5, 0.8),
        kind=WOOD,
        contrast=rng.uniform(0.4, 0.9),
        frequency=rng.uniform(40, 120),
        specular=rng.uniform(0.05, 0.3),
    )


def _fabric(rng):
    a = noise.random_colour(rng, (0.1, 0.7), (0.2, 0.85))
    b = noise.random_colour(rng, (0.1, 0.7), (0.2, 0.85))
    kind = _pattern(rng, (0.25, 0.35, 0.2, 0.2, 0.0, 0.0))
    contrast = rng.uniform(0.1, 0.3) if kind == NOISE else rng.uniform(0.3, 0.8)
    return dict(
        colour_a=a,
        colour_b=b,
        kind=kind,
        contrast=contrast,
        frequency=rng.uniform(15, 60),
        specular=rng.uniform(0.0, 0.08),
        grain=0.12,
    )


def _plastic(rng):
    a = noise.random_colour(rng, (0.0, 0.9), (0.1, 0.95))
    return dict(
        colour_a=a,
        colour_b=a * 0.7,
        kind=_pattern(rng, (0.7, 0.3, 0, 0, 0, 0)),
        contrast=rng.uniform(0.05, 0.25),
        specular=rng.uniform(0.2, 0.6),
        frequency=rng.uniform(5, 20),
    )


def _screen(rng):
    if rng.random() < 0.4:  # showing a picture
        a, b = noise.random_colour(rng), noise.random_colour(rng)
        return dict(
            colour_a=a,
            colour_b=b,
            kind=NOISE,
            contrast=0.9,
            frequency=rng.uniform(3, 10),
            emissive=rng.uniform(0.3, 0.7),
            specular=0.5,
            shininess=80.0,
        )
    a = np.clip(np.array([0.03, 0.04, 0.07]) * rng.uniform(0.5, 2.0), 0, 1)
    return dict(
        colour_a=a,
        colour_b=a + 0.2,
        kind=GRADIENT,
        contrast=rng.uniform(0.2, 0.6),
        specular=0.8,
        shininess=100.0,
        grain=0.01,
    )


def _label(rng):
    a = noise.random_colour(rng, (0.0, 0.8), (0.6, 1.0))
    b = noise.random_colour(rng, (0.3, 1.0), (0.1, 0.8))
    kind = _pattern(rng, (0.0, 0.2, 0.5, 0.3, 0.0, 0.0))
    return dict(
        colour_a=a,
        colour_b=b,
        kind=kind,
        contrast=rng.uniform(0.5, 1.0),
        frequency=rng.uniform(30, 90),
        specular=0.2,
    )


def _bottle_glass(rng):
    hue = rng.choice([0.33, 0.08, 0.55, 0.6])  # green, brown, clear-blue, blue
    a = noise.random_colour(rng, (0.3, 0.9), (0.15, 0.6), (hue - 0.04, hue + 0.04))
    return dict(
        colour_a=a,
        colour_b=np.clip(a * 1.8, 0, 1),
        kind=GRADIENT,
        contrast=rng.uniform(0.2, 0.6),
        specular=rng.uniform(0.6, 1.0),
        shininess=rng.uniform(60, 150),
        grain=0.02,
    )


def _sail(rng):
    a = _grey(rng, 0.8, 0.98, 0.02)
    b = noise.random_colour(rng, (0.5, 1.0), (0.4, 0.9))
    kind = _pattern(rng, (0.6, 0.1, 0.3, 0, 0, 0))
    return dict(
        colour_a=a,
        colour_b=b,
        kind=kind,
        contrast=rng.uniform(0.3, 0.9),
        frequency=rng.uniform(6, 20),
        specular=0.05,
    )


MATERIALS = {
    "paint": _paint,
    "glass": _glass,
    "rubber": _rubber,
    "metal": _metal,
    "dark": _dark,
    "lamp_front": _lamp_front,
    "lamp_rear": _lamp_rear,
    "wood": _wood,
    "fabric": _fabric,
    "plastic": _plastic,
    "screen": _screen,
    "label": _label,
    "bottle_glass": _bottle_glass,
    "sail": _sail,
}


def sample_appearance(material: str, rng: np.random.Generator) -> Appearance:
    """One image's :class:`Appearance` of ``material`` (a key of :data:`MATERIALS`)."""
    if material not in MATERIALS:
        raise ValueError(f"sample_appearance: unknown material {material!r}; known: {sorted(MATERIALS)}")
    fields = MATERIALS[material](rng)
    fields.setdefault("direction", _unit(rng))
    fields.setdefault("phase", float(rng.uniform(0, 2 * np.pi)))
    fields.setdefault("grain", float(rng.uniform(0.02, 0.08)))
    fields["colour_a"] = np.clip(np.asarray(fields["colour_a"], np.float32), 0, 1)
    fields["colour_b"] = np.clip(np.asarray(fields["colour_b"], np.float32), 0, 1)
    return Appearance(**fields)


def pattern(app: Appearance, points: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """``[N]`` pattern value in [0, 1] of ``app`` at CAD points ``[N, 3]``."""
    p = np.asarray(points, np.float32)
    along = p @ np.asarray(app.direction, np.float32)
    if app.kind == NOISE:
        t = noise.fractal_noise_3d(lattice, p * app.frequency / 6.0 + 3.1)
        return np.clip((t - 0.3) / 0.4, 0, 1)
    if app.kind == STRIPES:
        return 0.5 + 0.5 * np.tanh(3.0 * np.sin(app.frequency * along + app.phase))
    if app.kind == CHECKS:
        return (np.prod(np.sin(app.frequency * p + app.phase), -1) > 0).astype(np.float32)
    if app.kind == GRADIENT:
        return np.clip(0.5 + 1.2 * along, 0, 1)
    if app.kind == WOOD:
        warp = noise.value_noise_3d(lattice, p * 8.0 + 5.0)
        return 0.5 + 0.5 * np.sin(app.frequency * (along + 0.08 * warp) + app.phase)
    return np.zeros(len(p), np.float32)


def albedo(app: Appearance, points: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """``[N, 3]`` surface colour in [0, 1] of ``app`` at CAD points ``[N, 3]`` (before light)."""
    t = (app.contrast * pattern(app, points, lattice))[:, None]
    colour = app.colour_a * (1 - t) + app.colour_b * t
    grain = noise.value_noise_3d(lattice, np.asarray(points, np.float32) * 90.0 + 11.0)
    return np.clip(colour * (1 + app.grain * (2 * grain[:, None] - 1)), 0, 1)
