"""The optimizer: the learning-rate schedule really reaches the updates; gradient accumulation. The
recipe's defaults come from nemo_jax.defaults.base(), and stored runs that predate a key read with it."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from nemo_jax import defaults as common
from nemo_jax.train import checkpoint, run
from nemo_jax.train.state import learning_rate_schedule, make_optimizer, resolve_steps


def _cfg(**kw):
    """``config.train`` of base() with a short step schedule."""
    cfg = common.base().train
    cfg.update(
        dict(
            lr=1e-2, schedule="step", lr_decay_steps=3, lr_decay_factor=0.1, warmup_steps=0, steps=12,
            grad_accum=1, weight_decay=0.0, clip_norm=0.0,
        )
    )  # fmt: skip
    cfg.update(kw)
    return cfg


def test_step_schedule_applies_to_updates():
    cfg = _cfg()
    sched = learning_rate_schedule(cfg)
    np.testing.assert_allclose([float(sched(i)) for i in (0, 2, 3, 6)], [1e-2, 1e-2, 1e-3, 1e-4], rtol=1e-6)
    tx = make_optimizer(cfg)
    params = {"w": jnp.zeros(3)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    sizes = []
    for _ in range(7):  # Adam on a constant gradient: |update| == lr(t)
        updates, state = update({"w": jnp.ones(3)}, state, params)
        sizes.append(float(jnp.abs(updates["w"][0])))
    np.testing.assert_allclose(sizes, [1e-2] * 3 + [1e-3] * 3 + [1e-4], rtol=1e-3)


def test_nemo_schedule_is_the_rate_nemo_trained_with():
    """NeMo's code: 1e-4 for epoch 0, then a constant 2e-5 (its decay never compounds)."""
    cfg = _cfg(lr=1e-4, schedule="nemo", lr_decay_steps=10, lr_decay_factor=0.2, steps=8000)
    sched = learning_rate_schedule(cfg)
    np.testing.assert_allclose([float(sched(i)) for i in (0, 9, 10, 4000, 6000, 7999)],
                               [1e-4, 1e-4, 2e-5, 2e-5, 2e-5, 2e-5], rtol=1e-6)  # fmt: skip


