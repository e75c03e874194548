"""Training, saving and running the pose-classification baseline (see ``classifier``).

One jitted step over an explicit PyTree state; the NeMo loop's checkpoints (resume), metrics and
progress bar. ``config.variant`` picks NeMo's Table 1 baseline: 'general' (Res50-General, the
default) trains one classifier on all categories of a split together; 'specific' (Res50-Specific)
one classifier per category, each on its category's images only, in ``workdir/<category>/``
(:mod:`nemo_jax.baseline.runs` reads either kind back). Every crop is resized to one input size
(``inputs``), the trunk starts from the same ImageNet weights as NeMo where the config gives them
(``config.model.pretrained``), with the augmentation of ``augment``, label smoothing, head dropout
and decoupled weight decay (AdamW). ``config.eval`` names a validation split scored every
``eval.every`` steps (Acc@pi/6 in ``metrics.jsonl``, rows with ``split="val"``), the curve the
recipe is chosen on.
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
from nemo_jax import eval as eval_lib
from nemo_jax import models
from nemo_jax.baseline.augment import augment_batch, augment_config
from nemo_jax.baseline.classifier import Bins, build_classifier, classification_loss, predict_angles
from nemo_jax.baseline.inputs import Resized, fit_batch, input_size
from nemo_jax.train.checkpoint import Checkpointer
from nemo_jax.train.metrics import MetricWriter


@flax.struct.dataclass
class BaselineState:
    params: dict
    batch_stats: dict
    opt_state: optax.OptState
    step: jax.Array


#: ``config.variant``: NeMo's Res50-General (one classifier for all categories) or Res50-Specific
#: (one per category).
VARIANTS = ("general", "specific")


def bins_from(config: ml_collections.ConfigDict) -> Bins:
    return Bins(**{k: int(v) for k, v in config.bins.items()})


def variant_of(config) -> str:
    """``config.variant`` (runs saved before the option: 'general'), checked."""
    variant = str(config.get("variant", "general"))
    if variant not in VARIANTS:
        raise ValueError(f"config.variant: {variant!r} is not one of {VARIANTS}")
    return variant


def chosen_categories(config) -> tuple[str, ...]:
    """``config.data.categories`` (empty: every category of the data)."""
    return tuple(str(c) for c in (config.data.get("categories", ()) or ()))


def _of_categories(source, categories, where: str):
    """``source`` restricted to ``categories`` (all of it for none); a ValueError naming a category
    the split lacks."""
    if not categories:
        return source
    missing = [c for c in categories if c not in source.categories]
    if missing:
        raise ValueError(f"{where}: config.data.categories {missing} not in the data's {source.categories}")
    return data_lib.Subset(source, sorted(i for c in categories for i in source.indices_of(c)))


def _optimizer(config) -> optax.GradientTransformation:
    t = config.train
    steps, warmup = max(1, int(t.steps)), int(t.get("warmup_steps", 0))
    schedule = optax.warmup_cosine_decay_schedule(0.0, t.lr, warmup, steps) if warmup else None
    schedule = schedule or optax.cosine_decay_schedule(t.lr, steps)
    return optax.adamw(schedule, weight_decay=t.weight_decay)


def init_state(config, module, image_shape, rng, pretrained: bool = False) -> BaselineState:
    """A fresh state; ``pretrained=True`` loads ``config.model.pretrained`` into the trunk."""
    variables = module.init(rng, jnp.zeros((1, *image_shape), jnp.float32), train=False)
    if pretrained:
        variables = models.load_pretrained(config.model, dict(variables))
    params = variables["params"]
    return BaselineState(
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=_optimizer(config).init(params),
        step=jnp.zeros((), jnp.int32),
    )


def make_train_step(config, module, bins: Bins):
    """A jitted ``(state, images [B, H, W, 3] in [0, 255], azimuth, elevation, theta [B] radians)
    -> (state, loss)``; augmentation and dropout keys are ``fold_in(PRNGKey(seed), step)``, so a
    step's randomness depends only on the seed and the step (exact resume)."""
    optimizer = _optimizer(config)
    aug = augment_config(config)
    smoothing = float(config.train.get("label_smoothing", 0.0))
    seed = int(config.get("seed", 0))

    def step(state: BaselineState, images, azimuth, elevation, theta):
        k_aug, k_drop = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), state.step))
        images, azimuth, theta = augment_batch(k_aug, images, azimuth, theta, aug)
        images = models.preprocess(images)

        def loss_fn(params):
            logits, updates = module.apply(
                {"params": params, "batch_stats": state.batch_stats},
                images,
                train=True,
                mutable=["batch_stats"],
                rngs={"dropout": k_drop},
            )
            return classification_loss(logits, azimuth, elevation, theta, bins, smoothing), updates

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


