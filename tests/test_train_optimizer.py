"""NeMo's optimisation: torch's Adam with coupled L2 weight decay, gradients summed over several
batches (the memory bank and clutter queue still updated on every batch), and a run's length given
in epochs of the training set."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from nemo_jax import mesh
from nemo_jax.train import state, step

LR, WD, B1, B2, EPS = 1e-2, 0.3, 0.9, 0.999, 1e-8


def _cfg(**kw):
    base = dict(
        optimizer="adam_l2", lr=LR, schedule="constant", warmup_steps=0, steps=100, grad_accum=1,
        weight_decay=WD, clip_norm=0.0, lr_decay_steps=10, lr_decay_factor=0.2,
        grad_accum_phase="end", epochs=0.0, lr_decay_epochs=0.0,
    )  # fmt: skip
    base.update(kw)
    return ml_collections.ConfigDict(base)


class TorchAdam:
    """torch.optim.Adam's documented algorithm (amsgrad off, maximize off) in float64 numpy:

    g <- g + weight_decay * p;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).

    ``decoupled=True`` is torch.optim.AdamW instead: p <- p - lr * wd * p, then the Adam step on the
    plain gradient."""

    def __init__(self, params, lr=LR, weight_decay=WD, decoupled=False):
        self.p = {k: np.asarray(v, np.float64).copy() for k, v in params.items()}
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.t, self.lr, self.wd, self.decoupled = 0, lr, weight_decay, decoupled

    def step(self, grads):
        self.t += 1
        for k, p in self.p.items():
            g = np.asarray(grads[k], np.float64)
            if self.decoupled:
                p = p * (1 - self.lr * self.wd)
            else:
                g = g + self.wd * p
            self.m[k] = B1 * self.m[k] + (1 - B1) * g
            self.v[k] = B2 * self.v[k] + (1 - B2) * g * g
            m_hat = self.m[k] / (1 - B1**self.t)
            v_hat = self.v[k] / (1 - B2**self.t)
            self.p[k] = p - self.lr * m_hat / (np.sqrt(v_hat) + EPS)
        return self.p


def _params():
    rng = np.random.default_rng(0)
    return {"w": rng.normal(0, 2.0, (3, 4)).astype(np.float32), "b": np.array([0.5, -3.0, 0.0], np.float32)}


def _grads(seed):
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(0, 1.0, (3, 4)).astype(np.float32), "b": rng.normal(0, 0.1, 3).astype(np.float32)}


def _run(tx, params, grads_seq):
    """Parameters after each update of ``tx`` fed ``grads_seq`` (the train step's usage)."""
    params = jax.tree.map(jnp.asarray, params)
    opt_state = tx.init(params)
    update = jax.jit(tx.update)
    out = []
    for g in grads_seq:
        updates, opt_state = update(jax.tree.map(jnp.asarray, g), opt_state, params)
        params = optax.apply_updates(params, updates)
        out.append(jax.tree.map(np.asarray, params))
    return out


def _close(a, b):
    for k in b:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("name, decoupled", [("adam_l2", False), ("adamw", True)])
def test_one_and_two_steps_match_torch_adam_by_hand(name, decoupled):
    """'adam_l2' is torch.optim.Adam(weight_decay=wd) (NeMo's optimizer), 'adamw' torch's AdamW;
    the large decay makes the coupled and decoupled forms differ clearly."""
    params = _params()
    got = _run(state.make_optimizer(_cfg(optimizer=name)), params, [_grads(1), _grads(2)])
    ref = TorchAdam(params, decoupled=decoupled)
    _close(got[0], ref.step(_grads(1)))
    _close(got[1], ref.step(_grads(2)))
    other = TorchAdam(params, decoupled=not decoupled)
    other.step(_grads(1))
    assert not np.allclose(got[1]["w"], other.step(_grads(2))["w"], atol=1e-4)


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="config.train.optimizer"):
        state.make_optimizer(_cfg(optimizer="sgd"))
    with pytest.raises(ValueError, match="config.train.grad_accum_phase"):
        state.make_optimizer(_cfg(grad_accum=2, grad_accum_phase="middle"))
    with pytest.raises(ValueError, match="config.train.grad_accum"):
        state.make_optimizer(_cfg(grad_accum=0))


