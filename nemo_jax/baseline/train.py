"""Training, saving and running the pose-classification baseline (see ``classifier``).

One jitted step over an explicit PyTree state; checkpoints with orbax, the config saved beside as JSON.
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
import orbax.checkpoint as ocp

from nemo_jax import data as data_lib
from nemo_jax import models
from nemo_jax.baseline.classifier import Bins, build_classifier, classification_loss, predict_angles

CHECKPOINT = "baseline_checkpoint"
CONFIG = "baseline_config.json"


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


def train_baseline(config: ml_collections.ConfigDict, workdir: str, log=print) -> dict:
    """Trains the classifier on ``config.data`` (all categories of the train split) and saves it.

    Returns ``{"losses": [...], "images_per_s": float}``.
    """
    source = data_lib.load(config.data.name, "train", config.data.data_dir)
    if len(source) == 0:
        raise ValueError(f"{source.path}: the train split is empty")
    image_shape = tuple(source[0]["image"].shape)
    bins = bins_from(config)
    module = build_classifier(config.model, bins)
    state = init_state(config, module, image_shape, jax.random.PRNGKey(config.seed))
    step = make_train_step(config, module, bins)
    batches = data_lib.batches(
        source, config.train.batch_size, seed=config.seed, shuffle=True, drop_remainder=True, epochs=None
    )
    losses, start, seen = [], time.perf_counter(), 0
    for i in range(config.train.steps):
        batch = next(batches)
        images = models.preprocess(batch["image"])
        state, loss = step(state, images, batch["azimuth"], batch["elevation"], batch["theta"])
        loss = float(loss)
        if not np.isfinite(loss):
            raise FloatingPointError(f"baseline training: non-finite loss at step {i}; nothing saved")
        losses.append(loss)
        seen += len(images)
        if (i + 1) % config.train.log_every == 0 or i + 1 == config.train.steps:
            log(f"baseline step {i + 1}/{config.train.steps} loss {np.mean(losses[-20:]):.3f}")
    images_per_s = seen / (time.perf_counter() - start)
    save_baseline(workdir, config, {"params": state.params, "batch_stats": state.batch_stats})
    return {"losses": losses, "images_per_s": images_per_s}


def save_baseline(workdir: str, config, variables) -> None:
    os.makedirs(workdir, exist_ok=True)
    path = os.path.abspath(os.path.join(workdir, CHECKPOINT))
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(path, variables, force=True)
    ckpt.wait_until_finished()
    with open(os.path.join(workdir, CONFIG), "w") as fh:
        fh.write(config.to_json(indent=2))


def load_baseline(workdir: str, image_shape) -> tuple[ml_collections.ConfigDict, object, dict]:
    """Restores ``(config, module, variables)`` from ``workdir``; clear errors when absent."""
    config_path = os.path.join(workdir, CONFIG)
    path = os.path.abspath(os.path.join(workdir, CHECKPOINT))
    if not os.path.isfile(config_path) or not os.path.isdir(path):
        raise FileNotFoundError(f"{workdir}: no baseline checkpoint ({CONFIG} and {CHECKPOINT}/)")
    with open(config_path) as fh:
        config = ml_collections.ConfigDict(json.load(fh))
    module = build_classifier(config.model, bins_from(config))
    target = module.init(jax.random.PRNGKey(0), jnp.zeros((1, *image_shape), jnp.float32), train=False)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, dict(target))
    variables = ocp.StandardCheckpointer().restore(path, abstract)
    return config, module, variables


def make_predict(config, module):
    """A jitted ``images uint8 [B, H, W, 3] -> (azimuth, elevation, theta) [B] radians``."""
    bins = bins_from(config)

    @jax.jit
    def predict(variables, images):
        logits = module.apply(variables, models.preprocess(images), train=False)
        return predict_angles(logits, bins)

    return predict
