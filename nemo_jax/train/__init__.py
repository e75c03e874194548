"""Contrastive training of the feature backbone and the neural mesh (NeMo), optax + orbax + sharding.

Modules (one concept each):

* ``contrastive``: NeMo's loss (vertex classification vs memory bank + clutter), bilinear
  sampling, clutter sampling, per-vertex bank targets.
* ``visibility``: vertex projections, z-buffer visibility and the object footprint from the
  rasterizer.
* ``augment``: horizontal flip (pose flip + vertex re-indexing) and colour jitter.
* ``state``: ``TrainState`` PyTree, the optimizer (AdamW or NeMo's Adam with L2) + learning-rate
  schedule + gradient accumulation, the run's length in steps or epochs.
* ``step``: the pure train step (jit once, state donated).
* ``parallel``: data parallelism with Mesh + NamedSharding; multi-host initialisation.
* ``checkpoint``: orbax CheckpointManager with config/mesh compatibility checks.
* ``run``: a run's setup (mesh geometry, backbone), ``load_run(workdir)`` for the apps and
  ``upgrade_config`` for configs stored before a key existed.
* ``sources``: train / held-out example sources and the random-access batch sequence.
* ``metrics``: ``MetricWriter`` (metrics.jsonl + TensorBoard).
* ``evaluate``: held-out nearest-vertex matching.
* ``loop``: ``train(config, workdir)``: resume, jitted steps, checkpoints, progress, evaluation.
* ``subtype_data``: per-CAD-sub-type meshes (MultiCuboid, CAD) from the config, toy data and
  checks.

Entry point: ``nemo-jax-train --config configs/<name>.py --workdir DIR``.
"""

from nemo_jax.train.augment import colour_jitter, flip_example
from nemo_jax.train.checkpoint import Checkpointer
from nemo_jax.train.contrastive import (
    bank_targets,
    bilinear_sample,
    contrastive_loss,
    neighbour_mask,
    sample_clutter,
)
from nemo_jax.train.evaluate import evaluate
from nemo_jax.train.loop import NonFiniteError, train
from nemo_jax.train.run import build_geometry, load_run
from nemo_jax.train.state import TrainState, create_train_state, learning_rate_schedule, make_optimizer
from nemo_jax.train.step import StepConfig, jit_step, make_train_step
from nemo_jax.train.visibility import VertexView, vertex_view

__all__ = [
    "Checkpointer",
    "NonFiniteError",
    "StepConfig",
    "TrainState",
    "VertexView",
    "bank_targets",
    "bilinear_sample",
    "build_geometry",
    "colour_jitter",
    "contrastive_loss",
    "create_train_state",
    "evaluate",
    "flip_example",
    "jit_step",
    "learning_rate_schedule",
    "load_run",
    "make_optimizer",
    "make_train_step",
    "neighbour_mask",
    "sample_clutter",
    "train",
    "vertex_view",
]
