"""NeMo's contrastive loss, memory bank and clutter sampling against direct numpy transcriptions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage

from nemo_jax.geometry import feature_coordinates
from nemo_jax.mesh import momentum_update, normalize, push_clutter
from nemo_jax.train import contrastive


def _unit(rng, *shape):
    x = rng.normal(size=shape)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _numpy_nemo_loss(feats, visible, kp, bank, clutter, noise, T, thr, w_noise, w_reg):
    """TrainNeMo.py: get = feats @ memory.T / T; get - mask_remove_near(...); CE over visible rows;
    + mean(noise_sim) * w_reg. Written with loops on purpose."""
    b, v, _ = feats.shape
    k = clutter.shape[0]
    memory = np.concatenate([bank, clutter])
    losses = []
    for n in range(b):
        dist = np.sqrt(((kp[n][None, :, :] - kp[n][:, None, :]) ** 2).sum(-1))
        tem = (dist <= thr).astype(np.float64) - np.eye(v)
        mask = np.concatenate([tem * 1e5, -np.ones((v, k)) * math.log(w_noise)], axis=1)
        get = feats[n] @ memory.T / T - mask
        for i in range(v):
            if not visible[n, i]:
                continue
            row = get[i]
            m = row.max()
            losses.append(m + np.log(np.exp(row - m).sum()) - row[i])
    main = np.mean(losses)
    noise_sim = np.einsum("bnd,vd->bnv", noise, bank)
    return main + w_reg * noise_sim.mean(), main


def test_contrastive_loss_matches_numpy():
    rng = np.random.default_rng(0)
    b, v, k, n, d = 2, 7, 5, 3, 6
    feats, bank, clutter = _unit(rng, b, v, d), _unit(rng, v, d), _unit(rng, k, d)
    noise = _unit(rng, b, n, d)
    kp = rng.uniform(0, 20, (b, v, 2))
    visible = rng.uniform(size=(b, v)) < 0.7
    visible[0, 0] = True
    args = dict(temperature=0.07, distance_thr=6.0, clutter_weight=5e-3, reg_weight=0.1)
    loss, aux = contrastive.contrastive_loss(
        jnp.asarray(feats, jnp.float32), jnp.asarray(visible), jnp.asarray(kp, jnp.float32),
        jnp.asarray(bank, jnp.float32), jnp.asarray(clutter, jnp.float32), jnp.asarray(noise, jnp.float32),
        **args,
    )  # fmt: skip
    want, want_main = _numpy_nemo_loss(feats, visible, kp, bank, clutter, noise, 0.07, 6.0, 5e-3, 0.1)
    # some neighbours really are excluded in this case
    dist = np.sqrt(((kp[:, None] - kp[:, :, None]) ** 2).sum(-1))
    assert ((dist <= 6.0).sum() - b * v) > 0
    np.testing.assert_allclose(float(aux["loss_main"]), want_main, rtol=1e-5)
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    assert float(aux["num_visible"]) == visible.sum()


def test_contrastive_loss_gradient_only_through_features():
    rng = np.random.default_rng(1)
    feats, bank, clutter = _unit(rng, 1, 4, 3), _unit(rng, 4, 3), _unit(rng, 2, 3)
    noise = _unit(rng, 1, 2, 3)
    kp = rng.uniform(0, 50, (1, 4, 2))
    f = lambda bk: contrastive.contrastive_loss(feats, np.ones((1, 4), bool), kp, bk, clutter, noise)[0]
    assert np.all(np.asarray(jax.grad(f)(jnp.asarray(bank))) == 0)
    g = jax.grad(
        lambda x: contrastive.contrastive_loss(x, np.ones((1, 4), bool), kp, bank, clutter, noise)[0]
    )
    assert np.abs(np.asarray(g(jnp.asarray(feats)))).sum() > 0


def test_momentum_update_and_bank_targets():
    rng = np.random.default_rng(2)
    bank = _unit(rng, 5, 4).astype(np.float32)
    feats = _unit(rng, 3, 5, 4).astype(np.float32)
    visible = np.array([[1, 0, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 1, 1, 0]], bool)
    mean, count = contrastive.bank_targets(jnp.asarray(feats), jnp.asarray(visible))
    new = np.asarray(momentum_update(jnp.asarray(bank), mean, count, 0.9))
    for v in range(5):
        seen = feats[visible[:, v], v]
        if len(seen) == 0:
            np.testing.assert_array_equal(new[v], bank[v])
            continue
        want = 0.9 * bank[v] + 0.1 * seen.mean(0)
        np.testing.assert_allclose(new[v], want / np.linalg.norm(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(new, axis=-1), 1.0, rtol=1e-6)


def test_push_clutter_is_fifo():
    queue = jnp.arange(12.0).reshape(6, 2)
    new = -jnp.ones((2, 2))
    out = np.asarray(push_clutter(queue, new))
    np.testing.assert_array_equal(out[:2], -1)
    np.testing.assert_array_equal(out[2:], np.arange(8.0).reshape(4, 2))


def test_bilinear_sample_matches_scipy():
    rng = np.random.default_rng(3)
    fmap = rng.normal(size=(5, 7, 3)).astype(np.float32)
    pts = rng.uniform([0, 0], [6, 4], (20, 2)).astype(np.float32)
    got = np.asarray(contrastive.bilinear_sample(jnp.asarray(fmap), jnp.asarray(pts)))
    want = np.stack(
        [scipy.ndimage.map_coordinates(fmap[..., c], [pts[:, 1], pts[:, 0]], order=1) for c in range(3)], -1
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # stride-8 cell centres: pixel 3.5 is the centre of cell 0
    np.testing.assert_allclose(feature_coordinates(jnp.array([3.5, 11.5]), 8), [0.0, 1.0])


def test_sample_clutter_avoids_object_cells():
    fmap = jnp.arange(6 * 6, dtype=jnp.float32).reshape(6, 6, 1)
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:5] = True
    for seed in range(5):
        samples, valid = contrastive.sample_clutter(jax.random.PRNGKey(seed), fmap, jnp.asarray(mask), 8)
        idx = np.asarray(samples)[:, 0].astype(int)
        assert len(set(idx.tolist())) == 8 and np.all(np.asarray(valid))
        assert not np.any(mask.reshape(-1)[idx])
    # more samples than background cells: the extra ones are flagged invalid
    samples, valid = contrastive.sample_clutter(jax.random.PRNGKey(0), fmap, jnp.asarray(mask), 24)
    assert int(np.sum(np.asarray(valid))) == 20


def test_normalize_unit():
    x = normalize(jnp.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(np.asarray(x), [[0.6, 0.8], [0.0, 0.0]])
