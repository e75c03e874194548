"""The training state PyTree and the optimizer: Adam with coupled L2 (torch's ``Adam(weight_decay=)``,
NeMo's) or decoupled decay (AdamW), a learning-rate schedule, gradients summed over ``grad_accum``
batches, and the run's length in steps or in epochs of the training set.

The functions read ``config.train`` keys plainly: their defaults live in one place,
``base()`` (``nemo_jax/defaults.py``), and a stored run written before a key existed is filled from it
when read (:func:`nemo_jax.train.run.upgrade_config`)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from nemo_jax.mesh.neural import NeuralMesh
from nemo_jax.models.initialize import init_variables

#: ``config.train.optimizer``: 'adam_l2' is torch.optim.Adam(weight_decay=wd) as NeMo trains
#: (``wd * param`` added to the gradient before Adam's moments, every parameter decayed: NeMo passes
#: ``net.parameters()``, batch-norm scales and biases included); 'adamw' decays the weights after
#: Adam's step (decoupled, ``lr * wd * param``).
OPTIMIZERS = ("adamw", "adam_l2")
#: ``config.train.grad_accum_phase``: when, among the micro-batches, the accumulated update is applied.
#: 'end': after batches k, 2k, ... (optax.MultiSteps). 'nemo': after batches 1, k + 1, 2k + 1, ...
#: (NeMo's ``loss.backward(); if iter_num % k == 0: optim.step(); optim.zero_grad()`` with
#: ``iter_num`` from 0: the first update uses the first batch alone, every later one k batches).
GRAD_ACCUM_PHASES = ("end", "nemo")


@flax.struct.dataclass
class TrainState:
    """Everything a training step reads and writes; saved whole by the checkpointer.

    Attributes:
      step: ``[]`` int32, micro-steps taken (one per batch).
      params, batch_stats: the backbone's flax variables.
      opt_state: optax state (inside ``optax.MultiSteps`` when ``grad_accum > 1``).
      mesh: the neural mesh: vertices, faces, memory bank ``[V, D]``, clutter queue ``[K, D]``.
      rng: ``[2]`` uint32 raw PRNG key, split every step.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    mesh: NeuralMesh
    rng: jax.Array


def _accumulation(cfg) -> tuple[int, str]:
    """``(grad_accum, grad_accum_phase)`` of ``cfg`` (``config.train``), checked."""
    every = int(cfg.grad_accum)
    if every < 1:
        raise ValueError(f"config.train.grad_accum: expected an integer >= 1, got {cfg.grad_accum}")
    phase = str(cfg.grad_accum_phase)
    if phase not in GRAD_ACCUM_PHASES:
        raise ValueError(f"config.train.grad_accum_phase: {phase!r} is not one of {GRAD_ACCUM_PHASES}")
    return every, phase