def test_accumulation_applies_adam_l2_to_the_summed_gradient():
    """Three batches per update: the update is torch Adam-L2's step on g1 + g2 + g3 (the SUM, as
    loss.backward() accumulates .grad; the decay term added once), zero updates in between."""
    params = _params()
    grads = [_grads(s) for s in range(1, 7)]
    got = _run(state.make_optimizer(_cfg(grad_accum=3)), params, grads)
    summed = lambda gs: {k: sum(g[k].astype(np.float64) for g in gs) for k in gs[0]}
    ref = TorchAdam(params)
    for i in (0, 1):
        _close(got[i], params)  # not updated yet
    _close(got[2], ref.step(summed(grads[0:3])))
    _close(got[4], got[2])
    _close(got[5], ref.step(summed(grads[3:6])))
    # Averaging would weigh the decay 3x more against the gradient (seen from the second update:
    # Adam's first step is the gradient's sign whatever its scale).
    mean = TorchAdam(params)
    mean.step({k: v / 3 for k, v in summed(grads[0:3]).items()})
    assert not np.allclose(got[5]["w"], mean.step({k: v / 3 for k, v in summed(grads[3:6]).items()})["w"])


def test_nemo_phase_updates_from_the_first_batch_alone_then_every_k():
    """NeMo: ``loss.backward(); if iter_num % 3 == 0: optim.step()`` from iter_num 0 updates after
    batches 1, 4, 7, ... (1-based): the first from batch 1 alone, then sums of 3."""
    params = _params()
    grads = [_grads(s) for s in range(1, 8)]
    got = _run(state.make_optimizer(_cfg(grad_accum=3, grad_accum_phase="nemo")), params, grads)
    summed = lambda gs: {k: sum(g[k].astype(np.float64) for g in gs) for k in gs[0]}
    ref = TorchAdam(params)
    _close(got[0], ref.step(grads[0]))
    _close(got[2], got[0])
    _close(got[3], ref.step(summed(grads[1:4])))
    _close(got[6], ref.step(summed(grads[4:7])))
    assert [state.update_count(n, 3, "nemo") for n in (1, 3, 4, 7)] == [1, 1, 2, 3]
    assert [state.update_count(n, 3, "end") for n in (1, 3, 4, 7)] == [0, 1, 1, 2]


def test_nemo_schedule_counts_updates_with_the_nemo_phase():
    """The 'nemo' rate counts updates: lr for the first lr_decay_steps (2) updates, then lr * 0.2;
    with 2-batch accumulation in NeMo's phase the updates follow batches 1, 3 and 5."""
    cfg = _cfg(schedule="nemo", lr_decay_steps=2, grad_accum=2, grad_accum_phase="nemo")
    params = _params()
    grads = [_grads(s) for s in range(1, 6)]
    got = _run(state.make_optimizer(cfg), params, grads)
    summed = lambda gs: {k: sum(g[k].astype(np.float64) for g in gs) for k in gs[0]}
    ref = TorchAdam(params)
    _close(got[0], ref.step(grads[0]))
    _close(got[2], ref.step(summed(grads[1:3])))
    ref.lr = 0.2 * LR
    _close(got[4], ref.step(summed(grads[3:5])))
    _close(got[1], got[0])
    _close(got[3], got[2])


class _NoNorm(nn.Module):
    """Stride-8 unit features without batch norm: each batch's gradient is its own."""

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Conv(4, (8, 8), strides=(8, 8))(x)
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def _gradient_recorder() -> optax.GradientTransformation:
    """Leaves the parameters alone and keeps the last gradient as its state."""
    return optax.GradientTransformation(
        lambda p: jax.tree.map(jnp.zeros_like, p), lambda g, s, p=None: (jax.tree.map(jnp.zeros_like, g), g)
    )


