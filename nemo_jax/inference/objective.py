"""NeMo's occlusion-robust objective: rendered-vs-observed feature similarity with a clutter model.

For a pose, NeMo renders the vertex features into the feature map's frame and compares them per
pixel with the observed (unit) features. A pixel counts towards the object only where the rendered
feature explains it better than the clutter (background) feature does, so occluders, which look
like clutter, neither help nor hurt:

    score = mean_p ReLU(<rendered_p, observed_p> - <clutter, observed_p>),   loss = 1 - score.

(NeMo's code writes it ``1 - (mean(max(obj, clu)) - mean(clu))``, the same thing.) The object
similarity ``<rendered_p, observed_p>`` is computed without rendering C channels: interpolating the
per-pixel table ``S[v, p] = <vertex_feature_v, observed_p>`` over the visible face gives it exactly
(``render(..., pixel_table=S)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def similarity_table(vertex_features: jax.Array, observed: jax.Array) -> jax.Array:
    """``S = vertex_features @ observed^T``.

    Args:
      vertex_features: ``[V, C]`` unit vertex features.
      observed: ``[H, W, C]`` unit image features.
    Returns:
      ``[V, H*W]`` table for ``render(..., pixel_table=...)``.
    """
    h, w, c = observed.shape
    return vertex_features @ observed.reshape(h * w, c).T


def clutter_similarity(observed: jax.Array, clutter: jax.Array) -> jax.Array:
    """``[H, W]`` similarity of each observed feature ``[H, W, C]`` to the clutter model: one
    feature ``[C]`` (NeMo: the normalised mean of the clutter bank), or ``N`` features ``[N, C]``
    (:func:`nemo_jax.mesh.cluster_clutter`), a pixel's similarity then its best over them
    (``[1, C]`` gives the same as ``[C]``)."""
    if clutter.ndim == 1:
        return observed @ clutter
    if clutter.shape[0] == 1:
        return observed @ clutter[0]
    return jnp.max(observed @ clutter.T, axis=-1)


def nemo_loss(object_similarity: jax.Array, clutter_sim: jax.Array) -> jax.Array:
    """``1 - mean_p ReLU(object_similarity - clutter_sim)``; both ``[H, W]``, zero object
    similarity off the object. Returns ``[]``."""
    return 1.0 - jnp.mean(jax.nn.relu(object_similarity - clutter_sim))
