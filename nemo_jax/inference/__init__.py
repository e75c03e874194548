"""Pose inference: NeMo's objective, pose-grid scoring and optax refinement.

Modules:
  objective: similarity table, clutter similarity, NeMo's loss.
  search:    the pose search (grid + Adam refinement) over one PyTree of inputs, occluder maps.
  category:  a category's search set up once (config sized for its mesh, mesh padded to a bucket).
  landscape: loss along each camera parameter around a pose (figures).
  subtype:   one mesh per CAD sub-type: the ground-truth sub-type's mesh, or all searched (vmap).
  parametrization: what the refinement optimises (NeMo's camera position C + theta, or the angles).
  settings:  the configs' ``inference`` section and its map to a SearchConfig.
  six_d:     6D search: the object's 2D position and distance as well as its rotation.
"""

from nemo_jax.inference.category import bucketed_search_inputs, neural_mesh_inputs, search_config_for
from nemo_jax.inference.landscape import PARAMETERS, loss_landscape
from nemo_jax.inference.objective import clutter_similarity, nemo_loss, similarity_table
from nemo_jax.inference.parametrization import PARAMETRIZATIONS
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
from nemo_jax.inference.settings import default_settings, run_settings, search_config_from_settings
from nemo_jax.inference.six_d import (
    SixDConfig,
    SixDResult,
    candidate_centres,
    six_d_batch_unchecked,
    six_d_pose,
    six_d_single,
    size_six_d_tile_budget,
)
from nemo_jax.inference.subtype import SUBTYPE_MODES, search_subtypes, stacked_search_setup

__all__ = [
    "BATCH_AXES",
    "PARAMETERS",
    "PARAMETRIZATIONS",
    "PoseResult",
    "SearchConfig",
    "SUBTYPE_MODES",
    "SixDConfig",
    "SixDResult",
    "SearchInputs",
    "bucketed_search_inputs",
    "candidate_centres",
    "clutter_similarity",
    "default_settings",
    "loss_landscape",
    "nemo_loss",
    "neural_mesh_inputs",
    "occlusion_maps",
    "pose_grid",
    "pose_loss",
    "refine_optimizer",
    "refine_step",
    "run_settings",
    "search_batch",
    "search_batch_unchecked",
    "search_config_for",
    "search_config_from_settings",
    "search_pose",
    "search_single",
    "search_subtypes",
    "similarity_table",
    "six_d_batch_unchecked",
    "six_d_pose",
    "six_d_single",
    "size_six_d_tile_budget",
    "size_tile_budget",
    "stacked_search_setup",
    "trust_flags",
]
