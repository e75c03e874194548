"""Occluder augmentation of the train step: a known occluder hides exactly the vertices it covers,
its cells become clutter, the draws stay in range, and probability 0 leaves the step unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemo_jax import mesh
from nemo_jax.mesh.neural import NeuralMesh
from nemo_jax.train import contrastive, occluders, step

SIZE = (64, 96)


def _views():
    v, f = mesh.cuboid_mesh(np.array([-1.0, -0.6, -0.4]), np.array([1.0, 0.6, 0.4]), 200)
    m = NeuralMesh(vertices=jnp.asarray(v), faces=jnp.asarray(f), features=None, clutter=None)
    batch = {
        "azimuth": jnp.array([0.7, 2.5]), "elevation": jnp.array([0.3, 0.35]),
        "theta": jnp.array([0.1, -0.1]), "distance": jnp.array([6.0, 6.0]),
        "px": jnp.array([47.5, 44.0]), "py": jnp.array([31.5, 30.0]), "focal": jnp.ones(2),
        "viewport": jnp.full(2, 150.0),
    }  # fmt: skip
    cfg = step.StepConfig(image_size=SIZE, feature_stride=8, render_stride=2, render_tile=8)
    return step.views(m, batch, cfg), cfg


def _fixed(centre, half, ellipse, source=(1, 0), offset=((5, 3), (0, 0))):
    return occluders.Occluders(
        apply=jnp.array([True, True]),
        centre=jnp.asarray(centre, jnp.float32),
        half_size=jnp.asarray(half, jnp.float32),
        ellipse=jnp.asarray(ellipse),
        source=jnp.asarray(source, jnp.int32),
        offset=jnp.asarray(offset, jnp.int32),
    )


def _numpy_mask(centre, half, ellipse):
    y, x = np.mgrid[: SIZE[0], : SIZE[1]].astype(np.float64)
    dx, dy = (x - centre[0]) / half[0], (y - centre[1]) / half[1]
    return dx**2 + dy**2 <= 1 if ellipse else (np.abs(dx) <= 1) & (np.abs(dy) <= 1)


def test_known_occluder_hides_the_covered_vertices_only():
    view, _ = _views()
    centre, half, ellipse = [[50.0, 30.0], [40.0, 28.0]], [[9.0, 6.0], [12.0, 10.0]], [False, True]
    occ = _fixed(centre, half, ellipse)
    masks = np.asarray(occluders.occluder_masks(occ, SIZE))
    for i in range(2):
        np.testing.assert_array_equal(masks[i], _numpy_mask(centre[i], half[i], ellipse[i]))
    hidden = np.asarray(jax.vmap(occluders.hidden_vertices)(view.points, jnp.asarray(masks)))
    points, visible = np.asarray(view.points), np.asarray(view.visible)
    for i in range(2):
        col, row = np.round(points[i, :, 0]).astype(int), np.round(points[i, :, 1]).astype(int)
        on = (col >= 0) & (col < SIZE[1]) & (row >= 0) & (row < SIZE[0])
        covered = np.zeros(len(col), bool)
        covered[on] = masks[i][row[on], col[on]]
        np.testing.assert_array_equal(hidden[i], covered)
        after = visible[i] & ~hidden[i]
        assert np.any(visible[i] & covered) and np.any(after)  # some hidden, some kept
        assert not np.any(after & covered)
        np.testing.assert_array_equal(after[~covered], visible[i][~covered])
    # the pasted pixels come from the other image, shifted by the offset; the rest is unchanged
    images = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (2, *SIZE, 3)), jnp.float32)
    pasted = np.asarray(occluders.paste(images, images, jnp.asarray(masks), occ))
    src = np.roll(np.asarray(images[1]), (-3, -5), axis=(0, 1))
    np.testing.assert_array_equal(pasted[0][masks[0]], src[masks[0]])
    np.testing.assert_array_equal(pasted[0][~masks[0]], np.asarray(images[0])[~masks[0]])


def test_occluder_cells_are_eligible_as_clutter():
    """Object cells the occluder covers (more than half their pixels) join the background the
    clutter is sampled from."""
    h, w, d = SIZE[0] // 8, SIZE[1] // 8, 6
    mask = np.zeros(SIZE, bool)
    mask[16:33, 20:45] = True  # rows 16..32, cols 20..44
    cells = np.asarray(occluders.occluder_cells(jnp.asarray(mask), 8))
    cover = mask.reshape(h, 8, w, 8).mean(axis=(1, 3))
    np.testing.assert_array_equal(cells, cover > 0.5)
    assert 0 < cells.sum() < cells.size and np.any((cover > 0) & ~cells)
    object_mask = np.ones((h, w), bool)  # the whole map is object: no background but the occluder
    features = jnp.asarray(np.random.default_rng(1).normal(size=(h, w, d)), jnp.float32)
    n = int(cells.sum())
    samples, valid = contrastive.sample_clutter(
        jax.random.PRNGKey(0), features, jnp.asarray(object_mask & ~cells), n
    )
    assert bool(np.all(valid))
    want = np.asarray(features)[cells]
    got = np.asarray(samples)
    assert sorted(map(tuple, got.round(5))) == sorted(map(tuple, want.round(5)))
    _, valid_plain = contrastive.sample_clutter(jax.random.PRNGKey(0), features, jnp.asarray(object_mask), n)
    assert not np.any(np.asarray(valid_plain))  # without the occluder: nothing to sample


def test_draws_follow_the_probability_and_the_fraction():
    b = 512
    boxes = jnp.tile(jnp.array([[10.0, 8.0, 70.0, 50.0]]), (b, 1))
    lo, hi = 0.2, 0.5
    occ = occluders.draw_occluders(jax.random.PRNGKey(3), boxes, SIZE, 0.5, (lo, hi))
    apply = np.asarray(occ.apply)
    assert 0.4 < apply.mean() < 0.6
    source = np.asarray(occ.source)
    assert np.all(source != np.arange(b)) and np.all((source >= 0) & (source < b))
    masks = np.asarray(occluders.occluder_masks(occ, SIZE))
    assert not masks[~apply].any()
    box_area = 60.0 * 42.0
    frac = masks[apply].sum(axis=(1, 2)) / box_area
    assert np.all(frac > 0.8 * lo) and np.all(frac < 1.2 * hi), (frac.min(), frac.max())
    ellipse = np.asarray(occ.ellipse)[apply]
    assert 0.3 < ellipse.mean() < 0.7
    # shapes that fit stay inside the box
    half = np.asarray(occ.half_size)
    fits = apply & (2 * half[:, 0] <= 60.0) & (2 * half[:, 1] <= 42.0)
    assert fits.sum() > 100
    ys, xs = np.nonzero(masks[fits].any(axis=0))
    assert xs.min() >= 10 and xs.max() <= 70 and ys.min() >= 8 and ys.max() <= 50
    none = occluders.draw_occluders(jax.random.PRNGKey(3), boxes, SIZE, 0.0, (lo, hi))
    assert not np.asarray(occluders.occluder_masks(none, SIZE)).any()


def test_object_boxes_bound_the_visible_projections():
    view, _ = _views()
    boxes = np.asarray(occluders.object_boxes(view.points, view.visible, SIZE))
    points, visible = np.asarray(view.points), np.asarray(view.visible)
    for i in range(2):
        p = points[i][visible[i]]
        np.testing.assert_allclose(boxes[i], [*p.min(0), *p.max(0)], atol=1e-5)
    none = occluders.object_boxes(view.points, jnp.zeros_like(view.visible), SIZE)
    np.testing.assert_array_equal(np.asarray(none), np.tile(step.full_box(*SIZE), (2, 1)))


def _step_setup(random_batch, **cfg):
    import flax.linen as nn
    import ml_collections

    from nemo_jax.train import state

    class StandIn(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            x = nn.Conv(4, (8, 8), strides=(8, 8))(x)
            return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    v, f = mesh.cuboid_mesh([-1, -0.6, -0.4], [1, 0.6, 0.4], 30)
    tc = ml_collections.ConfigDict(
        dict(
            lr=1e-3,
            schedule="constant",
            warmup_steps=0,
            steps=10,
            grad_accum=1,
            grad_accum_phase="end",
            optimizer="adamw",
            weight_decay=0.0,
        )
    )
    tx = state.make_optimizer(tc)
    model = StandIn()
    s0 = state.create_train_state(
        jax.random.PRNGKey(0), model, mesh.init_neural_mesh(jax.random.PRNGKey(1), v, f, 4, 8), tx, (32, 32)
    )
    config = step.StepConfig(image_size=(32, 32), distance_thr=4.0, clutter_per_image=2, **cfg)
    return s0, jax.jit(step.make_train_step(model, tx, config, lambda im: im / 255.0))


@pytest.mark.extended
def test_probability_zero_leaves_the_step_unchanged(random_batch):
    batch = random_batch(4, 32)
    s0, plain = _step_setup(random_batch)
    _, zero = _step_setup(random_batch, occluder_prob=0.0, occluder_fraction=(0.5, 0.9))
    _, always = _step_setup(random_batch, occluder_prob=1.0)
    a, ma = plain(s0, batch)
    b, mb = zero(s0, batch)
    for x, y in zip(jax.tree.leaves((a, ma)), jax.tree.leaves((b, mb)), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    c, mc = always(s0, batch)
    assert bool(mc["finite"])
    assert float(mc["visible_per_image"]) < float(ma["visible_per_image"])
    assert not np.array_equal(np.asarray(c.mesh.clutter), np.asarray(a.mesh.clutter))


def test_step_config_reads_the_occluder_keys():
    from nemo_jax import defaults as common

    config = common.base()
    config.data.image_size = (64, 96)
    cfg = step.StepConfig.from_config(config)
    assert cfg.occluder_prob == 0.0 and cfg.occluder_fraction == (0.2, 0.6)
    config.train.occluder_augment = 0.3
    config.train.occluder_fraction = (0.1, 0.4)
    cfg = step.StepConfig.from_config(config)
    assert cfg.occluder_prob == 0.3 and cfg.occluder_fraction == (0.1, 0.4)
    config.train.occluder_augment = 1.5
    with pytest.raises(ValueError, match="config.train.occluder_augment"):
        step.StepConfig.from_config(config)
    config.train.occluder_augment = 0.3
    config.train.occluder_fraction = (0.6, 0.2)
    with pytest.raises(ValueError, match="config.train.occluder_fraction"):
        step.StepConfig.from_config(config)
