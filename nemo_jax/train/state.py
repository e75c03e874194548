"""The training state PyTree and the optimizer (optax AdamW + schedule + gradient accumulation)."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from nemo_jax.mesh.neural import NeuralMesh


@flax.struct.dataclass
class TrainState:
    """Everything a training step reads and writes; saved whole by the checkpointer.

    Attributes:
      step: ``[]`` int32, micro-steps taken (one per batch).
      params, batch_stats: the backbone's flax variables.
      opt_state: optax state (AdamW inside ``optax.MultiSteps``).
      mesh: the neural mesh: vertices, faces, memory bank ``[V, D]``, clutter queue ``[K, D]``.
      rng: ``[2]`` uint32 raw PRNG key, split every step.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    mesh: NeuralMesh
    rng: jax.Array


def learning_rate_schedule(cfg) -> optax.Schedule:
    """``cfg`` (``config.train``): ``lr``, ``schedule`` ('constant' | 'cosine' | 'step' | 'nemo'),
    ``warmup_steps``, ``steps``, ``grad_accum``, ``lr_decay_steps``, ``lr_decay_factor``.

    Counts optimizer updates (``steps / grad_accum`` in all). 'step' multiplies the rate by
    ``lr_decay_factor`` after every ``lr_decay_steps`` updates (NeMo's intended step decay, which
    its code never ran). 'nemo' is the rate NeMo's code trained with: ``lr`` for the first
    ``lr_decay_steps`` updates (its epoch 0), then ``lr * lr_decay_factor`` to the end (its
    ``lr = args.lr * 0.2`` every 10 epochs sets, and never compounds, the rate: 1e-4, then 2e-5).
    """
    updates = max(int(cfg.steps) // int(cfg.grad_accum), 1)
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


def make_optimizer(cfg) -> optax.GradientTransformation:
    """AdamW with the configured schedule, gradient clipping and ``grad_accum``-step accumulation."""
    chain = []
    if float(cfg.get("clip_norm", 0.0)) > 0:
        chain.append(optax.clip_by_global_norm(float(cfg.clip_norm)))
    chain.append(optax.adamw(learning_rate_schedule(cfg), weight_decay=float(cfg.weight_decay)))
    tx = optax.chain(*chain)
    if int(cfg.grad_accum) > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=int(cfg.grad_accum)).gradient_transformation()
    return tx


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
    init = jax.jit(lambda k: model.init(k, jnp.zeros((1, *image_size, 3), jnp.float32), train=False))
    variables = init(init_key)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        mesh=mesh,
        rng=run_key,
    )