def validation_source(config):
    """The split ``config.eval`` names for validation (None when ``eval.every`` is 0), restricted
    to ``config.data.categories``."""
    ev = config.get("eval", {}) or {}
    if int(ev.get("every", 0)) <= 0:
        return None
    data_dir = ev.get("data_dir", "") or config.data.data_dir
    source = data_lib.load(config.data.name, ev.get("split", "val"), data_dir)
    source = _of_categories(source, chosen_categories(config), f"{source.path} [{source.split}]")
    limit = int(ev.get("max_images", 0))
    if 0 < limit < len(source):  # evenly spaced, so every category is in it
        source = data_lib.Subset(source, np.linspace(0, len(source) - 1, limit).round().astype(int))
    return source


def validate(predict, variables, source, batch_size: int = 32) -> dict:
    """NeMo's metric (``eval.summarize``: n, acc_pi6, acc_pi18, med_err_deg) of ``predict`` on
    ``source`` (already at the input size)."""
    errors = []
    for batch in data_lib.batches(source, batch_size, shuffle=False, drop_remainder=False, prefetch=0):
        pred = [np.asarray(x) for x in predict(variables, batch["image"])]
        true = [batch[k] for k in ("azimuth", "elevation", "theta")]
        errors.append(eval_lib.rotation_error(pred, true))
    return eval_lib.summarize(np.concatenate(errors) if errors else [])


def _checkpointer(config, workdir: str) -> Checkpointer:
    t = config.train
    every = int(t.get("checkpoint_every", t.steps))
    return Checkpointer(workdir, config.to_dict(), None, every, int(t.get("max_to_keep", 2)))


def train_baseline(config: ml_collections.ConfigDict, workdir: str, log=print) -> dict:
    """Trains the baseline of ``config.variant`` in ``workdir``.

    * 'general' (Res50-General): one classifier on ``config.data.categories`` (empty: every
      category) of the train split, in ``workdir``; returns :func:`train_classifier`'s dict.
    * 'specific' (Res50-Specific): one classifier per category, each trained on its own images in
      ``workdir/<category>`` (its config's ``data.categories`` is that one category). The general
      run's ``train.steps`` are shared out by the categories' image counts (each at least one), so
      every image is seen as often as in the general run, at the same cost in all. Returns
      ``{"categories": {category: train_classifier's dict}, "steps": {category: steps}}``.
    """
    variant = variant_of(config)
    if variant == "general":
        return train_classifier(config, workdir, log)
    if os.path.isfile(os.path.join(workdir, "config.json")):
        raise ValueError(
            f"{workdir}: holds one classifier (config.json); Res50-Specific needs its own workdir"
        )
    source = data_lib.load(config.data.name, "train", config.data.data_dir)
    cats = chosen_categories(config) or tuple(c for c in source.categories if source.indices_of(c))
    counts = {c: len(source.indices_of(c)) if c in source.categories else 0 for c in cats}
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise ValueError(f"{source.path}: the train split has no images of config.data.categories {empty}")
    total = sum(counts.values())
    steps = {c: max(1, round(int(config.train.steps) * n / total)) for c, n in counts.items()}
    out = {"categories": {}, "steps": steps}
    for cat in cats:
        sub = config.copy_and_resolve_references()
        sub.data.categories = (cat,)
        sub.train.steps = steps[cat]
        log(f"baseline (Res50-Specific) {cat}: {steps[cat]} steps on {counts[cat]} images")
        out["categories"][cat] = train_classifier(sub, os.path.join(workdir, cat), log)
    return out


