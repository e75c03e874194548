"""Pose search with one neural mesh per CAD sub-type (MultiCuboid, per-sub-type CAD meshes).

Two modes (``config.inference.subtype``):

* ``"ground_truth"`` (NeMo's protocol, its quirk of using the annotation at test time): each image
  is searched against the mesh of its annotated ``cad_index``;
* ``"search"``: every sub-type's mesh is searched (``vmap`` over sub-types) and the sub-type whose
  best pose has the lowest NeMo loss wins.

The sub-type meshes arrive stacked and padded (:mod:`nemo_jax.mesh.subtypes`): in
:class:`nemo_jax.inference.SearchInputs` ``vertex_features [S, V, C]``, ``vertices [S, V, 3]``,
``faces [S, F, 3]`` (``-1`` rows draw nothing) and ``clutter [S, C]`` (each sub-type's clutter
feature); the per-image fields are batched as in :func:`nemo_jax.inference.search_batch`.
Sub-type indices here are 0-based (``cad_index - 1``).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from nemo_jax.inference.category import search_config_for
from nemo_jax.inference.search import BATCH_AXES, PoseResult, SearchConfig, SearchInputs, search_single
from nemo_jax.mesh import NeuralMesh, clutter_feature
from nemo_jax.mesh.padding import round_up
from nemo_jax.mesh.subtypes import unstack

SUBTYPE_MODES = ("ground_truth", "search")

# vmap axes of "search": per image the image fields (BATCH_AXES, the mesh shared), then per
# sub-type the mesh fields and the clutter feature (the image fields shared).
_PER_SUBTYPE = SearchInputs(
    **{
        f.name: 0 if getattr(BATCH_AXES, f.name) is None or f.name == "clutter" else None
        for f in dataclasses.fields(SearchInputs)
    }
)


def _broadcast_clutter(inputs: SearchInputs) -> SearchInputs:
    """``clutter [S, C]`` -> ``[S, B, C]``."""
    b = inputs.observed.shape[0]
    s, c = inputs.clutter.shape
    return inputs.replace(clutter=jnp.broadcast_to(inputs.clutter[:, None], (s, b, c)))


@functools.partial(jax.jit, static_argnames=("config", "mode"))
def search_subtypes(
    inputs: SearchInputs, subtype: jax.Array, config: SearchConfig, mode: str = "ground_truth"
) -> tuple[PoseResult, jax.Array, jax.Array]:
    """Pose search of a batch against stacked sub-type meshes.

    Args:
      inputs: per image ``observed [B, h, w, C]``, ``focal_px [B]``, ``principal [B, 2]``,
        ``distance [B]``; per sub-type ``vertex_features [S, V, C]``, ``vertices [S, V, 3]``,
        ``faces [S, F, 3]`` int32, ``clutter [S, C]``.
      subtype: ``[B]`` int, the annotated sub-type (0-based); read by ``"ground_truth"`` only
        (``"search"`` ignores it: pass zeros for unlabelled images).
      config: static search settings (its tile budget must cover every sub-type mesh).
      mode: ``"ground_truth"`` or ``"search"``.
    Returns:
      ``(result, chosen [B] int32, subtype_loss [B, S])``: the :class:`PoseResult` (leading
      ``[B]``) with the chosen sub-type's pose, the chosen sub-type (0-based), and each sub-type's
      best loss (``"search"``; for ``"ground_truth"`` inf except at the annotated sub-type).
    """
    single = functools.partial(search_single, config=config)
    n_sub = inputs.vertices.shape[0]
    if mode == "ground_truth":
        per_image = inputs.replace(
            vertex_features=inputs.vertex_features[subtype],
            vertices=inputs.vertices[subtype],
            faces=inputs.faces[subtype],
            clutter=inputs.clutter[subtype],
        )
        result = jax.vmap(single)(per_image)  # every field per image
        losses = jnp.where(jax.nn.one_hot(subtype, n_sub) > 0, result.loss[:, None], jnp.inf)
        return result, subtype.astype(jnp.int32), losses
    if mode != "search":
        raise ValueError(f"search_subtypes: mode {mode!r} is not one of {SUBTYPE_MODES}")
    batch = jax.vmap(single, in_axes=(BATCH_AXES,))
    results = jax.vmap(batch, in_axes=(_PER_SUBTYPE,))(_broadcast_clutter(inputs))  # [S, B, ...]
    chosen = jnp.argmin(results.loss, axis=0).astype(jnp.int32)  # [B]; first sub-type on ties
    picked = jax.tree.map(
        lambda x: jnp.take_along_axis(x, chosen.reshape((1, -1) + (1,) * (x.ndim - 2)), 0)[0], results
    )
    return picked, chosen, results.loss.T


def stacked_search_setup(
    mesh: NeuralMesh, feature_hw, focal_px, principal, distance, variant="hard", step=256, **overrides
):
    """The search config and padded stacked inputs for a per-sub-type neural mesh.

    The tile budget is sized for each sub-type's mesh (as :func:`search_config_for`) and the largest
    kept; back faces are culled only if every sub-type's mesh allows it. Vertices and faces are padded
    up to multiples of ``step`` (one compilation for similar sizes, as
    :func:`nemo_jax.inference.bucketed_search_inputs`).

    Args:
      mesh: stacked :class:`nemo_jax.mesh.NeuralMesh` (``vertices [S, V, 3]``, ...).
      feature_hw, focal_px, principal, distance, variant, overrides: as :func:`search_config_for`.
    Returns:
      ``(config, mesh_inputs)``: ``mesh_inputs`` is a dict with ``vertex_features [S, V', C]``,
      ``vertices [S, V', 3]``, ``faces [S, F', 3]`` and ``clutter [S, C]`` for :class:`SearchInputs`.
    """
    parts = unstack(mesh)
    configs = [
        search_config_for(p, feature_hw, focal_px, principal, distance, variant=variant, **overrides)
        for p in parts
    ]
    cull = all(c.raster.cull_backfaces for c in configs)
    faces_per_mesh = round_up(mesh.faces.shape[1], step)
    budget = round_up(max(c.raster.budget(faces_per_mesh) for c in configs), step)
    config = dataclasses.replace(
        configs[0], raster=dataclasses.replace(configs[0].raster, tile_budget=budget, cull_backfaces=cull)
    )
    v_pad = round_up(mesh.vertices.shape[1], step) - mesh.vertices.shape[1]
    f_pad = faces_per_mesh - mesh.faces.shape[1]
    inputs = {
        "vertex_features": jnp.pad(jnp.asarray(mesh.features, jnp.float32), ((0, 0), (0, v_pad), (0, 0))),
        "vertices": jnp.pad(jnp.asarray(mesh.vertices, jnp.float32), ((0, 0), (0, v_pad), (0, 0))),
        "faces": jnp.pad(
            jnp.asarray(mesh.faces, jnp.int32), ((0, 0), (0, f_pad), (0, 0)), constant_values=-1
        ),
        "clutter": jax.vmap(clutter_feature)(mesh),
    }
    return config, inputs
