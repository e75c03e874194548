"""Training, saving and running the pose-classification baseline (see ``classifier``).

One jitted step over an explicit PyTree state; the NeMo loop's checkpoints (resume), metrics and
progress bar.
The baseline is trained on all categories of a split together (NeMo's Res50-General).
"""

from __future__ import annotations

import json
import os
import time

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from nemo_jax import data as data_lib
from nemo_jax import models
from nemo_jax.baseline.classifier import Bins, build_classifier, classification_loss, predict_angles
from nemo_jax.train.checkpoint import Checkpointer
from nemo_jax.train.metrics import MetricWriter


@flax.struct.dataclass
class BaselineState:
    params: dict
    batch_stats: dict
    opt_state: optax.OptState
    step: jax.Array


def bins_from(config: ml_collections.ConfigDict) -> Bins:
    return Bins(**{k: int(v) for k, v in config.bins.items()})


def _optimizer(config) -> optax.GradientTransformation:
    schedule = optax.cosine_decay_schedule(config.train.lr, max(1, config.train.steps))
    return optax.adamw(schedule, weight_decay=config.train.weight_decay)


def init_state(config, module, image_shape, rng) -> BaselineState:
    variables = module.init(rng, jnp.zeros((1, *image_shape), jnp.float32), train=False)
    params = variables["params"]
    return BaselineState(
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=_optimizer(config).init(params),
        step=jnp.zeros((), jnp.int32),
    )


def make_train_step(config, module, bins: Bins):
    optimizer = _optimizer(config)

    def step(state: BaselineState, images, azimuth, elevation, theta):
        def loss_fn(params):
            logits, updates = module.apply(
                {"params": params, "batch_stats": state.batch_stats},
                images,
                train=True,
                mutable=["batch_stats"],
            )
            return classification_loss(logits, azimuth, elevation, theta, bins), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        upd, opt_state = optimizer.update(grads, state.opt_state, state.params)
        new = BaselineState(
            params=optax.apply_updates(state.params, upd),
            batch_stats=updates.get("batch_stats", state.batch_stats),
            opt_state=opt_state,
            step=state.step + 1,
        )
        return new, loss

    return jax.jit(step, donate_argnums=0)


def _checkpointer(config, workdir: str) -> Checkpointer:
    t = config.train
    every = int(t.get("checkpoint_every", t.steps))
    return Checkpointer(workdir, config.to_dict(), None, every, int(t.get("max_to_keep", 2)))


def train_baseline(config: ml_collections.ConfigDict, workdir: str, log=print) -> dict:
    """Trains the classifier on ``config.data`` (all categories of the train split) in ``workdir``.

    The NeMo loop's machinery: ``workdir/config.json`` + orbax checkpoints every
    ``config.train.checkpoint_every`` steps (resumed from, exactly: batch ``s`` is a pure function
    of ``(seed, s)``), ``metrics.jsonl`` + TensorBoard rows every ``log_every`` steps, a progress bar
    (``config.train.progress``), and no host sync between logs (the loss stays on the device).

    Returns ``{"losses": [...] (the steps run by this call), "images_per_s": float}``.
    """
    source = data_lib.load(config.data.name, "train", config.data.data_dir)
    if len(source) == 0:
        raise ValueError(f"{source.path}: the train split is empty")
    t = config.train
    image_shape = tuple(source[0]["image"].shape)
    bins = bins_from(config)
    module = build_classifier(config.model, bins)
    state = init_state(config, module, image_shape, jax.random.PRNGKey(config.seed))
    step = make_train_step(config, module, bins)
    ckpt = _checkpointer(config, workdir)
    start = ckpt.latest_step() or 0
    if start:
        state = ckpt.restore(state)
        log(f"baseline: resumed from {workdir}/checkpoints/{start}")
    total, log_every, batch_size = int(t.steps), int(t.log_every), int(t.batch_size)
    batches = data_lib.batches(source, batch_size, seed=config.seed, epochs=None, start=start)
    writer = MetricWriter(workdir, start)
    bar = tqdm.tqdm(
        total=total,
        initial=start,
        disable=not bool(t.get("progress", True)),
        dynamic_ncols=True,
        desc="baseline",
    )
    losses, window, pending, clock, seen = [], [], [], time.perf_counter(), 0
    try:
        for i, batch in zip(range(start, total), batches, strict=False):
            images = models.preprocess(batch["image"])
            state, loss = step(state, images, batch["azimuth"], batch["elevation"], batch["theta"])
            pending.append(loss)
            seen += len(images)
            done = i + 1
            save_now = done % ckpt.every == 0 or done == total
            if done % log_every == 0 or save_now:
                values = [float(x) for x in jax.device_get(pending)]  # one host sync per log
                pending = []
                if not np.all(np.isfinite(values)):
                    bad = done - len(values) + int(np.argmin(np.isfinite(values)))
                    raise FloatingPointError(
                        f"baseline training: non-finite loss at step {bad}; stopping without saving this "
                        f"state (the last good checkpoint, if any, stays in {workdir}/checkpoints)"
                    )
                losses += values
                window += values
                if done % log_every == 0 or done == total:
                    mean, window = float(np.mean(window)), []  # mean over the steps since the last row
                    writer.write(done, {"loss": mean, "images_per_s": seen / (time.perf_counter() - clock)})
                    bar.set_postfix(loss=f"{mean:.3f}")
                    log(f"baseline step {done}/{total} loss {mean:.3f}")
            if save_now:
                ckpt.save(done, state, force=done == total)
            bar.update(1)
    finally:
        bar.close()
        writer.close()
        ckpt.close()
    return {"losses": losses, "images_per_s": seen / max(time.perf_counter() - clock, 1e-9)}


def load_baseline(workdir: str, image_shape) -> tuple[ml_collections.ConfigDict, object, dict]:
    """Restores ``(config, module, variables)`` from ``workdir``'s newest checkpoint; clear errors
    when absent."""
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path}: not a baseline workdir (no config.json)")
    with open(config_path) as fh:
        config = ml_collections.ConfigDict(json.load(fh))
    module = build_classifier(config.model, bins_from(config))
    target = jax.eval_shape(lambda: init_state(config, module, image_shape, jax.random.PRNGKey(0)))
    ckpt = Checkpointer(workdir, config.to_dict(), None, 1, 1000, read_only=True)  # writes nothing
    try:
        if ckpt.latest_step() is None:
            raise FileNotFoundError(f"{workdir}/checkpoints: no baseline checkpoint to load")
        state = ckpt.restore(target)
    finally:
        ckpt.close()
    return config, module, {"params": state.params, "batch_stats": state.batch_stats}


def make_predict(config, module):
    """A jitted ``images uint8 [B, H, W, 3] -> (azimuth, elevation, theta) [B] radians``."""
    bins = bins_from(config)

    @jax.jit
    def predict(variables, images):
        logits = module.apply(variables, models.preprocess(images), train=False)
        return predict_angles(logits, bins)

    return predict
