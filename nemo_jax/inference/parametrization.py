"""Parameters the pose refinement optimises, and their map to the camera pose.

A pose is ``(azimuth, elevation, theta, distance)`` (RADIANS, CAD units; see
:func:`nemo_jax.geometry.camera_from_viewpoint`). The refinement's Adam steps act on a parameter
vector ``[4]``, one of:

* ``"angles"``: the pose itself, ``(azimuth, elevation, theta, distance)``; the distance moves only
  if the search asks for it (``SearchConfig.optimize_distance``).
* ``"camera_position"``: NeMo's ``MeshPoseSolveAll.py``: the camera centre ``C`` ``[3]`` in the CAD
  frame plus ``theta``. Azimuth, elevation AND distance move together; the camera looks at the CAD
  origin with the CAD frame's +z as up, which is NeMo's PyTorch3D ``look_at_rotation(C, up=+y)``:
  NeMo's world frame ``(x, y, z)`` is the CAD frame's ``(x, z, -y)``
  (PyTorch3D's ``C = d (cos e sin a, sin e, cos e cos a)``, here ``d (cos e sin a, -cos e cos a,
  sin e)``, :func:`nemo_jax.geometry.camera_centre`). That map only permutes axes and flips a sign,
  and Adam's per-coordinate update commutes with both, so the Adam trajectory is NeMo's.

The map back from ``C`` uses ``atan2`` only (``elevation = atan2(z, |(x, y)|)``, ``azimuth =
atan2(x, -y)``), never ``asin``/``acos``, and guards the two degenerate points: at the poles (``x =
y = 0``) and at ``C = 0`` the values and gradients stay finite (the pose there is arbitrary but
finite, as NeMo's look-at is undefined there too).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PARAMETRIZATIONS = ("angles", "camera_position")

_TINY = 1e-12


def _safe_hypot(x: jax.Array, y: jax.Array) -> jax.Array:
    """``sqrt(x^2 + y^2)`` with a finite (zero) gradient at the origin."""
    sq = x * x + y * y
    positive = sq > _TINY
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _safe_atan2(y: jax.Array, x: jax.Array) -> jax.Array:
    """``atan2(y, x)`` with value 0 and a zero gradient at ``x = y = 0`` (jnp's gives NaN there)."""
    degenerate = (x * x + y * y) <= _TINY
    return jnp.where(
        degenerate, 0.0, jnp.arctan2(jnp.where(degenerate, 0.0, y), jnp.where(degenerate, 1.0, x))
    )


def camera_position_from_pose(pose: jax.Array) -> jax.Array:
    """``[..., 4]`` (azimuth, elevation, theta, distance) -> ``[..., 4]`` (C_x, C_y, C_z, theta),
    ``C`` the camera centre in the CAD frame (CAD units)."""
    a, e, t, d = (pose[..., i] for i in range(4))
    ce = jnp.cos(e)
    return jnp.stack([d * ce * jnp.sin(a), -d * ce * jnp.cos(a), d * jnp.sin(e), t], -1)


def pose_from_camera_position(params: jax.Array) -> jax.Array:
    """``[..., 4]`` (C_x, C_y, C_z, theta) -> ``[..., 4]`` (azimuth, elevation, theta, distance).

    ``distance = |C|``, ``elevation = atan2(C_z, |(C_x, C_y)|)`` in ``[-pi/2, pi/2]``, ``azimuth =
    atan2(C_x, -C_y)`` in ``(-pi, pi]`` (NeMo's ``camera_position_to_spherical_angle``, with atan2
    in place of its ``atan`` + quadrant fix and ``asin``). Finite values and gradients everywhere.
    """
    x, y, z, t = (params[..., i] for i in range(4))
    horizontal = _safe_hypot(x, y)
    distance = _safe_hypot(horizontal, z)
    elevation = _safe_atan2(z, horizontal)
    azimuth = _safe_atan2(x, -y)
    return jnp.stack([azimuth, elevation, t, distance], -1)


def to_parameters(pose: jax.Array, parametrization: str) -> jax.Array:
    """Pose ``[..., 4]`` -> the refinement's parameter vector ``[..., 4]``."""
    if parametrization == "angles":
        return pose
    if parametrization == "camera_position":
        return camera_position_from_pose(pose)
    raise ValueError(f"parametrization: expected one of {PARAMETRIZATIONS}, got {parametrization!r}")


def to_pose(params: jax.Array, parametrization: str) -> jax.Array:
    """The refinement's parameter vector ``[..., 4]`` -> pose ``[..., 4]`` (inverse of
    :func:`to_parameters`, up to whole turns of the azimuth)."""
    if parametrization == "angles":
        return params
    if parametrization == "camera_position":
        return pose_from_camera_position(params)
    raise ValueError(f"parametrization: expected one of {PARAMETRIZATIONS}, got {parametrization!r}")


__all__ = [
    "PARAMETRIZATIONS",
    "camera_position_from_pose",
    "pose_from_camera_position",
    "to_parameters",
    "to_pose",
]
