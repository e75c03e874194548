"""Vertex visibility from the rasterizer's z-buffer vs the analytic answer for a convex box."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemo_jax import mesh
from nemo_jax.geometry import camera_from_viewpoint
from nemo_jax.geometry.camera import camera_centre
from nemo_jax.train.visibility import vertex_view


def test_visibility_matches_front_facing_box_sides():
    lower, upper = np.array([-1.0, -0.6, -0.4]), np.array([1.0, 0.6, 0.4])
    v, f = mesh.cuboid_mesh(lower, upper, 200)
    for az, el, stride in ((0.7, 0.3, 1), (2.5, 0.35, 2), (4.0, 0.5, 2)):
        cam = camera_from_viewpoint(az, el, 0.1, 6.0, 47.5, 31.5, 1.0, 150.0)
        view = jax.jit(vertex_view, static_argnums=(3, 4, 5, 6, 7))(
            jnp.asarray(v), jnp.asarray(f), cam, (64, 96), 8, stride, 0.5, 8
        )
        assert int(view.overflow) == 0
        centre = np.asarray(camera_centre(jnp.float32(az), jnp.float32(el), jnp.float32(6.0)))
        # a box vertex is visible iff it lies on a side whose outward normal faces the camera
        want = np.zeros(len(v), bool)
        for axis in range(3):
            for bound, sign in ((lower[axis], -1), (upper[axis], 1)):
                on_side = np.isclose(v[:, axis], bound, atol=1e-5)
                if sign * (centre[axis] - bound) > 0:
                    want |= on_side
        got = np.asarray(view.visible)
        # vertices of grazing sides (seen at < ~10 degrees) may be missed at low render resolution, never the
        # reverse (a hidden vertex reported visible)
        assert np.sum(got & ~want) <= 1, (az, el)
        assert np.mean(got == want) > 0.93, (az, el, np.sum(got != want))
        assert 0 < want.sum() < len(v)
        mask = np.asarray(view.object_mask)
        assert mask.shape == (8, 12) and 0 < mask.sum() < mask.size


def test_visibility_stops_at_the_box_and_the_image():
    """NeMo: a vertex counts only inside the object's box and the image, never on a crop's padding."""
    v, f = mesh.cuboid_mesh(np.array([-1.0, -0.6, -0.4]), np.array([1.0, 0.6, 0.4]), 200)
    fn = jax.jit(vertex_view, static_argnums=(3, 4, 5, 6, 7))
    # The object's centre near the right border: part of it projects outside the 64 x 96 image.
    cam = camera_from_viewpoint(0.7, 0.3, 0.1, 6.0, 90.0, 31.5, 1.0, 150.0)
    args = (jnp.asarray(v), jnp.asarray(f), cam, (64, 96), 8, 2, 0.5, 8)
    plain = fn(*args)
    boxed = fn(*args, box=jnp.array([-0.5, -0.5, 70.0, 63.5]))  # an object box ending at x = 70
    x = np.asarray(plain.points[:, 0])
    visible = np.asarray(plain.visible)
    assert np.any(x > 95.5) and not np.any(visible & (x > 95.5))  # off the image: never visible
    assert np.any(visible & (x > 70.0))
    np.testing.assert_array_equal(np.asarray(boxed.visible), visible & (x <= 70.0))
    assert np.asarray(boxed.visible).sum() > 0


def _two_view_batch():
    """Two images of a 96 x 64 crop, the object's centre near the right border, each with a box."""
    b = 2
    return {
        "azimuth": jnp.array([0.7, 2.5]),
        "elevation": jnp.array([0.3, 0.35]),
        "theta": jnp.array([0.1, -0.1]),
        "distance": jnp.array([6.0, 6.0]),
        "px": jnp.array([70.0, 40.0]),
        "py": jnp.array([31.5, 30.0]),
        "focal": jnp.ones(b),
        "viewport": jnp.full(b, 150.0),
        "box": jnp.array([[30.0, 10.0, 80.0, 50.0], [20.0, 15.0, 55.0, 45.0]]),
    }


@pytest.mark.extended
def test_step_visibility_box_option_on_off_and_margin():
    """``visibility_in_box`` off: the whole image; on: the box; margin: the box grown by that fraction
    of its width / height on each side. Each matches a direct numpy mask of the projections."""
    from nemo_jax.mesh.neural import NeuralMesh
    from nemo_jax.train import step

    v, f = mesh.cuboid_mesh(np.array([-1.0, -0.6, -0.4]), np.array([1.0, 0.6, 0.4]), 200)
    m = NeuralMesh(vertices=jnp.asarray(v), faces=jnp.asarray(f), features=None, clutter=None)
    batch = _two_view_batch()
    base = dict(image_size=(64, 96), feature_stride=8, render_stride=2, render_tile=8)
    off = step.views(m, batch, step.StepConfig(**base, visibility_in_box=False))
    on = step.views(m, batch, step.StepConfig(**base, visibility_in_box=True))
    margin = 0.15
    grown_cfg = step.StepConfig(**base, visibility_in_box=True, visibility_box_margin=margin)
    grown = step.views(m, batch, grown_cfg)
    # without the box field, the option on is the whole image
    no_box = {k: x for k, x in batch.items() if k != "box"}
    on_no_box = step.views(m, no_box, step.StepConfig(**base, visibility_in_box=True))
    np.testing.assert_array_equal(np.asarray(on_no_box.visible), np.asarray(off.visible))

    points = np.asarray(off.points)  # [B, V, 2]
    plain = np.asarray(off.visible)
    box = np.asarray(batch["box"], np.float64)

    def inside(bx):
        x, y = points[..., 0], points[..., 1]
        return (x >= bx[:, None, 0]) & (x <= bx[:, None, 2]) & (y >= bx[:, None, 1]) & (y <= bx[:, None, 3])

    size = box[:, 2:] - box[:, :2]
    big = np.concatenate([box[:, :2] - margin * size, box[:, 2:] + margin * size], axis=1)
    # the mesh is partly outside each box, and the margin brings some of it back
    assert np.any(plain & ~inside(box), axis=1).all()
    assert np.any(plain & inside(big) & ~inside(box), axis=1).all()
    np.testing.assert_array_equal(np.asarray(on.visible), plain & inside(box))
    np.testing.assert_array_equal(np.asarray(grown.visible), plain & inside(big))
    # off: the box changes nothing (the same as a batch without one)
    off_no_box = step.views(m, no_box, step.StepConfig(**base))
    np.testing.assert_array_equal(plain, np.asarray(off_no_box.visible))


def test_step_config_reads_the_visibility_box_keys():
    from configs import nemo_pascal3d
    from nemo_jax import defaults as common
    from nemo_jax.train import step

    config = common.base()
    config.data.image_size = (64, 96)
    cfg = step.StepConfig.from_config(config)
    assert cfg.visibility_in_box is False and cfg.visibility_box_margin == 0.0
    assert step.StepConfig.from_config(nemo_pascal3d.get_config("car")).visibility_in_box is True
    config.train.visibility_box_margin = -0.1
    with pytest.raises(ValueError, match="config.train.visibility_box_margin"):
        step.StepConfig.from_config(config)
