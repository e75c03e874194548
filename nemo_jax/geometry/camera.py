"""Pinhole cameras in the PASCAL3D+ viewpoint convention.

Frames and units:
  * CAD (world) frame: the frame of the PASCAL3D+ CAD models that the viewpoint annotations refer to
    (+z up).
  * Camera frame (OpenCV style): x right, y down, z forward; ``z`` is the depth, positive in front of
    the camera. It is ``F @ Rz(theta) @ R_pascal @ (X - C)`` with ``F = diag(1, -1, -1)``, i.e. the
    toolkit's OpenGL-style frame flipped so that depth is positive and image y points down.
  * Pixels: ``u = px + f * x / z`` (right), ``v = py + f * y / z`` (down) with ``f = focal * viewport``.
    The toolkit's formula is reproduced exactly: feed it annotation values and you get the toolkit's
    (MATLAB, 1-based) pixel coordinates; feed it 0-based principal points and you get 0-based
    coordinates. The rasterizer puts pixel ``(row i, col j)``'s centre at ``(u, v) = (j, i)``.

Focal length, one meaning per name across the project:
  * ``focal`` with ``viewport`` (annotations, dataset fields, :func:`camera_from_viewpoint`): the
    PASCAL3D+ toolkit's pair; ``focal`` is 1 in every annotation and ``focal * viewport`` (3000) is
    the focal length in IMAGE pixels.
  * :attr:`Camera.focal`, ``focal_px`` (the pose search, :class:`nemo_jax.inference.SearchInputs`)
    and the figures' ``focal``: the focal length in PIXELS OF THE GRID BEING RENDERED -- image
    pixels, or feature-map pixels ``focal * viewport / stride`` when rendering at feature resolution.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax.geometry.rotation import rotation_from_viewpoint

# diag(1, -1, -1): the toolkit's OpenGL camera frame -> OpenCV camera frame.
_GL_TO_CV = jnp.array([1.0, -1.0, -1.0])


@flax.struct.dataclass
class Camera:
    """A pinhole camera. Unbatched shapes shown; vmap over a leading axis for many cameras.

    Attributes:
      rotation: ``[3, 3]`` world(CAD)-to-camera rotation, OpenCV camera frame.
      translation: ``[3]``; ``x_cam = rotation @ x_world + translation``.
      focal: ``[]`` focal length in pixels of the rendered grid (toolkit: ``focal * viewport``
        image pixels; divided by the stride at feature resolution).
      principal: ``[2]`` principal point ``(px, py)`` in the same pixels.
    """

    rotation: jax.Array
    translation: jax.Array
    focal: jax.Array
    principal: jax.Array


def camera_centre(azimuth: jax.Array, elevation: jax.Array, distance: jax.Array) -> jax.Array:
    """Camera centre in the CAD frame (toolkit's ``C``). Radians. ``[...] -> [..., 3]``."""
    ce = jnp.cos(elevation)
    return distance[..., None] * jnp.stack(
        [ce * jnp.sin(azimuth), -ce * jnp.cos(azimuth), jnp.sin(elevation)], -1
    )


def camera_from_viewpoint(
    azimuth: jax.Array,
    elevation: jax.Array,
    theta: jax.Array,
    distance: jax.Array,
    px: jax.Array,
    py: jax.Array,
    focal: jax.Array | float = 1.0,
    viewport: jax.Array | float = 3000.0,
) -> Camera:
    """Camera of a PASCAL3D+ viewpoint. Angles in RADIANS, scalars (vmap for batches).

    Args:
      azimuth, elevation, theta: viewpoint angles, radians.
      distance: camera distance to the CAD origin (CAD units), > 0.
      px, py: principal point, pixels.
      focal, viewport: toolkit focal length (1 in PASCAL3D+) and viewport (3000 pixels); the focal
        length in pixels is their product (pass ``focal_px, 1.0`` for a focal length in pixels).
    """
    dtype = jnp.result_type(azimuth, float)
    azimuth, elevation, theta, distance = (
        jnp.asarray(a, dtype) for a in (azimuth, elevation, theta, distance)
    )
    rot = _GL_TO_CV.astype(dtype)[:, None] * rotation_from_viewpoint(azimuth, elevation, theta)
    # C = distance * unit vector, and rot @ unit = (0, 0, 1) in the camera frame, so t = -rot @ C
    # is (0, 0, distance) exactly: the CAD origin sits on the optical axis at depth `distance`.
    centre = camera_centre(azimuth, elevation, distance)
    translation = -(rot @ centre)
    return Camera(
        rotation=rot,
        translation=translation,
        focal=jnp.asarray(focal, dtype) * jnp.asarray(viewport, dtype),
        principal=jnp.stack([jnp.asarray(px, dtype), jnp.asarray(py, dtype)]),
    )


def to_camera_frame(points: jax.Array, camera: Camera) -> jax.Array:
    """CAD-frame points ``[N, 3]`` -> camera-frame points ``[N, 3]`` (OpenCV, z = depth)."""
    return points @ camera.rotation.T + camera.translation


def project(points_cam: jax.Array, camera: Camera) -> jax.Array:
    """Camera-frame points ``[N, 3]`` -> pixels ``[N, 2]`` (x right, y down).

    Points at or behind the camera (z <= 0) have no image; their output is the plain formula's value
    (inf or sign-flipped), as in the toolkit. The rasterizer masks such points itself.
    """
    return camera.principal + camera.focal * points_cam[:, :2] / points_cam[:, 2:3]


def project_pascal3d(
    points: jax.Array,
    azimuth: jax.Array | float,
    elevation: jax.Array | float,
    theta: jax.Array | float,
    distance: jax.Array | float,
    px: jax.Array | float,
    py: jax.Array | float,
    focal: jax.Array | float = 1.0,
    viewport: jax.Array | float = 3000.0,
) -> jax.Array:
    """The PASCAL3D+ toolkit's ``project_3d``: CAD points to pixels. Stable public API.

    Args:
      points: ``[N, 3]`` points in the CAD frame.
      azimuth, elevation, theta: DEGREES, as stored in the annotation files.
      distance, px, py, focal, viewport: as in the annotation's ``viewpoint`` struct.
    Returns:
      ``[N, 2]`` pixel coordinates (x right, y down) in the frame of ``(px, py)``.

    Jittable and unchecked: non-finite angles or a zero distance give NaN/inf coordinates, not an
    error. For host-side use on values read from files or the command line, call
    :func:`check_viewpoint` first, or use :func:`checked_project_pascal3d`.
    """
    points = jnp.asarray(points)
    dtype = jnp.result_type(points, float)
    camera = camera_from_viewpoint(
        *(jnp.deg2rad(jnp.asarray(a, dtype)) for a in (azimuth, elevation, theta)),
        distance=jnp.asarray(distance, dtype),
        px=jnp.asarray(px, dtype),
        py=jnp.asarray(py, dtype),
        focal=focal,
        viewport=viewport,
    )
    return project(to_camera_frame(points.astype(dtype), camera), camera)


def check_viewpoint(prefix: str = "", **values) -> None:
    """Host-side check of viewpoint values (``azimuth=...``, ``distance=...``, ...): every value must
    be a finite number, and ``distance``, ``focal`` and ``viewport`` must be > 0.

    Raises ``ValueError`` naming the first bad value as ``{prefix}{name}`` (e.g. ``prefix='--'`` for
    a command-line tool)."""
    for name, value in values.items():
        x = np.asarray(value, np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{prefix}{name}: must be a finite number, got {value}")
        if name in ("distance", "focal", "viewport") and not np.all(x > 0):
            raise ValueError(f"{prefix}{name}: must be > 0, got {value}")


def checked_project_pascal3d(points, azimuth, elevation, theta, distance, px, py, focal=1.0, viewport=3000.0):
    """:func:`project_pascal3d` after :func:`check_viewpoint` of its arguments and a finiteness
    check of ``points`` ``[N, 3]``: a ``ValueError`` naming the bad argument instead of NaN pixels."""
    check_viewpoint(
        azimuth=azimuth, elevation=elevation, theta=theta, distance=distance, px=px, py=py, focal=focal,
        viewport=viewport,
    )  # fmt: skip
    if not np.all(np.isfinite(np.asarray(points, np.float64))):
        raise ValueError("points: must be finite")
    return project_pascal3d(points, azimuth, elevation, theta, distance, px, py, focal, viewport)


def feature_coordinates(points: jax.Array, stride: int) -> jax.Array:
    """Image pixel coordinates ``[..., 2]`` (x, y; pixel centres at integers) -> feature-map
    coordinates of a stride-``stride`` map whose cell ``j`` covers pixels ``[s*j, s*j + s - 1]``
    (cell centres at integers): ``(p - (s - 1) / 2) / s``."""
    return (points - 0.5 * (stride - 1)) / stride


def scale_camera(camera: Camera, stride: int) -> Camera:
    """The camera of an image downsampled by ``stride`` (cell ``j`` covers pixels
    ``[s*j, s*j + s - 1]``): focal length (pixels) over ``stride``, principal point through
    :func:`feature_coordinates`."""
    return camera.replace(
        focal=camera.focal / stride, principal=feature_coordinates(camera.principal, stride)
    )