def train_classifier(config: ml_collections.ConfigDict, workdir: str, log=print) -> dict:
    """Trains one classifier on ``config.data`` (``data.categories`` of the train split, empty:
    all) in ``workdir``.

    The NeMo loop's machinery: ``workdir/config.json`` + orbax checkpoints every
    ``config.train.checkpoint_every`` steps (resumed from, exactly: batch ``s`` is a pure function
    of ``(seed, s)``), ``metrics.jsonl`` + TensorBoard rows every ``log_every`` steps, a progress bar
    (``config.train.progress``), and no host sync between logs (the loss stays on the device).

    Returns ``{"losses": [...] (the steps run by this call), "images_per_s": float, "validation":
    [{"step", "n", "acc_pi6", "acc_pi18", "med_err_deg"}, ...]}`` (empty without ``eval.every``).
    """
    models.resolve_pretrained_path(config.model)  # a missing ImageNet file stops the run here
    augment_config(config)
    size = input_size(config)
    variant_of(config)
    source = data_lib.load(config.data.name, "train", config.data.data_dir)
    source = _of_categories(source, chosen_categories(config), f"{source.path} [train]")
    if len(source) == 0:
        raise ValueError(f"{config.data.data_dir}: the train split has no images of the chosen categories")
    source = Resized(source, size)
    val_source = validation_source(config)
    val_source = Resized(val_source, size) if val_source is not None else None
    t = config.train
    image_shape = tuple(source[0]["image"].shape)
    bins = bins_from(config)
    module = build_classifier(config.model, bins)
    ckpt = _checkpointer(config, workdir)
    start = ckpt.latest_step() or 0
    key = jax.random.PRNGKey(config.seed)
    state = init_state(config, module, image_shape, key, pretrained=not start)
    step = make_train_step(config, module, bins)
    predict = make_predict(config, module)
    every = int(config.get("eval", {}).get("every", 0)) if val_source is not None else 0
    val_rows = []
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
            state, loss = step(state, batch["image"], batch["azimuth"], batch["elevation"], batch["theta"])
            pending.append(loss)
            seen += len(batch["image"])
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
            if every and (done % every == 0 or done == total):
                variables = {"params": state.params, "batch_stats": state.batch_stats}
                row = validate(predict, variables, val_source, int(config.eval.get("batch_size", 32)))
                writer.write(done, {k: v for k, v in row.items() if k != "n"}, prefix="val")
                val_rows.append({"step": done, **row})
                log(f"baseline step {done}/{total} validation Acc@pi/6 {row['acc_pi6']:.3f} (n={row['n']})")
            if save_now:
                ckpt.save(done, state, force=done == total)
            bar.update(1)
    finally:
        bar.close()
        writer.close()
        ckpt.close()
    return {
        "losses": losses,
        "images_per_s": seen / max(time.perf_counter() - clock, 1e-9),
        "validation": val_rows,
    }


def load_baseline(workdir: str, image_shape) -> tuple[ml_collections.ConfigDict, object, dict]:
    """Restores ``(config, module, variables)`` from ``workdir``'s newest checkpoint; clear errors
    when absent."""
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path}: not a baseline workdir (no config.json)")
    with open(config_path) as fh:
        config = ml_collections.ConfigDict(json.load(fh))
    module = build_classifier(config.model, bins_from(config))
    size = input_size(config)
    if size is not None:  # the network's input, whatever the test crops' size
        image_shape = (*size, 3)
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
    """``(variables, images uint8 [B, h, w, 3]) -> (azimuth, elevation, theta) [B] radians``; the
    images are first resized to ``config.data.input_size`` (if set) as in training, on the host."""
    bins = bins_from(config)
    size = input_size(config)

    @jax.jit
    def apply(variables, images):
        logits = module.apply(variables, models.preprocess(images), train=False)
        return predict_angles(logits, bins)

    def predict(variables, images):
        return apply(variables, fit_batch(np.asarray(images), size))

    return predict
