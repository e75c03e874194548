"""Pose inference: NeMo's objective, pose-grid scoring and optax refinement.

Modules:
  objective: similarity table, clutter similarity, NeMo's loss.
  search:    the pose search (grid + Adam refinement) over one PyTree of inputs, occluder maps.
  category:  a category's search set up once (config sized for its mesh, mesh padded to a bucket).
  landscape: loss along each camera parameter around a pose (figures).
"""

from nemo_jax.inference.category import bucketed_search_inputs, neural_mesh_inputs, search_config_for
from nemo_jax.inference.landscape import PARAMETERS, loss_landscape
from nemo_jax.inference.objective import clutter_similarity, nemo_loss, similarity_table
from nemo_jax.inference.search import (
    BATCH_AXES,
    PoseResult,
    SearchConfig,
    SearchInputs,
    occlusion_maps,
    pose_grid,
    pose_loss,
    refine_optimizer,
    refine_step,
    search_batch,
    search_batch_unchecked,
    search_pose,
    search_single,
    size_tile_budget,
    trust_flags,
)

__all__ = [
    "BATCH_AXES",
    "PARAMETERS",
    "PoseResult",
    "SearchConfig",
    "SearchInputs",
    "bucketed_search_inputs",
    "clutter_similarity",
    "loss_landscape",
    "nemo_loss",
    "neural_mesh_inputs",
    "occlusion_maps",
    "pose_grid",
    "pose_loss",
    "refine_optimizer",
    "refine_step",
    "search_batch",
    "search_batch_unchecked",
    "search_config_for",
    "search_pose",
    "search_single",
    "similarity_table",
    "size_tile_budget",
    "trust_flags",
]
