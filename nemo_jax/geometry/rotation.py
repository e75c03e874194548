"""Rotations in the PASCAL3D+ / NeMo convention.

All angles here are in RADIANS (annotation files store degrees: convert with ``jnp.deg2rad`` first;
``camera.project_pascal3d`` is the one public entry point that takes degrees).

The PASCAL3D+ toolkit (``project_3d.m``) places the camera on a sphere around the object:
azimuth ``a`` turns about the CAD frame's +z (up) axis, elevation ``e`` lifts the camera above the
xy-plane, and the in-plane angle ``theta`` turns the image about the optical axis. The world-to-camera
rotation of the toolkit is ``R_pascal = Rx(e - pi/2) @ Rz(-a)``, mapping the CAD frame to an OpenGL-style
camera frame (x right, y up, looking down -z). NeMo evaluates ``R = Rz(theta) @ R_pascal`` (its
``rotation_theta(theta) @ get_transformation_matrix(...)``) and so does this module.

Every function is pure jax.numpy: jit/vmap/grad-safe, with finite gradients everywhere (including
at 0 and 180 degrees of rotation error). Leading batch dimensions broadcast.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rotation_x(angle: jax.Array) -> jax.Array:
    """Right-handed rotation about +x by ``angle`` radians. ``[...] -> [..., 3, 3]``."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    o, z = jnp.ones_like(c), jnp.zeros_like(c)
    return jnp.stack([jnp.stack([o, z, z], -1), jnp.stack([z, c, -s], -1), jnp.stack([z, s, c], -1)], -2)


def rotation_z(angle: jax.Array) -> jax.Array:
    """Right-handed rotation about +z by ``angle`` radians. ``[...] -> [..., 3, 3]``.

    This is also NeMo's ``rotation_theta``: the in-plane rotation of the image.
    """
    c, s = jnp.cos(angle), jnp.sin(angle)
    o, z = jnp.ones_like(c), jnp.zeros_like(c)
    return jnp.stack([jnp.stack([c, -s, z], -1), jnp.stack([s, c, z], -1), jnp.stack([z, z, o], -1)], -2)


def pascal_rotation(azimuth: jax.Array, elevation: jax.Array) -> jax.Array:
    """The toolkit's world-to-camera rotation ``Rx(e - pi/2) @ Rz(-a)`` (OpenGL camera frame).

    Args:
      azimuth, elevation: radians, any (broadcastable) shape ``[...]``.
    Returns:
      ``[..., 3, 3]``.
    """
    return rotation_x(elevation - jnp.pi / 2) @ rotation_z(-azimuth)


def rotation_from_viewpoint(azimuth: jax.Array, elevation: jax.Array, theta: jax.Array) -> jax.Array:
    """NeMo's rotation matrix ``Rz(theta) @ Rx(e - pi/2) @ Rz(-a)`` (radians). ``[...] -> [..., 3, 3]``.

    This is the matrix the rotation error is computed on (NeMo's ``cal_rotation_matrix``).
    """
    return rotation_z(theta) @ pascal_rotation(azimuth, elevation)


def matrix_to_viewpoint(rotation: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Inverse of :func:`rotation_from_viewpoint`.

    Args:
      rotation: ``[..., 3, 3]`` rotation in NeMo's convention.
    Returns:
      ``(azimuth in [0, 2pi), elevation in [-pi/2, pi/2], theta in (-pi, pi])``, radians. At
      elevation +-90 degrees azimuth and theta are not separable; the split returned there is
      arbitrary but finite.
    """
    r = rotation
    # Third row is Rx(e - pi/2)'s third row times Rz(-a): [-cos e sin(-a), -cos e cos(-a), sin e].
    elevation = jnp.arctan2(r[..., 2, 2], jnp.hypot(r[..., 2, 0], r[..., 2, 1]))
    azimuth = jnp.mod(-jnp.arctan2(-r[..., 2, 0], -r[..., 2, 1]), 2 * jnp.pi)
    # Third column is Rz(theta) @ [0, cos e, sin e]: [-sin t cos e, cos t cos e, sin e].
    theta = jnp.arctan2(-r[..., 0, 2], r[..., 1, 2])
    return azimuth, elevation, theta


def _safe_norm(x: jax.Array, axis: int = -1) -> jax.Array:
    """Euclidean norm whose gradient is 0 (not NaN) at the origin."""
    sq = jnp.sum(x * x, axis=axis)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def rotation_angle(rotation: jax.Array) -> jax.Array:
    """Angle (radians, in [0, pi]) of a rotation matrix ``[..., 3, 3]``.

    Computed as ``atan2(|vee(R - R^T)| / 2, (tr R - 1) / 2)``, which equals
    ``||logm(R)||_F / sqrt(2)`` and, unlike ``arccos``, has finite gradients at 0 and pi.
    """
    r = rotation
    axis = jnp.stack(
        [r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1
    )
    trace = r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2]
    return jnp.arctan2(0.5 * _safe_norm(axis), 0.5 * (trace - 1.0))


def geodesic_distance(rotation_a: jax.Array, rotation_b: jax.Array) -> jax.Array:
    """NeMo's rotation error ``||logm(A^T B)||_F / sqrt(2)`` in radians. ``[..., 3, 3] -> [...]``."""
    return rotation_angle(jnp.swapaxes(rotation_a, -1, -2) @ rotation_b)
