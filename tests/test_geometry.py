"""PASCAL3D+ camera geometry and rotations against direct float64 transcriptions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.test_util import check_grads

from nemo_jax.geometry import (
    camera_from_viewpoint,
    geodesic_distance,
    matrix_to_viewpoint,
    project_pascal3d,
    rotation_from_viewpoint,
    to_camera_frame,
)


def toolkit_project_3d(x3d, azimuth, elevation, theta, distance, px, py, focal, viewport):
    """Line-by-line float64 transcription of the PASCAL3D+ toolkit's project_3d.m (degrees in)."""
    a, e, theta = np.deg2rad(azimuth), np.deg2rad(elevation), np.deg2rad(theta)
    d = distance
    C = np.array([d * np.cos(e) * np.sin(a), -d * np.cos(e) * np.cos(a), d * np.sin(e)])
    a = -a
    e = -(np.pi / 2 - e)
    Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    Rx = np.array([[1, 0, 0], [0, np.cos(e), -np.sin(e)], [0, np.sin(e), np.cos(e)]])
    R = Rx @ Rz
    M = viewport
    P = np.array([[M * focal, 0, 0], [0, M * focal, 0], [0, 0, -1]]) @ np.concatenate(
        [R, -R @ C[:, None]], axis=1
    )
    x = P @ np.concatenate([x3d, np.ones((len(x3d), 1))], axis=1).T
    x = x[:2] / x[2]
    R2d = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    x = (R2d @ x).T
    x[:, 1] = -x[:, 1]
    return x + np.array([px, py])


def nemo_rotation(azimuth, elevation, theta):
    """NeMo's cal_rotation_matrix (radians): rotation_theta(theta) @ get_transformation_matrix."""
    a, e = -azimuth, -(np.pi / 2 - elevation)
    Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    Rx = np.array([[1, 0, 0], [0, np.cos(e), -np.sin(e)], [0, np.sin(e), np.cos(e)]])
    Rt = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    return Rt @ Rx @ Rz


def random_viewpoints(rng, n):
    return [
        dict(
            azimuth=rng.uniform(0, 360),
            elevation=rng.uniform(-89, 89),
            theta=rng.uniform(-180, 180),
            distance=rng.uniform(2.0, 30.0),
            px=rng.uniform(0, 500),
            py=rng.uniform(0, 400),
            focal=1.0,
            viewport=3000.0,
        )
        for _ in range(n)
    ]


def test_project_pascal3d_matches_toolkit_float64():
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.5, 0.5, (50, 3))
    with jax.enable_x64(True):
        for vp in random_viewpoints(rng, 40):
            expected = toolkit_project_3d(points, **vp)
            got = np.asarray(project_pascal3d(jnp.asarray(points, jnp.float64), **vp))
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)


def test_project_pascal3d_matches_toolkit_float32():
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.5, 0.5, (50, 3)).astype(np.float32)
    for vp in random_viewpoints(rng, 40):
        expected = toolkit_project_3d(points.astype(np.float64), **vp)
        got = np.asarray(project_pascal3d(points, **vp))
        np.testing.assert_allclose(got, expected, atol=1e-2, rtol=0)


def test_camera_frame_is_opencv_and_origin_on_axis():
    cam = camera_from_viewpoint(0.3, 0.2, 0.1, 7.0, 10.0, 20.0)
    origin = to_camera_frame(jnp.zeros((1, 3)), cam)[0]
    np.testing.assert_allclose(origin, [0.0, 0.0, 7.0], atol=1e-5)
    rot = np.asarray(cam.rotation)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
    assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-6)
    # Zero elevation, zero theta: CAD +z (up) points to image up, i.e. camera -y.
    cam = camera_from_viewpoint(0.0, 0.0, 0.0, 5.0, 0.0, 0.0)
    up = np.asarray(cam.rotation) @ np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(up, [0.0, -1.0, 0.0], atol=1e-6)


def test_rotation_matches_nemo_and_round_trips():
    rng = np.random.default_rng(2)
    az = rng.uniform(0, 2 * np.pi, 64)
    el = rng.uniform(-1.4, 1.4, 64)
    th = rng.uniform(-np.pi + 1e-3, np.pi - 1e-3, 64)
    with jax.enable_x64(True):
        rot = np.asarray(rotation_from_viewpoint(jnp.asarray(az), jnp.asarray(el), jnp.asarray(th)))
        for i in range(64):
            np.testing.assert_allclose(rot[i], nemo_rotation(az[i], el[i], th[i]), atol=1e-12)
        a2, e2, t2 = matrix_to_viewpoint(jnp.asarray(rot))
    np.testing.assert_allclose(np.asarray(a2), az, atol=1e-9)
    np.testing.assert_allclose(np.asarray(e2), el, atol=1e-9)
    np.testing.assert_allclose(np.asarray(t2), th, atol=1e-9)


def test_geodesic_distance_matches_scipy_logm():
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        for _ in range(30):
            va = rng.uniform([0, -1.5, -3], [6.28, 1.5, 3])
            vb = rng.uniform([0, -1.5, -3], [6.28, 1.5, 3])
            ra, rb = nemo_rotation(*va), nemo_rotation(*vb)
            expected = np.linalg.norm(scipy.linalg.logm(ra.T @ rb).real) / np.sqrt(2)
            if expected > np.pi - 1e-3:  # logm is ill-conditioned at pi
                continue
            got = float(geodesic_distance(jnp.asarray(ra), jnp.asarray(rb)))
            assert got == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("offset", [0.0, np.pi])
def test_geodesic_gradients_finite_at_0_and_180_degrees(offset):
    def err(angles):
        ra = rotation_from_viewpoint(angles[0], angles[1], angles[2])
        rb = rotation_from_viewpoint(0.4, 0.3, 0.2 + offset)
        return geodesic_distance(ra, rb)

    at = jnp.array([0.4, 0.3, 0.2])
    value = err(at)
    grad = jax.grad(err)(at)
    assert float(value) == pytest.approx(offset, abs=1e-3)
    assert np.all(np.isfinite(np.asarray(grad)))
    # Away from the singular points the gradient is checked against finite differences.
    with jax.enable_x64(True):
        check_grads(jax.jit(err), (jnp.array([0.9, -0.2, 1.0], jnp.float64),), order=1, modes=("rev",))


def test_viewpoint_gradients_finite_at_0_and_180_degrees():
    def f(v):
        cam = camera_from_viewpoint(v[0], v[1], v[2], v[3], 0.0, 0.0)
        return jnp.sum(to_camera_frame(jnp.ones((2, 3)), cam) ** 2) + jnp.sum(cam.rotation)

    for v in ([0.0, 0.0, 0.0, 5.0], [np.pi, np.pi, np.pi, 5.0]):
        g = jax.grad(f)(jnp.array(v))
        assert np.all(np.isfinite(np.asarray(g)))