def test_train_step_sums_each_batchs_gradient_and_updates_the_bank_every_batch(random_batch):
    """With grad_accum = 3 the train step applies Adam-L2 once to g1 + g2 + g3, where g_i is batch
    i's gradient at the unchanged parameters and at the memory bank / clutter queue as the earlier
    batches left them (NeMo updates the bank in every forward pass, not per optimizer step). The
    reference records each g_i with the same step and an optimizer that does not move."""
    size, k = 32, 3
    v, f = mesh.cuboid_mesh([-1, -0.6, -0.4], [1, 0.6, 0.4], 30)
    model = _NoNorm()
    cfg = step.StepConfig(image_size=(size, size), flip_prob=0.0, distance_thr=4.0, clutter_per_image=2)
    batches = [step.select_fields(random_batch(2, size, seed=i)) for i in range(k)]
    neural = mesh.init_neural_mesh(jax.random.PRNGKey(1), v, f, 4, 8)

    def run(tx):
        s = state.create_train_state(jax.random.PRNGKey(0), model, neural, tx, (size, size))
        fn = jax.jit(step.make_train_step(model, tx, cfg, lambda im: im / 255.0))
        trail = [s]
        for b in batches:
            s, metrics = fn(s, b)
            assert bool(metrics["finite"])
            trail.append(s)
        return trail

    acc = run(state.make_optimizer(_cfg(grad_accum=k)))
    rec = run(_gradient_recorder())
    start = acc[0]
    for i in (1, 2):  # micro-steps: parameters wait, the bank and the clutter queue move
        _same(acc[i].params, start.params)
        assert not np.allclose(acc[i].mesh.features, acc[i - 1].mesh.features)
        assert not np.allclose(acc[i].mesh.clutter, acc[i - 1].mesh.clutter)
    for a, r in zip(acc, rec, strict=True):  # the same bank states batch by batch
        np.testing.assert_allclose(a.mesh.features, r.mesh.features, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.mesh.clutter, r.mesh.clutter, rtol=1e-5, atol=1e-6)
    grads = [r.opt_state for r in rec[1:]]
    total = jax.tree.map(lambda *g: sum(np.asarray(x, np.float64) for x in g), *grads)
    flat_params, unravel = jax.flatten_util.ravel_pytree(jax.tree.map(np.asarray, start.params))
    flat_total = jax.flatten_util.ravel_pytree(total)[0]
    expected = TorchAdam({"x": flat_params}).step({"x": flat_total})["x"]
    got = jax.flatten_util.ravel_pytree(acc[k].params)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, flat_params)


def _same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_epochs_become_batches_of_the_global_batch():
    """800 epochs of 1,234 images in batches of 108: each image 800 times, ceil(800 * 1234 / 108)
    batches; with 10-batch accumulation in NeMo's phase the first epoch (12 batches) is 2 updates."""
    cfg = _cfg(steps=0, epochs=800, batch_size=108, grad_accum=10, grad_accum_phase="nemo", lr_decay_epochs=1)
    out = state.resolve_steps(cfg, 1234)
    assert out.steps == math.ceil(800 * 1234 / 108) == 9141
    assert out.lr_decay_steps == 2
    assert cfg.steps == 0  # a copy: the config itself keeps its epochs
    assert state.resolve_steps(_cfg(steps=0, epochs=0.5, batch_size=8), 100).steps == 7
    assert state.resolve_steps(_cfg(steps=30, epochs=0, batch_size=8), 100).steps == 30


