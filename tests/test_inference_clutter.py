"""The clutter model: one feature (NeMo) or the clutter queue's k-means centres, a pixel's clutter
similarity then its best over them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemo_jax.inference.objective import clutter_similarity
from nemo_jax.mesh import NeuralMesh, cluster_clutter, clutter_feature, clutter_model


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_one_cluster_is_nemo_clutter_feature_bit_for_bit():
    rng = np.random.default_rng(0)
    queue = jnp.asarray(_unit(rng.normal(size=(64, 8))), jnp.float32)
    mesh = NeuralMesh(vertices=None, faces=None, features=None, clutter=queue)
    single = clutter_model(mesh, 1)
    assert single.shape == (8,)
    np.testing.assert_array_equal(np.asarray(single), np.asarray(clutter_feature(mesh)))
    np.testing.assert_array_equal(np.asarray(cluster_clutter(queue, 1))[0], np.asarray(single))
    observed = jnp.asarray(_unit(rng.normal(size=(5, 7, 8))), jnp.float32)
    plain = clutter_similarity(observed, single)
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(clutter_similarity(observed, single[None])))


def test_clutter_similarity_is_the_best_over_the_clusters():
    clutter = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    observed = jnp.array([[[0.6, 0.8, 0.0], [0.8, -0.6, 0.0]], [[0.0, 0.0, 1.0], [-0.6, -0.8, 0.0]]])
    np.testing.assert_allclose(np.asarray(clutter_similarity(observed, clutter)), [[0.8, 0.8], [0.0, -0.6]])


def test_k_means_finds_well_separated_groups():
    rng = np.random.default_rng(1)
    centres = np.eye(6)[:3]  # three orthogonal directions
    members = [_unit(c + 0.15 * rng.normal(size=(40 + 10 * i, 6))) for i, c in enumerate(centres)]
    queue = np.concatenate(members)[rng.permutation(150)].astype(np.float32)
    got = np.asarray(jax.jit(cluster_clutter, static_argnums=(1, 2))(jnp.asarray(queue), 3, 10))
    assert got.shape == (3, 6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    want = _unit(np.stack([m.sum(0) for m in members]))
    match = got @ want.T  # each found centre is one group's normalised sum
    order = np.argmax(match, axis=1)
    assert sorted(order.tolist()) == [0, 1, 2]
    np.testing.assert_allclose(got, want[order], atol=1e-5)
    # deterministic
    np.testing.assert_array_equal(got, np.asarray(cluster_clutter(jnp.asarray(queue), 3, 10)))
    with pytest.raises(ValueError, match="cluster_clutter: clusters"):
        cluster_clutter(jnp.asarray(queue), 0)


def test_clutter_clusters_setting_is_checked():
    from nemo_jax.inference import settings

    assert settings.default_settings().clutter_clusters == 1
    assert settings.run_settings({}, {"inference.clutter_clusters": 4}).clutter_clusters == 4
    with pytest.raises(ValueError, match="inference.clutter_clusters"):
        settings.run_settings({}, {"clutter_clusters": 0})
    assert "clutter_clusters" not in settings.search_fields(settings.default_settings())


@pytest.mark.extended
def test_search_pose_takes_per_image_clutter_clusters():
    """``clutter [B, N, C]`` reaches the search: two copies of one feature score as that feature, and
    a wrongly sized clutter is an error naming the field."""
    from nemo_jax.inference import SearchConfig, SearchInputs, search_pose
    from nemo_jax.mesh import cuboid_mesh
    from nemo_jax.render import RasterSettings

    rng = np.random.default_rng(2)
    v, f = cuboid_mesh([-1, -0.6, -0.4], [1, 0.6, 0.4], 40)
    obs = _unit(rng.normal(size=(2, 12, 16, 8))).astype(np.float32)
    feats = _unit(rng.normal(size=(len(v), 8))).astype(np.float32)
    clutter = _unit(rng.normal(size=8)).astype(np.float32)
    raster = RasterSettings(
        height=12, width=16, tile_height=4, tile_width=4, cull_backfaces=True, tile_budget=64
    )
    cfg = SearchConfig(
        raster=raster, azimuths_deg=(0.0, 90.0), elevations_deg=(0.0,), thetas_deg=(0.0,), steps=3
    )
    inputs = SearchInputs(obs, feats, clutter, v, f, 20.0, [8.0, 6.0], 5.0)
    one = search_pose(inputs, cfg)
    two = search_pose(inputs.replace(clutter=np.broadcast_to(clutter, (2, 2, 8))), cfg)
    np.testing.assert_allclose(np.asarray(two.grid_loss), np.asarray(one.grid_loss), atol=1e-6)
    np.testing.assert_allclose(np.asarray(two.null_loss), np.asarray(one.null_loss), atol=1e-6)
    with pytest.raises(ValueError, match="search_pose: clutter"):
        search_pose(inputs.replace(clutter=np.zeros((2, 2, 5), np.float32)), cfg)