def test_pascal3d_configs_do_not_decay_to_nothing():
    """The PASCAL3D+ configs' last quarter trains at NeMo's effective 2e-5, not at ~1e-6, and
    without augmentation."""
    from configs import nemo_pascal3d

    for category in ("car", "chair", "aeroplane"):
        train = nemo_pascal3d.get_config(category).train
        # NeMo trains without flips or colour jitter; they stay options, off here.
        assert train.flip_prob == 0 and train.brightness == train.contrast == train.saturation == 0
        sched = learning_rate_schedule(train)
        updates = int(train.steps) // int(train.grad_accum)
        late = [float(sched(i)) for i in range(3 * updates // 4, updates, max(updates // 40, 1))]
        np.testing.assert_allclose(late, 2e-5, rtol=1e-6)
        assert float(sched(0)) == pytest.approx(1e-4)


def test_warmup_cosine_and_bad_name():
    sched = learning_rate_schedule(_cfg(schedule="cosine", warmup_steps=4, steps=20))
    assert float(sched(0)) == 0.0 and abs(float(sched(4)) - 1e-2) < 1e-8 and float(sched(19)) < 2e-3
    try:
        learning_rate_schedule(_cfg(schedule="linear"))
    except ValueError as err:
        assert "config.train.schedule" in str(err)
    else:
        raise AssertionError("no error for an unknown schedule")


def test_gradient_accumulation_updates_every_k_steps():
    tx = make_optimizer(_cfg(schedule="constant", grad_accum=2))
    assert isinstance(tx, optax.GradientTransformation)
    params = {"w": jnp.zeros(2)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    changes = []
    for g in (1.0, 3.0, 1.0, 3.0):
        updates, state = update({"w": jnp.full(2, g)}, state, params)
        params = optax.apply_updates(params, updates)
        changes.append(float(jnp.abs(updates["w"][0])))
    assert changes[0] == 0 and changes[2] == 0 and changes[1] > 0 and changes[3] > 0


#: The recipe keys 0.2.0 added to base(); 0.1.0 runs' config.json lacks them.
RECIPE_KEYS = ("optimizer", "epochs", "grad_accum_phase", "lr_decay_epochs")


def test_base_holds_the_recipe_defaults_the_optimizer_reads():
    """Every key the optimizer and the epoch arithmetic read is in base(): base().train alone
    builds the optimizer and resolves the length, with the documented defaults."""
    train = common.base().train
    assert (train.optimizer, train.grad_accum_phase) == ("adamw", "end")
    assert float(train.epochs) == 0 and float(train.lr_decay_epochs) == 0
    make_optimizer(train)
    assert resolve_steps(train, 100).steps == train.steps  # epochs 0: the steps stand
    assert "train.epochs" in checkpoint.RESUMABLE_KEYS
    for key in RECIPE_KEYS:  # a config without the key is an error, not a silent default
        partial = ml_collections.ConfigDict({k: v for k, v in train.items() if k != key})
        with pytest.raises((AttributeError, KeyError)):
            make_optimizer(partial) if key in ("optimizer", "grad_accum_phase") else resolve_steps(
                partial, 100
            )


def _old_config_json(tmp_path):
    """A 0.1.0-style stored config.json: a CPU config with the recipe keys (and a whole section)
    missing, written the way the checkpointer writes it."""
    from configs import synthetic_cpu

    stored = synthetic_cpu.get_config("chair").to_dict()
    for key in RECIPE_KEYS:
        del stored["train"][key]
    del stored["parallel"]
    for key in ("visibility_in_box", "visibility_box_margin", "occluder_augment", "occluder_fraction"):
        del stored["train"][key]  # keys newer than 0.1.0
    path = tmp_path / "config.json"
    path.write_text(json.dumps(stored, default=str))
    return json.loads(path.read_text())


def test_upgrade_config_fills_missing_keys_from_base_and_keeps_stored_values(tmp_path):
    stored = _old_config_json(tmp_path)
    upgraded = run.upgrade_config(stored)
    base = common.base()
    for key in RECIPE_KEYS:
        assert upgraded.train[key] == base.train[key]
    assert upgraded.parallel.to_dict() == base.parallel.to_dict()
    # stored values win over base()'s, and keys base() lacks stay
    assert upgraded.train.lr == stored["train"]["lr"] != base.train.lr
    assert upgraded.model.stride == stored["model"]["stride"] and "stride" not in base.model
    assert upgraded.category == "chair"
    assert run.upgrade_config(upgraded).to_dict() == upgraded.to_dict()  # idempotent
    assert "optimizer" not in stored["train"]  # the stored dict is not changed
    make_optimizer(upgraded.train)
    assert resolve_steps(upgraded.train, 100).steps == stored["train"]["steps"]


def test_old_run_config_resumes_against_the_current_config(tmp_path):
    """A run written before the recipe keys existed is compatible with today's config of the same
    recipe: the missing keys compare as their defaults, a changed one is still refused. The one key
    whose default changed (training visibility inside the box, always on before the key) is named,
    and the run resumes with it given as trained."""
    from configs import synthetic_cpu

    stored = _old_config_json(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(stored))
    ck = checkpoint.Checkpointer(str(tmp_path / "run"), stored, None, every=1)
    ck.save(1, {"w": np.ones(3, np.float32)})
    ck.close()
    (tmp_path / "run" / "config.json").write_text(json.dumps(stored))  # as 0.1.0 wrote it
    current = synthetic_cpu.get_config("chair")
    current.data.data_dir = stored["data"]["data_dir"]
    with pytest.raises(RuntimeError, match=r"visibility_in_box: True -> False(.|\n)*--config.KEY=VALUE"):
        checkpoint.Checkpointer(str(tmp_path / "run"), current.to_dict(), None, every=1)
    current.train.visibility_in_box = True
    checkpoint.Checkpointer(str(tmp_path / "run"), current.to_dict(), None, every=1).close()
    current.train.optimizer = "adam_l2"
    with pytest.raises(RuntimeError, match="train.optimizer: 'adamw' -> 'adam_l2'"):
        checkpoint.Checkpointer(str(tmp_path / "run"), current.to_dict(), None, every=1)


def test_upgrade_config_reads_a_run_from_before_visibility_in_box_as_box_limited(tmp_path):
    """Before ``train.visibility_in_box`` existed, training visibility was always limited to the
    object's box; the new default is the whole crop, so an old run is filled with the old rule."""
    stored = _old_config_json(tmp_path)
    assert "visibility_in_box" not in stored["train"]
    assert common.base().train.visibility_in_box is False
    assert run.upgrade_config(stored).train.visibility_in_box is True
    stored["train"]["visibility_in_box"] = False  # a run that stored the key keeps its value
    assert run.upgrade_config(stored).train.visibility_in_box is False
