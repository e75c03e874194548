"""Pose inference: NeMo's objective, pose-grid scoring and optax refinement.

Modules:
  objective: similarity table, clutter similarity, NeMo's loss.
  search:    the pose search (grid + Adam refinement), occluder maps.
  landscape: loss along each camera parameter around a pose (figures).
"""

from nemo_jax.inference.landscape import PARAMETERS, loss_landscape
from nemo_jax.inference.objective import clutter_similarity, nemo_loss, similarity_table
from nemo_jax.inference.search import (
    PoseResult,
    SearchConfig,
    occlusion_maps,
    pose_grid,
    pose_loss,
    refine_optimizer,
    refine_step,
    search_config,
    search_pose,
    search_single,
    size_tile_budget,
)

__all__ = [
    "PARAMETERS",
    "PoseResult",
    "SearchConfig",
    "clutter_similarity",
    "loss_landscape",
    "nemo_loss",
    "occlusion_maps",
    "pose_grid",
    "pose_loss",
    "refine_optimizer",
    "refine_step",
    "search_config",
    "search_pose",
    "search_single",
    "similarity_table",
    "size_tile_budget",
]