def update_count(micro_steps: int, every: int, phase: str = "end") -> int:
    """Optimizer updates applied after ``micro_steps`` batches with ``every``-batch accumulation:
    ``micro_steps // every`` ('end'), ``ceil(micro_steps / every)`` ('nemo', see
    :data:`GRAD_ACCUM_PHASES`)."""
    if phase == "nemo":
        return -(-int(micro_steps) // int(every))
    return int(micro_steps) // int(every)


def learning_rate_schedule(cfg) -> optax.Schedule:
    """``cfg`` (``config.train``): ``lr``, ``schedule`` ('constant' | 'cosine' | 'step' | 'nemo'),
    ``warmup_steps``, ``steps``, ``grad_accum``, ``lr_decay_steps``, ``lr_decay_factor``.

    Counts optimizer updates (:func:`update_count` of ``steps`` in all). 'step' multiplies the rate
    by ``lr_decay_factor`` after every ``lr_decay_steps`` updates (NeMo's intended step decay, which
    its code never ran). 'nemo' is the rate NeMo's code trained with: ``lr`` for the first
    ``lr_decay_steps`` updates (its epoch 0), then ``lr * lr_decay_factor`` to the end (its
    ``lr = args.lr * 0.2`` every 10 epochs sets, and never compounds, the rate: 1e-4, then 2e-5).
    With ``config.train.lr_decay_epochs`` the training loop sets ``lr_decay_steps`` from the data
    (:func:`resolve_steps`).
    """
    every, phase = _accumulation(cfg)
    updates = max(update_count(int(cfg.steps), every, phase), 1)
    warmup = int(cfg.warmup_steps)
    lr = float(cfg.lr)
    if cfg.schedule == "constant":
        main = optax.constant_schedule(lr)
    elif cfg.schedule == "cosine":
        main = optax.cosine_decay_schedule(lr, max(updates - warmup, 1), alpha=0.01)
    elif cfg.schedule == "step":
        main = optax.exponential_decay(
            lr, int(cfg.lr_decay_steps), float(cfg.lr_decay_factor), staircase=True
        )
    elif cfg.schedule == "nemo":
        main = optax.piecewise_constant_schedule(lr, {int(cfg.lr_decay_steps): float(cfg.lr_decay_factor)})
    else:
        raise ValueError(
            f"config.train.schedule: {cfg.schedule!r} is not 'constant', 'cosine', 'step' or 'nemo'"
        )
    if warmup <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def accumulate_gradients(
    tx: optax.GradientTransformation, every: int, phase: str = "end"
) -> optax.GradientTransformation:
    """``tx`` applied to the SUM of the gradients of ``every`` consecutive batches (zero updates in
    between), as NeMo's ``loss.backward()`` adds each batch's gradient into ``.grad`` until its
    ``optim.step()``. Summing, not averaging, matters for coupled L2 ('adam_l2'): the decay term
    ``wd * param`` is added once per update to the summed gradient, as torch's Adam adds it to the
    accumulated ``.grad``; Adam itself is invariant to the gradient's scale up to its ``eps``.

    ``phase``: :data:`GRAD_ACCUM_PHASES`. 'nemo' starts the counter one batch before an update, so
    the first batch is applied alone and then every ``every``-th (``optax.MultiSteps`` otherwise).
    The state is ``optax.MultiStepsState`` either way."""
    multi = optax.MultiSteps(tx, every_k_schedule=int(every), use_grad_mean=False)
    if phase == "end":
        return multi.gradient_transformation()
    if phase != "nemo":
        raise ValueError(f"config.train.grad_accum_phase: {phase!r} is not one of {GRAD_ACCUM_PHASES}")

    def init(params):
        return multi.init(params)._replace(mini_step=jnp.asarray(int(every) - 1, jnp.int32))

    return optax.GradientTransformation(init, multi.update)


def make_optimizer(cfg) -> optax.GradientTransformation:
    """``cfg`` (``config.train``, every key of ``base()`` (``nemo_jax/defaults.py``) present): the
    optimizer ``optimizer`` (:data:`OPTIMIZERS`) with the configured schedule, ``weight_decay``,
    gradient clipping (``clip_norm`` > 0, on the summed gradient) and ``grad_accum``-batch
    accumulation (:func:`accumulate_gradients`).

    'adam_l2' is torch.optim.Adam with ``weight_decay`` (torch's documented algorithm: ``g <- g + wd
    * p``, then Adam's moments on ``g``; eps 1e-8 added to the bias-corrected ``sqrt(v)``), which is
    ``add_decayed_weights(wd)`` followed by ``optax.adam``: every parameter is decayed, as NeMo's
    ``Adam(net.parameters(), lr, weight_decay=1e-4)`` decays every parameter of its network.
    """
    name = str(cfg.optimizer)
    if name not in OPTIMIZERS:
        raise ValueError(f"config.train.optimizer: {name!r} is not one of {OPTIMIZERS}")
    every, phase = _accumulation(cfg)
    schedule = learning_rate_schedule(cfg)
    decay = float(cfg.weight_decay)
    chain = []
    if float(cfg.get("clip_norm", 0.0)) > 0:
        chain.append(optax.clip_by_global_norm(float(cfg.clip_norm)))
    if name == "adamw":
        chain.append(optax.adamw(schedule, weight_decay=decay))
    else:
        chain += [optax.add_decayed_weights(decay), optax.adam(schedule)]
    tx = optax.chain(*chain)
    if every > 1:
        tx = accumulate_gradients(tx, every, phase)
    return tx


def _batches(epochs: float, num_examples: int, batch_size: int) -> int:
    """Batches (micro-steps) that show each of ``num_examples`` examples ``epochs`` times."""
    return max(1, math.ceil(float(epochs) * int(num_examples) / int(batch_size)))


def resolve_steps(cfg, num_examples: int):
    """A copy of ``cfg`` (``config.train``) whose ``steps`` (and ``lr_decay_steps``) are set from
    the training set's size when given in epochs.

    * ``epochs`` > 0 and ``steps`` = 0: ``steps = ceil(epochs * num_examples / batch_size)``. An
      epoch counts BATCHES (forward passes, each updating the memory bank), not optimizer updates,
      as NeMo's epoch loop runs over its whole DataLoader whatever ``--train_accumulate``: with
      ``grad_accum`` k an epoch applies about 1 / k as many updates. ``batch_size`` is the global
      batch (all processes). Batches may span an epoch boundary (the data repeat, then batch), so
      ``steps`` batches show every example ``epochs`` times on average.
    * ``steps`` > 0: the run is that many steps (an ``epochs`` beside it is ignored, with a warning),
      so ``--config.train.steps=N`` shortens a config that counts epochs.
    * ``lr_decay_epochs`` > 0: ``lr_decay_steps`` = the optimizer updates in that many epochs
      (:func:`update_count`; the 'nemo' schedule's first epoch at the full rate).

    ``num_examples``: training examples (one epoch). Raises ValueError naming the field.
    """
    out = cfg.copy_and_resolve_references()
    steps, epochs = int(cfg.steps), float(cfg.epochs)
    batch_size = int(cfg.batch_size)
    if epochs < 0 or steps < 0:
        raise ValueError(f"config.train.epochs / steps: expected >= 0, got {epochs} / {steps}")
    if int(num_examples) <= 0 and (epochs > 0 or float(cfg.lr_decay_epochs) > 0):
        raise ValueError("config.train.epochs: the training set is empty, so an epoch has no steps")
    if steps == 0:
        if epochs == 0:
            raise ValueError("config.train.steps and config.train.epochs are both 0: set one of them")
        out.steps = _batches(epochs, num_examples, batch_size)
    elif epochs > 0:
        warnings.warn(
            f"config.train.steps={steps} given: config.train.epochs={epochs:g} is ignored", stacklevel=2
        )
    decay_epochs = float(cfg.lr_decay_epochs)
    if decay_epochs < 0:
        raise ValueError(f"config.train.lr_decay_epochs: expected >= 0, got {decay_epochs}")
    if decay_epochs > 0:
        every, phase = _accumulation(cfg)
        batches = _batches(decay_epochs, num_examples, batch_size)
        out.lr_decay_steps = max(1, update_count(batches, every, phase))
    return out


def create_train_state(
    key: jax.Array, model, mesh: NeuralMesh, tx: optax.GradientTransformation, image_size
) -> TrainState:
    """Initialises the backbone on a dummy ``[1, H, W, 3]`` batch and the optimizer state.

    Args:
      key: PRNG key (raw ``[2]`` uint32); split into init and run keys.
      model: a flax.linen module, ``apply(variables, images, train=...)``.
      mesh: the initial neural mesh.
      tx: the optimizer.
      image_size: ``(H, W)``.
    """
    init_key, run_key = jax.random.split(key)
    variables = init_variables(model, init_key, jnp.zeros((1, *image_size, 3), jnp.float32), train=False)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        mesh=mesh,
        rng=run_key,
    )
