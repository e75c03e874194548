"""Neural-mesh state, mirror permutation, MultiCuboid and CAD remeshing."""

import jax
import numpy as np
import pytest
import trimesh

from nemo_jax import mesh


def test_init_neural_mesh_shapes_and_units():
    v, f = mesh.cuboid_mesh([-1, -0.5, -0.3], [1, 0.5, 0.3], 100)
    nm = mesh.init_neural_mesh(jax.random.PRNGKey(0), v, f, feature_dim=8, clutter_size=12)
    assert nm.features.shape == (len(v), 8) and nm.clutter.shape == (12, 8)
    assert nm.num_vertices == len(v) and nm.feature_dim == 8
    np.testing.assert_allclose(np.linalg.norm(nm.features, axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(nm.clutter, axis=-1), 1.0, rtol=1e-5)
    leaves = jax.tree.leaves(nm)
    assert len(leaves) == 4  # a PyTree: vertices, faces, features, clutter
    with pytest.raises(ValueError, match="faces"):
        mesh.init_neural_mesh(jax.random.PRNGKey(0), v, f + len(v), 8, 12)


def test_mirror_permutation_is_involution_and_mirrors():
    lower, upper = mesh.symmetric_bounds([-0.9, -0.5, -0.3], [1.1, 0.5, 0.3])
    assert lower[0] == -1.1 and upper[0] == 1.1
    v, _ = mesh.cuboid_mesh(lower, upper, 300)
    perm = mesh.mirror_permutation(v)
    np.testing.assert_array_equal(perm[perm], np.arange(len(v)))
    np.testing.assert_allclose(v[perm] * [-1, 1, 1], v, atol=1e-5)
    assert np.sum(perm != np.arange(len(v))) > len(v) // 2


def test_mirror_permutation_rejects_asymmetric_mesh():
    v, _ = mesh.cuboid_mesh([-0.5, -0.5, -0.3], [1.0, 0.5, 0.3], 200)
    with pytest.raises(ValueError, match="not symmetric"):
        mesh.mirror_permutation(v)


def test_multi_cuboid_pads_to_static_sizes():
    a = np.random.default_rng(0).uniform(-1, 1, (500, 3)) * [1.0, 0.5, 0.3]
    b = np.random.default_rng(1).uniform(-1, 1, (500, 3)) * [0.6, 0.5, 0.5]
    ms = mesh.multi_cuboid([a, b], target_vertices=150)
    assert ms.num_meshes == 2 and ms.vertices.shape[1] == ms.vertex_mask.shape[1]
    for i in range(2):
        n = int(ms.vertex_mask[i].sum())
        real = ms.faces[i][ms.faces[i, :, 0] >= 0]
        assert 120 <= n <= 180 and real.max() < n
        assert np.all(ms.faces[i][len(real) :] == -1)


@pytest.mark.parametrize("subdivisions,target", [(4, 600), (1, 700)])
def test_remesh_hits_target_and_keeps_frame(subdivisions, target):
    sphere = trimesh.creation.icosphere(subdivisions, radius=0.8)
    v, f = mesh.remesh(sphere.vertices, sphere.faces, target)
    assert abs(len(v) - target) <= 0.15 * target
    assert f.min() >= 0 and f.max() < len(v) and v.dtype == np.float32 and f.dtype == np.int32
    r = np.linalg.norm(v, axis=-1)
    assert 0.6 < r.min() and r.max() < 0.81  # same frame and scale as the input
