"""Where the camera, the object and the light are in one generated photograph.

Distributions (PASCAL3D+-like; angles in DEGREES as in the annotation files):
  * azimuth uniform in [0, 360); elevation normal(8, 12) clipped to [-20, 60] (93 % within
    -10..40); in-plane theta normal(0, 4) clipped to [-15, 15];
  * image size: ImageNet-like, 375 x 500 (55 %), 333 x 500 (15 %), 500 x 375 (15 %), 400 x 400 (15 %);
  * scale: the object's projected box fills 45-92 % of the image along its tighter side;
  * position: anywhere the box fits; 12 % of the images cut 5-30 % of the box off at one border
    (``truncated``);
  * light: from 15-75 degrees above the ground, within 110 degrees of azimuth from the camera.
The camera is the annotation's: focal 1 x viewport 3000 px, distance in CAD units, principal point
(the projection of the CAD origin) in 0-based pixels.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import scipy.spatial

from nemo_jax.data.scenes.primitives import Model
from nemo_jax.geometry import project_pascal3d
from nemo_jax.geometry.camera import camera_centre
from nemo_jax.mesh.padding import round_up

FOCAL, VIEWPORT = 1.0, 3000.0
IMAGE_SIZES = ((375, 500), (333, 500), (500, 375), (400, 400))
IMAGE_SIZE_WEIGHTS = (0.55, 0.15, 0.15, 0.15)
#: The largest image: every scene renders on this canvas and is cut to its own size.
CANVAS = (500, 500)
TRUNCATED_FRACTION = 0.12


@dataclasses.dataclass(frozen=True)
class SceneView:
    """One photograph's camera, object placement and light.

    Attributes:
      height, width: image size in pixels.
      azimuth, elevation, theta: DEGREES (PASCAL3D+ annotation convention).
      distance: camera distance to the CAD origin, CAD units.
      px, py: principal point, 0-based pixels (the CAD origin's projection).
      light: ``[3]`` unit vector from the object towards the light, CAD frame.
      truncated: the object's box runs over the image border.
    """

    height: int
    width: int
    azimuth: float
    elevation: float
    theta: float
    distance: float
    px: float
    py: float
    light: np.ndarray
    truncated: bool


def hull_points(model: Model) -> np.ndarray:
    """``[N, 3]`` the model's convex-hull vertices (their projection has the model's 2D box),
    padded to a multiple of 256 rows by repeating the first (one compile for every procedural
    model: their hulls have at most 163 vertices)."""
    v = model.vertices.astype(np.float32)
    v = v[scipy.spatial.ConvexHull(v).vertices]
    return np.concatenate([v, np.repeat(v[:1], round_up(len(v), 256) - len(v), 0)])


@jax.jit
def _project(points, azimuth, elevation, theta, distance):
    return project_pascal3d(points, azimuth, elevation, theta, distance, 0.0, 0.0, FOCAL, VIEWPORT)


@jax.jit
def _light(azimuth, elevation):
    return camera_centre(azimuth, elevation, jnp.float32(1.0))


def projected_box(points: np.ndarray, azimuth, elevation, theta, distance) -> np.ndarray:
    """``(u0, v0, u1, v1)`` box of ``points [N, 3]`` projected with the principal point at (0, 0);
    angles in DEGREES."""
    args = (np.float32(a) for a in (azimuth, elevation, theta, distance))
    uv = np.asarray(_project(np.asarray(points, np.float32), *args))
    return np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])


def sample_angles(rng: np.random.Generator) -> tuple[float, float, float]:
    """``(azimuth, elevation, theta)`` in DEGREES from the module's distributions."""
    azimuth = float(rng.uniform(0, 360))
    elevation = float(np.clip(rng.normal(8.0, 12.0), -20.0, 60.0))
    theta = float(np.clip(rng.normal(0.0, 4.0), -15.0, 15.0))
    return azimuth, elevation, theta


def _place(rng, lo: float, hi: float, size: int, truncate: bool) -> tuple[float, bool]:
    """The principal point's coordinate putting ``[lo, hi]`` (box relative to it) inside
    ``[0, size - 1]`` (or over one border by 5-30 % of its length when ``truncate``)."""
    first, last = -lo, size - 1 - hi
    if truncate:
        cut = rng.uniform(0.05, 0.3) * (hi - lo)
        return (first - cut if rng.random() < 0.5 else last + cut), True
    if last < first:  # larger than the image along this axis (strong perspective): centre it
        return (first + last) / 2, True
    return float(rng.uniform(first, last)), False


def sample_view(
    rng: np.random.Generator,
    model: Model,
    fill=(0.45, 0.92),
    image_size: tuple[int, int] | None = None,
    truncation: float = TRUNCATED_FRACTION,
) -> SceneView:
    """A random :class:`SceneView` of ``model`` (see the module docstring for the distributions).

    ``fill``: range of the box's share of the image along its tighter side; ``image_size``:
    ``(H, W)`` instead of a random ImageNet-like size; ``truncation``: the share of views whose
    box runs over a border.
    """
    if image_size is None:
        height, width = IMAGE_SIZES[rng.choice(len(IMAGE_SIZES), p=IMAGE_SIZE_WEIGHTS)]
    else:
        height, width = image_size
    azimuth, elevation, theta = sample_angles(rng)
    points = hull_points(model)
    reference = 10.0
    u0, v0, u1, v1 = projected_box(points, azimuth, elevation, theta, reference)
    scale = rng.uniform(*fill) * min(width / (u1 - u0), height / (v1 - v0))
    distance = reference / scale
    u0, v0, u1, v1 = projected_box(points, azimuth, elevation, theta, distance)
    truncate = rng.random() < truncation
    axis = int(rng.integers(2))
    px, cut_x = _place(rng, u0, u1, width, truncate and axis == 0)
    py, cut_y = _place(rng, v0, v1, height, truncate and axis == 1)
    light_az = np.deg2rad(azimuth + rng.uniform(-110, 110))
    light_el = np.deg2rad(rng.uniform(15, 75))
    light = np.asarray(_light(np.float32(light_az), np.float32(light_el)), np.float32)
    return SceneView(
        height=int(height),
        width=int(width),
        azimuth=azimuth,
        elevation=elevation,
        theta=theta,
        distance=float(distance),
        px=float(px),
        py=float(py),
        light=light / np.linalg.norm(light),
        truncated=bool(cut_x or cut_y),
    )
