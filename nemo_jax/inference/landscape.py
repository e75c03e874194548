"""Loss landscape: NeMo's loss along each camera parameter around a pose (Figure 1 draws it around
the ground truth)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax.inference.objective import clutter_similarity, similarity_table
from nemo_jax.inference.search import SearchInputs, pose_loss
from nemo_jax.render import RasterSettings

PARAMETERS = ("azimuth", "elevation", "theta", "distance")


@functools.partial(jax.jit, static_argnames="settings")
def _losses(poses, table, clutter_sim, vertices, faces, focal_px, principal, settings):
    return jax.vmap(
        lambda p: pose_loss(p, table, clutter_sim, vertices, faces, focal_px, principal, settings)[0]
    )(poses)


def loss_landscape(
    inputs: SearchInputs,
    center,
    settings: RasterSettings,
    num: int = 61,
    span_deg: float = 180.0,
    distance_span: float = 0.5,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Loss along each camera parameter with the others fixed at ``center``.

    NeMo's Figure 1 draws these curves around the ground-truth pose, so that the ground truth sits
    at the centre of each x-axis (``values[num // 2] == center[i]`` for odd ``num``).

    Args:
      inputs: :class:`nemo_jax.inference.SearchInputs` of ONE image (``observed [h, w, C]``,
        ``clutter [C]``, ``focal_px []`` in feature-map pixels, ``principal [2]``); its
        ``distance`` is not used (``center`` carries it).
      center: (azimuth, elevation, theta, distance), RADIANS and CAD units: the middle of every
        sweep (pass the ground truth for Figure 1).
      settings: rasterizer settings (feature resolution).
      num: samples per parameter.
      span_deg: angles are sampled over ``center +- span_deg`` (azimuth, theta) and
        ``center +- span_deg / 2`` (elevation), DEGREES.
      distance_span: distance is sampled over ``distance * (1 +- distance_span)``.

    Returns:
      ``{name: (values [num], losses [num])}`` for the names in ``PARAMETERS``; angle values in
      RADIANS (absolute, not offsets), distance in CAD units.
    """
    obs = jnp.asarray(inputs.observed, jnp.float32)
    if not np.all(np.isfinite(np.asarray(obs))):
        raise ValueError("loss_landscape: observed has non-finite values")
    table = similarity_table(jnp.asarray(inputs.vertex_features, jnp.float32), obs)
    clutter_sim = clutter_similarity(obs, jnp.asarray(inputs.clutter, jnp.float32))
    base = np.asarray(center, np.float32).reshape(4)
    span = np.deg2rad(span_deg)
    offsets = np.linspace(-1.0, 1.0, num, dtype=np.float32)
    scales = (span, span / 2, span, distance_span * base[3])
    out = {}
    for i, name in enumerate(PARAMETERS):
        poses = np.repeat(base[None], num, 0)
        poses[:, i] = base[i] + scales[i] * offsets
        losses = _losses(
            jnp.asarray(poses),
            table,
            clutter_sim,
            jnp.asarray(inputs.vertices, jnp.float32),
            jnp.asarray(inputs.faces, jnp.int32),
            jnp.float32(inputs.focal_px),
            jnp.asarray(inputs.principal, jnp.float32),
            settings,
        )
        out[name] = (poses[:, i].copy(), np.asarray(losses))
    return out