def test_steps_given_beside_epochs_win_and_nothing_given_is_an_error():
    with pytest.warns(UserWarning, match="epochs=800 is ignored"):
        assert state.resolve_steps(_cfg(steps=5, epochs=800, batch_size=4), 10).steps == 5
    with pytest.raises(ValueError, match="both 0"):
        state.resolve_steps(_cfg(steps=0, epochs=0, batch_size=4), 10)
    with pytest.raises(ValueError, match="training set is empty"):
        state.resolve_steps(_cfg(steps=0, epochs=3, batch_size=4), 0)
    with pytest.raises(ValueError, match="config.train.epochs"):
        state.resolve_steps(_cfg(steps=0, epochs=-1, batch_size=4), 10)


@pytest.mark.extended
def test_training_loop_runs_the_steps_of_its_epochs(tmp_path):
    """The loop derives the step count from the training set (the toy source's 40 images, batches
    of 8, 1.5 epochs: 8 steps) and logs the rate of NeMo's schedule per update."""
    import json  # noqa: PLC0415

    from configs import smoke  # noqa: PLC0415
    from nemo_jax.train.loop import train  # noqa: PLC0415

    config = smoke.get_config()
    config.data.num_train, config.eval.num_batches = 40, 0
    t = config.train
    t.steps, t.epochs, t.batch_size, t.log_every, t.checkpoint_every = 0, 1.5, 8, 1, 8
    t.optimizer, t.grad_accum, t.grad_accum_phase = "adam_l2", 3, "nemo"
    t.schedule, t.lr_decay_epochs = "nemo", 1  # 5 batches: updates 1 and 2 at lr, then lr * 0.2
    result, final = train(config, str(tmp_path / "run"))
    assert result["step"] == int(final.step) == math.ceil(1.5 * 40 / 8) == 8
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    lrs = [r["lr"] for r in rows if "lr" in r]
    # after batch n the next update is number ceil(n / 3): updates 0, 1 at lr (lr_decay_steps 2)
    np.testing.assert_allclose(lrs, [t.lr] * 3 + [0.2 * t.lr] * 5, rtol=1e-6)
    stored = json.load(open(tmp_path / "run" / "config.json"))["train"]
    assert stored["steps"] == 0 and stored["epochs"] == 1.5


@pytest.mark.slow
def test_the_pascal3d_config_trains_its_epochs_on_a_release_format_tree(tmp_path):
    """configs/nemo_pascal3d.py as it stands (Adam-L2, 10 batches per update in NeMo's phase, the
    length in epochs) on a PASCAL3D+-format fixture tree: 1 epoch of 4 images in batches of 2 is 2
    batches, one update (from the first batch alone, NeMo's phase)."""
    import data_fixtures as fx  # noqa: PLC0415

    from configs import nemo_pascal3d  # noqa: PLC0415
    from nemo_jax import data  # noqa: PLC0415
    from nemo_jax.train.loop import train  # noqa: PLC0415

    manual, data_dir = str(tmp_path / "manual"), str(tmp_path / "data")
    fx.write_pascal3d(manual, categories=("motorbike",), per_split=(4, 2))
    options = data.make_options(
        "pascal3d", {"categories": "motorbike", "neural_vertices": "60", "shrink": "16", "manual_dir": manual}
    )
    data.build("pascal3d", data_dir, options, progress=False)
    config = nemo_pascal3d.get_config("motorbike")
    assert config.train.steps == 0 and config.train.epochs == 800  # as shipped: NeMo's length
    config.data.data_dir, config.data.image_size = data_dir, (32, 32)
    config.model.name, config.model.width, config.model.feature_dim = "tiny", 0.25, 16
    config.model.pretrained = "none"
    t = config.train
    t.epochs, t.batch_size, t.checkpoint_every, t.log_every, t.progress = 1, 2, 2, 1, False
    t.clutter_size, t.clutter_per_image, t.distance_thr, t.render_stride, t.render_tile = 16, 2, 4.0, 1, 8
    config.eval.num_batches = 0
    result, final = train(config, str(tmp_path / "run"))
    assert result["step"] == int(final.step) == 2
    inner = final.opt_state.inner_opt_state  # MultiSteps around add_decayed_weights + adam
    assert int(final.opt_state.gradient_step) == 1 and int(inner[1][0].count) == 1
