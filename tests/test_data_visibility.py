"""Rasterizer-based vertex visibility of the neural mesh."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax.data import project_with_visibility
from nemo_jax.geometry import camera_from_viewpoint, project_pascal3d
from nemo_jax.mesh import cuboid_mesh
from nemo_jax.render import RasterSettings
from nemo_jax.render.visibility import default_tolerance

visibility = jax.jit(project_with_visibility, static_argnames=("settings",))


def test_cube_front_visible_back_hidden():
    vertices, faces = cuboid_mesh([-0.5, -0.5, -0.5], [0.5, 0.5, 0.5], 100)
    # azimuth 0, elevation 0: the camera sits on -y looking at the y = -0.5 face.
    cam = camera_from_viewpoint(0.0, 0.0, 0.0, 200.0, 15.5, 15.5)
    settings = RasterSettings(height=32, width=32, cull_backfaces=True)
    kp, vis, overflow = visibility(jnp.asarray(vertices), jnp.asarray(faces), cam, settings)
    vis = np.asarray(vis)
    assert int(overflow) == 0
    np.testing.assert_allclose(kp, project_pascal3d(vertices, 0.0, 0.0, 0.0, 200.0, 15.5, 15.5), atol=1e-3)
    front = np.isclose(vertices[:, 1], -0.5)
    back = np.isclose(vertices[:, 1], 0.5)
    assert vis[front].all() and not vis[back].any()
    # Side-face vertices strictly behind the front face are hidden.
    assert not vis[~front].any()
    # Padding (zero vertices, -1 faces) does not change the depth tolerance.
    pv = np.concatenate([vertices, np.zeros((7, 3), np.float32)])
    pf = np.concatenate([faces, -np.ones((9, 3), np.int32)])
    np.testing.assert_allclose(default_tolerance(pv, pf), default_tolerance(vertices, faces), rtol=1e-6)
    # Outside the image: nothing is visible.
    far = camera_from_viewpoint(0.0, 0.0, 0.0, 200.0, 200.0, 15.5)
    _, vis_far, _ = visibility(jnp.asarray(vertices), jnp.asarray(faces), far, settings)
    assert not np.asarray(vis_far).any()
