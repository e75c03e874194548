"""The pose search's faster forms against the plain forms they replace, on random scenes: the same
values and gradients to float tolerance (every speed change of the render and the objective is
exact; approximations are options, off by default)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemo_jax.geometry import camera_from_viewpoint
from nemo_jax.inference.objective import clutter_similarity, nemo_loss, similarity_table
from nemo_jax.mesh import cuboid_mesh
from nemo_jax.render import RasterSettings, project_primitives
from nemo_jax.render.hard import interpolate_table, rasterize
from nemo_jax.render.screen import tile_pairs

H, W, C = 24, 40, 16


def plain_interpolate_table(frags, faces, table):
    """``[V, H*W]`` table -> ``[H, W]`` with three separate 1-D gathers (the plain form)."""
    h, w = frags.face_index.shape
    index = jnp.maximum(frags.face_index, 0).reshape(-1)
    bary = frags.bary.reshape(h * w, 3)
    flat, pixel = table.reshape(-1), jnp.arange(h * w, dtype=jnp.int32)
    values = [flat[faces[:, k][index] * (h * w) + pixel] for k in range(3)]
    return (bary[:, 0] * values[0] + bary[:, 1] * values[1] + bary[:, 2] * values[2]).reshape(h, w)


def scene(seed):
    """A bumpy cuboid, unit vertex and observed features, a clutter feature and a random pose."""
    rng = np.random.default_rng(seed)
    verts, faces = cuboid_mesh([-0.5, -0.3, -0.25], [0.5, 0.3, 0.25], 300)
    verts = verts * rng.uniform(0.85, 1.15, (len(verts), 1))
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    feats = unit(rng.normal(size=(len(verts), C)))
    observed = unit(rng.normal(size=(H, W, C)))
    clutter = unit(rng.normal(size=C))
    pose = np.array([rng.uniform(0, 2 * np.pi), rng.uniform(-0.5, 1.0), rng.uniform(-0.5, 0.5), 3.0])
    arrays = (verts, faces, feats, observed, clutter, pose)
    return tuple(jnp.asarray(a, jnp.int32 if a is faces else jnp.float32) for a in arrays)


def loss_with(interpolate, settings, verts, faces, feats, observed, clutter):
    table = similarity_table(feats, observed)
    clutter_sim = clutter_similarity(observed, clutter)

    def loss(pose):
        cam = camera_from_viewpoint(pose[0], pose[1], pose[2], pose[3], W / 2, H / 2, 1.0, 50.0)
        screen = project_primitives(verts, faces, cam, settings)
        frags = rasterize(screen, tile_pairs(screen, settings), settings)
        values = interpolate(frags, screen.faces, table)
        return nemo_loss(values, clutter_sim), values

    return loss


@pytest.mark.parametrize(("seed", "cull"), [(0, False), (1, True)])
def test_table_interpolation_matches_plain_form(seed, cull):
    settings = RasterSettings(height=H, width=W, tile_height=4, tile_width=4, cull_backfaces=cull)
    verts, faces, feats, observed, clutter, pose = scene(seed)
    fast = loss_with(interpolate_table, settings, verts, faces, feats, observed, clutter)
    plain = loss_with(plain_interpolate_table, settings, verts, faces, feats, observed, clutter)
    (loss_f, values_f), grad_f = jax.jit(jax.value_and_grad(fast, has_aux=True))(pose)
    (loss_p, values_p), grad_p = jax.jit(jax.value_and_grad(plain, has_aux=True))(pose)
    assert np.count_nonzero(np.asarray(values_p)) > 50  # the object is in view
    np.testing.assert_allclose(values_f, values_p, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(loss_f, loss_p, rtol=1e-6, atol=1e-7)
    assert np.abs(np.asarray(grad_p)).max() > 0  # the gradient is not trivially zero
    np.testing.assert_allclose(grad_f, grad_p, rtol=1e-5, atol=1e-6)
