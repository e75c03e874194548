"""NeMo's contrastive vertex-feature objective, on explicit arrays (one batch, static shapes).

For each visible vertex ``i`` of image ``b``, the backbone feature ``f_bi`` sampled at the vertex's
projection is classified among all vertex features of the memory bank and all clutter features:

    logit_bij = <f_bi, bank_j> / T                       (j a vertex)
    logit_bik = <f_bi, clutter_k> / T + log(w_clutter)   (k a clutter entry)
    loss_main = mean over visible (b, i) of cross_entropy(logits_bi, target i)

with vertices ``j != i`` whose projections lie within ``distance_thr`` of vertex ``i``'s removed
from the negatives (they look the same at stride 8). The clutter regulariser pushes sampled
background features away from the vertex features: ``loss_reg = w_reg * mean <c_bn, bank_j>``.
This is NeMo's ``mask_remove_near`` + ``CrossEntropyLoss`` + ``noise_sim`` (TrainNeMo.py).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from nemo_jax.mesh.neural import normalize

# NeMo subtracts this from the logits of excluded neighbours (mask_remove_near's eps).
NEIGHBOUR_PENALTY = 1e5


def bilinear_sample(features: jax.Array, points: jax.Array) -> jax.Array:
    """Bilinear samples of a feature map at continuous positions.

    Args:
      features: ``[h, w, D]``.
      points: ``[N, 2]`` (x, y) in feature-map coordinates (cell centres at integers). Positions
        outside the map are clamped to the border.
    Returns:
      ``[N, D]``.
    """
    h, w, _ = features.shape
    x = jnp.clip(points[:, 0], 0.0, w - 1.0)
    y = jnp.clip(points[:, 1], 0.0, h - 1.0)
    x0 = jnp.clip(jnp.floor(x), 0, max(w - 2, 0)).astype(jnp.int32)
    y0 = jnp.clip(jnp.floor(y), 0, max(h - 2, 0)).astype(jnp.int32)
    x1 = jnp.minimum(x0 + 1, w - 1)
    y1 = jnp.minimum(y0 + 1, h - 1)
    wx = (x - x0)[:, None]
    wy = (y - y0)[:, None]
    top = features[y0, x0] * (1 - wx) + features[y0, x1] * wx
    bottom = features[y1, x0] * (1 - wx) + features[y1, x1] * wx
    return top * (1 - wy) + bottom * wy


def sample_clutter(key: jax.Array, features: jax.Array, object_mask: jax.Array, num: int):
    """``num`` background features drawn uniformly without replacement from cells off the object.

    Args:
      key: PRNG key.
      features: ``[h, w, D]``.
      object_mask: ``[h, w]`` bool, True on cells the object (its projected mesh) touches.
      num: static number of samples.
    Returns:
      ``(samples [num, D], valid [num] bool)``; ``valid`` is False for samples that had to come
      from object cells because fewer than ``num`` background cells exist.
    """
    h, w, d = features.shape
    gumbel = jax.random.gumbel(key, (h * w,))
    background = ~object_mask.reshape(h * w)
    score = jnp.where(background, gumbel, gumbel - 1e6)
    _, index = jax.lax.top_k(score, num)
    return features.reshape(h * w, d)[index], background[index]


def neighbour_mask(positions: jax.Array, distance_thr: float) -> jax.Array:
    """``[V, V]`` bool: True for pairs ``j != i`` closer than ``distance_thr`` (NeMo's
    ``mask_remove_near``). ``positions``: ``[V, P]`` (projected pixels or 3-D vertices)."""
    diff = positions[:, None, :] - positions[None, :, :]
    dist = jnp.sqrt(jnp.sum(diff * diff, -1))
    return (dist <= distance_thr) & ~jnp.eye(positions.shape[0], dtype=bool)


def contrastive_loss(
    vertex_features: jax.Array,
    visible: jax.Array,
    positions: jax.Array,
    bank: jax.Array,
    clutter: jax.Array,
    clutter_samples: jax.Array,
    clutter_valid: jax.Array | None = None,
    bank_mask: jax.Array | None = None,
    other_bank: jax.Array | None = None,
    other_mask: jax.Array | None = None,
    *,
    temperature: float = 0.07,
    distance_thr: float = 48.0,
    clutter_weight: float = 5e-3,
    reg_weight: float = 0.1,
    total=None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """NeMo's training loss for one batch.

    Args:
      vertex_features: ``[B, V, D]`` unit features sampled at the vertices' projections.
      visible: ``[B, V]`` bool, vertices visible in each image (only these are classified).
      positions: ``[B, V, P]`` positions used for neighbour removal: projected pixels (NeMo,
        ``P = 2``, image pixels) or 3-D vertex positions.
      bank: ``[V, D]`` unit vertex features (memory bank; no gradient flows into it), or
        ``[B, V, D]``: one bank per image (per-sub-type meshes, :mod:`nemo_jax.mesh.subtypes`).
      clutter: ``[K, D]`` unit clutter queue (no gradient), or ``[B, K, D]`` per image.
      clutter_samples: ``[B, N, D]`` this batch's background features (for the regulariser).
      clutter_valid: optional ``[B, N]`` bool; invalid samples are left out of the regulariser.
      bank_mask: optional ``[V]`` or ``[B, V]`` bool; False marks padding bank entries, which are
        neither negatives nor in the regulariser.
      other_bank: optional ``[M, D]`` unit features that are extra negatives for every vertex (no
        gradient): one backbone for several categories, the other categories' vertex features
        (``config.train.cross_category_negatives``). They enter the softmax denominator only.
      other_mask: ``[B, M]`` bool with ``other_bank``: which entries are negatives for image ``b``
        (False: the image's own category and padding).
      temperature: softmax temperature ``T`` (NeMo: 0.07).
      distance_thr: neighbours within this distance (units of ``positions``) are not negatives.
      clutter_weight: ``w`` multiplying the clutter terms of the softmax denominator (NeMo's
        ``weight_noise``; enters as ``+log(w)`` on the clutter logits).
      reg_weight: weight of the clutter regulariser (NeMo: 0.1).
      total: for a batch split over devices (inside ``shard_map``): sums a value over the devices
        (:func:`nemo_jax.train.parallel.ordered_sum`). The normalisers (visible vertices, clutter
        weights) are then global and the returned losses are this device's shares: summed over
        the devices they are the loss of the whole batch.
    Returns:
      ``(loss [], aux)`` with ``aux`` holding ``loss_main``, ``loss_reg``, ``num_visible`` (of the
      whole batch).
    """
    bank = jax.lax.stop_gradient(bank)
    clutter = jax.lax.stop_gradient(clutter)
    v = bank.shape[-2]
    if vertex_features.shape[1] != v:
        raise ValueError(f"contrastive_loss: {vertex_features.shape[1]} vertex features vs {v} bank entries")
    per_image = "b" if bank.ndim == 3 else ""
    vertex_logits = jnp.einsum(f"bvd,{per_image}ud->bvu", vertex_features, bank) / temperature  # [B, V, V]
    excluded = jax.vmap(neighbour_mask, in_axes=(0, None))(positions, distance_thr)
    if bank_mask is not None:
        padding = ~jnp.broadcast_to(bank_mask, (vertex_features.shape[0], v))
        excluded = excluded | padding[:, None, :]
    vertex_logits = vertex_logits - NEIGHBOUR_PENALTY * excluded.astype(vertex_logits.dtype)
    per_image_clutter = "b" if clutter.ndim == 3 else ""
    clutter_logits = jnp.einsum(f"bvd,{per_image_clutter}kd->bvk", vertex_features, clutter) / temperature
    clutter_logits = clutter_logits + math.log(clutter_weight)
    parts = [vertex_logits, clutter_logits]
    if other_bank is not None:
        other_bank = jax.lax.stop_gradient(other_bank)
        if other_mask is None:
            raise ValueError("contrastive_loss: other_bank needs other_mask [B, M]")
        other_logits = jnp.einsum("bvd,md->bvm", vertex_features, other_bank) / temperature
        other_logits = other_logits - NEIGHBOUR_PENALTY * (~other_mask[:, None, :]).astype(other_logits.dtype)
        parts.append(other_logits)
    logits = jnp.concatenate(parts, axis=-1)  # [B, V, V + K (+ M)]
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target = jnp.diagonal(vertex_logits, axis1=1, axis2=2)  # [B, V]
    per_vertex = log_z - target
    weight = visible.astype(per_vertex.dtype)
    num_visible = jnp.sum(weight)
    if total is not None:
        num_visible = total(num_visible)
    loss_main = jnp.sum(per_vertex * weight) / jnp.maximum(num_visible, 1.0)

    noise_sim = jnp.einsum(f"bnd,{per_image}vd->bnv", clutter_samples, bank)  # [B, N, V]
    if clutter_valid is None and bank_mask is None and total is None:
        loss_reg = jnp.mean(noise_sim)
    elif clutter_valid is None and bank_mask is None:
        loss_reg = jnp.sum(noise_sim) / total(jnp.asarray(noise_sim.size, noise_sim.dtype))
    else:
        b, n = clutter_samples.shape[:2]
        cw = jnp.ones((b, n)) if clutter_valid is None else clutter_valid.astype(noise_sim.dtype)
        vw = jnp.ones((b, v)) if bank_mask is None else jnp.broadcast_to(bank_mask, (b, v))
        w = cw[:, :, None] * vw.astype(noise_sim.dtype)[:, None, :]
        count = jnp.sum(w) if total is None else total(jnp.sum(w))
        loss_reg = jnp.sum(noise_sim * w) / jnp.maximum(count, 1.0)
    loss_reg = reg_weight * loss_reg
    loss = loss_main + loss_reg
    return loss, {"loss_main": loss_main, "loss_reg": loss_reg, "num_visible": num_visible}


def bank_targets(vertex_features: jax.Array, visible: jax.Array, total=None) -> tuple[jax.Array, jax.Array]:
    """Per-vertex mean over the batch of the features where the vertex is visible.

    Args:
      vertex_features: ``[B, V, D]``; visible: ``[B, V]`` bool.
      total: for a batch split over devices, sums over the devices (see :func:`contrastive_loss`).
    Returns:
      ``(mean [V, D], count [V])``; ``mean`` is 0 where ``count == 0``.
    """
    w = visible.astype(vertex_features.dtype)
    count = jnp.sum(w, 0)
    summed = jnp.einsum("bv,bvd->vd", w, vertex_features)
    if total is not None:
        summed, count = total(summed), total(count)
    return summed / jnp.maximum(count, 1.0)[:, None], count


def unit_samples(features: jax.Array) -> jax.Array:
    """Re-normalises sampled features (bilinear mixing of unit vectors shortens them)."""
    return normalize(features)
