"""Flip augmentation: the pose flip + vertex re-indexing keeps projections consistent."""

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax import mesh
from nemo_jax.geometry import camera_from_viewpoint, project, to_camera_frame
from nemo_jax.train import augment


def _project(v, az, el, th, px, py):
    cam = camera_from_viewpoint(az, el, th, 5.0, px, py, 1.0, 200.0)
    return np.asarray(project(to_camera_frame(jnp.asarray(v), cam), cam))


def test_flip_keeps_projections_consistent_and_is_involution():
    width, height = 48, 32
    v, _ = mesh.cuboid_mesh([-1, -0.5, -0.3], [1, 0.5, 0.3], 120)
    perm = mesh.mirror_permutation(v)
    rng = np.random.default_rng(0)
    for _ in range(4):
        az, el, th = rng.uniform(0, 6.28), rng.uniform(-0.3, 0.6), rng.uniform(-0.3, 0.3)
        px, py = rng.uniform(20, 28), rng.uniform(12, 20)
        kp = _project(v, az, el, th, px, py)
        ex = {
            "image": jnp.asarray(rng.integers(0, 255, (height, width, 3)), jnp.uint8),
            "azimuth": jnp.float32(az), "theta": jnp.float32(th), "px": jnp.float32(px),
            "kp2d": jnp.asarray(kp, jnp.float32), "visible": jnp.asarray(rng.uniform(size=len(v)) < 0.5),
        }  # fmt: skip
        flipped = augment.flip_example(ex, jnp.bool_(True), jnp.asarray(perm))
        np.testing.assert_array_equal(np.asarray(flipped["image"]), np.asarray(ex["image"])[:, ::-1])
        # projections recomputed from the flipped pose == the flipped, re-indexed keypoints
        kp_pose = _project(
            v, float(flipped["azimuth"]), el, float(flipped["theta"]), float(flipped["px"]), py
        )
        np.testing.assert_allclose(kp_pose, np.asarray(flipped["kp2d"]), atol=1e-3)
        np.testing.assert_array_equal(np.asarray(flipped["visible"]), np.asarray(ex["visible"])[perm])
        twice = augment.flip_example(flipped, jnp.bool_(True), jnp.asarray(perm))
        for k in ex:
            np.testing.assert_allclose(np.asarray(twice[k]), np.asarray(ex[k]), atol=1e-4)
        same = augment.flip_example(ex, jnp.bool_(False), jnp.asarray(perm))
        for k in ex:
            np.testing.assert_array_equal(np.asarray(same[k]), np.asarray(ex[k]))


def test_colour_jitter_identity_at_zero_and_bounded():
    img = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (8, 8, 3)), jnp.float32)
    same = augment.colour_jitter(jax.random.PRNGKey(0), img, 0.0, 0.0, 0.0)
    np.testing.assert_allclose(np.asarray(same), np.asarray(img), atol=1e-3)
    out = np.asarray(augment.colour_jitter(jax.random.PRNGKey(1), img, 0.5, 0.5, 0.5))
    assert out.min() >= 0 and out.max() <= 255 and not np.allclose(out, np.asarray(img))


def test_flip_mirrors_the_visibility_box():
    width = 96
    example = {"image": jnp.zeros((64, width, 3)), "azimuth": jnp.float32(0.3), "theta": jnp.float32(0.1),
               "px": jnp.float32(40.0), "box": jnp.array([10.0, 5.0, 30.5, 60.0])}  # fmt: skip
    out = augment.flip_example(example, jnp.bool_(True))
    np.testing.assert_allclose(np.asarray(out["box"]), [width - 1 - 30.5, 5.0, width - 1 - 10.0, 60.0])
    same = augment.flip_example(example, jnp.bool_(False))
    np.testing.assert_allclose(np.asarray(same["box"]), np.asarray(example["box"]))
