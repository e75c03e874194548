"""Pose inference: NeMo's objective, pose-grid scoring and optax refinement."""

from nemo_jax.inference.objective import clutter_similarity, nemo_loss, similarity_table

__all__ = ["clutter_similarity", "nemo_loss", "similarity_table"]
