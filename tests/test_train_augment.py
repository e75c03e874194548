"""Flip augmentation: the pose flip + vertex re-indexing keeps projections consistent. Shift and
scale: the moved camera projects where the warped image shows the content."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax import mesh
from nemo_jax.geometry import camera_from_viewpoint, project, to_camera_frame
from nemo_jax.train import augment, step


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


def _similarity(points, scale, shift, width, height):
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    return scale * (np.asarray(points, np.float64) - centre) + centre + np.asarray(shift)


def test_shift_scale_camera_projects_the_moved_points():
    width, height = 64, 48
    v, _ = mesh.cuboid_mesh([-1, -0.5, -0.3], [1, 0.5, 0.3], 120)
    rng = np.random.default_rng(1)
    for _ in range(4):
        az, el, th = rng.uniform(0, 6.28), rng.uniform(-0.3, 0.6), rng.uniform(-0.3, 0.3)
        px, py = rng.uniform(28, 36), rng.uniform(20, 28)
        shift, scale = rng.uniform(-12, 12, 2), np.exp(rng.uniform(np.log(0.8), np.log(1.25)))
        cam = camera_from_viewpoint(az, el, th, 78.0, px, py, 1.0, 3000.0)
        kp = np.asarray(project(to_camera_frame(jnp.asarray(v), cam), cam))
        ex = {
            "image": jnp.zeros((height, width, 3)), "px": jnp.float32(px), "py": jnp.float32(py),
            "focal": jnp.float32(1.0), "kp2d": jnp.asarray(kp), "box": jnp.array([-0.5, -0.5, 63.5, 47.5]),
        }  # fmt: skip
        out = augment.shift_scale_example(ex, jnp.asarray(shift, jnp.float32), jnp.float32(scale))
        moved = camera_from_viewpoint(az, el, th, 78.0, out["px"], out["py"], out["focal"], 3000.0)
        kp_moved = np.asarray(project(to_camera_frame(jnp.asarray(v), moved), moved))
        expected = _similarity(kp, scale, shift, width, height)
        np.testing.assert_allclose(kp_moved, expected, atol=1e-4)
        np.testing.assert_allclose(np.asarray(out["kp2d"]), expected, atol=1e-4)
        box = _similarity(np.array([[-0.5, -0.5], [63.5, 47.5]]), scale, shift, width, height).ravel()
        np.testing.assert_allclose(np.asarray(out["box"]), box, atol=1e-4)


def test_shift_scale_moves_the_image_where_the_camera_says():
    width, height = 64, 48
    yy, xx = np.mgrid[0:height, 0:width]
    for blob, shift, scale in [((20.0, 30.0), (7.3, -4.6), 1.2), ((40.5, 15.2), (-9.0, 5.5), 0.83)]:
        img = 255 * np.exp(-((xx - blob[0]) ** 2 + (yy - blob[1]) ** 2) / (2 * 1.5**2))
        mask = ((xx - blob[0]) ** 2 + (yy - blob[1]) ** 2 <= 9).astype(np.uint8)
        ex = {
            "image": jnp.asarray(np.repeat(img[..., None], 3, -1), jnp.float32),
            "px": jnp.float32(31.5), "py": jnp.float32(23.5), "focal": jnp.float32(1.0),
            "object_mask": jnp.asarray(mask),
        }  # fmt: skip
        out = augment.shift_scale_example(ex, jnp.asarray(shift, jnp.float32), jnp.float32(scale))
        warped = np.asarray(out["image"])[..., 0]
        centroid = np.array([np.sum(warped * xx), np.sum(warped * yy)]) / np.sum(warped)
        target = _similarity(blob, scale, shift, width, height)
        assert np.linalg.norm(centroid - target) < 0.5, (centroid, target)
        warped_mask = np.asarray(out["object_mask"])
        assert warped_mask.dtype == np.uint8 and set(np.unique(warped_mask)) <= {0, 1}
        mask_centre = np.array([xx[warped_mask > 0].mean(), yy[warped_mask > 0].mean()])
        assert np.linalg.norm(mask_centre - target) < 0.5, (mask_centre, target)
        # the principal point moved with the content
        principal = _similarity((31.5, 23.5), scale, shift, width, height)
        np.testing.assert_allclose([float(out["px"]), float(out["py"])], principal, atol=1e-4)
    same = augment.shift_scale_example(ex, jnp.zeros(2), jnp.float32(1.0))
    np.testing.assert_allclose(np.asarray(same["image"]), np.asarray(ex["image"]), atol=1e-3)


def _batch(rng, b=4, size=32):
    return {
        "image": jnp.asarray(rng.integers(0, 255, (b, size, size, 3)), jnp.uint8),
        "azimuth": jnp.asarray(rng.uniform(0, 6, b), jnp.float32),
        "elevation": jnp.asarray(rng.uniform(0, 0.5, b), jnp.float32),
        "theta": jnp.asarray(rng.uniform(-0.2, 0.2, b), jnp.float32),
        "distance": jnp.full(b, 5.0, jnp.float32),
        "px": jnp.full(b, (size - 1) / 2, jnp.float32), "py": jnp.full(b, (size - 1) / 2, jnp.float32),
        "focal": jnp.ones(b, jnp.float32), "viewport": jnp.full(b, 40.0, jnp.float32),
    }  # fmt: skip


def test_augment_batch_without_shift_scale_is_the_flip_and_jitter_of_before():
    rng = np.random.default_rng(2)
    batch, key = _batch(rng), jax.random.PRNGKey(3)
    cfg = step.StepConfig(image_size=(32, 32), feature_stride=4, flip_prob=0.5, brightness=0.2,
                          contrast=0.2, saturation=0.2)  # fmt: skip
    assert not step.shift_scale_on(cfg)
    out = step.augment_batch(key, batch, cfg, None)
    # the step as it was before the option: these draws from these keys, nothing else
    k_flip, k_jit = jax.random.split(key)
    ref = dict(batch, image=batch["image"].astype(jnp.float32))
    flips = jax.random.bernoulli(k_flip, 0.5, (4,))
    ref = jax.vmap(lambda ex, f: augment.flip_example(ex, f))(ref, flips)
    ref["image"] = jax.vmap(lambda k, im: augment.colour_jitter(k, im, 0.2, 0.2, 0.2))(
        jax.random.split(k_jit, 4), ref["image"]
    )
    assert set(out) == set(ref)
    for k in ref:
        np.testing.assert_array_equal(np.asarray(out[k]), np.asarray(ref[k]))
    # on: the same flips (pose fields), the camera moved and zoomed within the ranges
    on_cfg = dataclasses.replace(cfg, shift_px=4.0, scale_range=(0.8, 1.25))
    on = step.augment_batch(key, batch, on_cfg, None)
    for k in ("azimuth", "theta", "elevation", "distance", "viewport"):
        np.testing.assert_array_equal(np.asarray(on[k]), np.asarray(ref[k]))
    focal = np.asarray(on["focal"])
    assert not np.allclose(focal, 1.0) and np.all((focal >= 0.8 - 1e-6) & (focal <= 1.25 + 1e-6))
    assert np.all(np.abs(np.asarray(on["py"]) - 15.5) <= 4.0 + 1e-4)


def test_shift_scale_config_defaults_off():
    from nemo_jax import defaults

    config = defaults.base()
    assert config.train.shift_px == 0 and tuple(config.train.scale_range) == (1.0, 1.0)
    assert not step.shift_scale_on(step.StepConfig.from_config(config))
    config.train.shift_px, config.train.scale_range = 8.0, [0.8, 1.25]
    cfg = step.StepConfig.from_config(config)
    assert step.shift_scale_on(cfg) and cfg.scale_range == (0.8, 1.25) and cfg.shift_px == 8.0


def test_six_d_config_is_the_cpu_recipe_with_shift_scale_and_more_steps():
    """configs/synthetic_6d.py: synthetic_cpu.py's recipe, augmentation on, 1,600 steps; nothing else."""
    from configs import synthetic_6d, synthetic_cpu  # noqa: PLC0415

    for category in ("car", "chair"):
        six_d, base = synthetic_6d.get_config(category), synthetic_cpu.get_config(category)
        assert six_d.train.shift_px == 8.0 and tuple(six_d.train.scale_range) == (0.9, 1.11)
        assert six_d.train.steps == 1600
        for key in ("shift_px", "scale_range", "steps"):
            six_d.train[key] = base.train[key]
        assert six_d.to_dict() == base.to_dict()
