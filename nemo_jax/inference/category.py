"""A category's pose search set up once: the search config sized for its neural mesh and camera,
and the mesh padded into a shared compilation bucket.

Used by :mod:`nemo_jax.apps.evaluate` and :mod:`nemo_jax.apps.estimate` before calling
:func:`nemo_jax.inference.search_batch` / :func:`nemo_jax.inference.search_pose`.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import trimesh

from nemo_jax.inference.search import SearchConfig, SearchInputs, size_tile_budget
from nemo_jax.mesh import NeuralMesh, clutter_model
from nemo_jax.mesh.padding import pad_mesh, pad_rows, round_up
from nemo_jax.render import RasterSettings


def neural_mesh_inputs(
    neural_mesh: NeuralMesh, observed, focal_px, principal, distance, clutter_clusters: int = 1
) -> SearchInputs:
    """:class:`nemo_jax.inference.SearchInputs` of ``observed`` (``[h, w, C]`` or ``[B, h, w, C]``)
    against a trained neural mesh: its vertices, faces and vertex features, and its clutter bank's
    normalised mean as the clutter feature ``[C]`` (``clutter_clusters > 1``: the bank's k-means
    centres ``[N, C]``, :func:`nemo_jax.mesh.clutter_model`; per image ``[B, N, C]`` for a batch).
    ``focal_px`` in feature-map pixels, ``principal`` (x, y) in feature-map pixels, ``distance``
    in CAD units."""
    clutter = clutter_model(neural_mesh, clutter_clusters)
    if clutter.ndim == 2 and np.ndim(observed) == 4:
        clutter = jnp.broadcast_to(clutter, (np.shape(observed)[0], *clutter.shape))
    return SearchInputs(
        observed=observed,
        vertex_features=neural_mesh.features,
        clutter=clutter,
        vertices=neural_mesh.vertices,
        faces=neural_mesh.faces,
        focal_px=focal_px,
        principal=principal,
        distance=distance,
    )


def search_config_for(
    neural_mesh, feature_hw, focal_px, principal, distance, variant: str = "hard", **overrides
) -> SearchConfig:
    """NeMo's search settings for a feature map of size ``feature_hw`` ``(h, w)``, the tile budget
    sized over the initial grid with a 1.5x margin for the refinement's poses.

    ``neural_mesh``: anything with ``vertices [V, 3]`` and ``faces [F, 3]``; ``focal_px`` ``[]`` in
    feature-map pixels, ``principal`` ``[2]`` (x, y) feature-map pixels, ``distance`` ``[]`` CAD
    units (one image's camera, see :class:`nemo_jax.inference.SearchInputs`); ``overrides``: fields
    of :class:`nemo_jax.inference.SearchConfig`.
    """
    # Closed, consistently wound meshes (NeMo's cuboids) render identically with back faces culled.
    mesh = trimesh.Trimesh(np.asarray(neural_mesh.vertices), np.asarray(neural_mesh.faces), process=False)
    cull = bool(mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0)
    raster = RasterSettings(
        height=feature_hw[0],
        width=feature_hw[1],
        variant=variant,
        tile_height=4,
        tile_width=4,
        cull_backfaces=cull,
    )
    config = SearchConfig(raster=raster, **overrides)
    return size_tile_budget(
        neural_mesh.vertices, neural_mesh.faces, focal_px, principal, distance, config, margin=1.5
    )


def bucketed_search_inputs(vertices, faces, features, config: SearchConfig, step: int = 256):
    """Pads a neural mesh and rounds the search's tile budget up to multiples of ``step`` so that
    categories of similar size share ONE compilation of the jitted search (shapes and the static
    config must match): vertices ``[V, 3]`` and features ``[V, D]`` get zero rows, faces ``[F, 3]``
    get ``-1`` rows (masked by the rasterizer: they draw nothing). The search's result is that of
    the unpadded mesh; only the z-buffer's depth quantisation (bits left beside the face index)
    changes, by one bit at most for these sizes. Compiling once instead of per category saved ~30 s
    per category in the CPU demo.

    Returns ``(vertices, faces, features, config)``.
    """
    nv, nf = round_up(len(vertices), step), round_up(len(faces), step)
    vertices, faces = pad_mesh(np.asarray(vertices, np.float32), np.asarray(faces, np.int32), nv, nf)
    features = jnp.asarray(pad_rows(np.asarray(features, np.float32), nv, 0))
    vertices, faces = jnp.asarray(vertices), jnp.asarray(faces)
    budget = round_up(config.raster.budget(int(faces.shape[0])), step)
    config = dataclasses.replace(config, raster=dataclasses.replace(config.raster, tile_budget=budget))
    return vertices, faces, features, config
