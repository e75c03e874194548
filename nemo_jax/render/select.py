"""The K nearest primitives of every pixel, from tiled (primitive, pixel) pairs, with static shapes.

Variants that blend a fixed number of layers per pixel (``pytorch3d``: K faces; ``gaussian``: K
vertex kernels) need, per pixel, the K candidate pairs of smallest depth. With pairs in no
particular order this is one sort: each pair's int32 key packs its pixel index above its depth
quantised over the view's depth range, so after ``lax.sort`` every pixel's pairs are contiguous
and nearest first; a pair's rank in its pixel's run is its position minus the run's start (a
cumulative max of the run starts), and ranks ``< K`` are scattered into ``[P, K]`` slots. No
gradient flows here: callers recompute differentiable quantities for the selected pairs.
Cost: one sort of ``T * th * tw`` keys per view, independent of K.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from nemo_jax.render.scatter import INT32_MAX, flat_scatter


def nearest_k(pixel: jax.Array, depth: jax.Array, valid: jax.Array, num_pixels: int, k: int) -> jax.Array:
    """Indices of the ``k`` smallest-``depth`` valid pairs of every pixel.

    Args:
      pixel: ``[N]`` int32 pixel index of each pair, in ``[0, num_pixels)`` where ``valid``.
      depth: ``[N]`` float, smaller = nearer (any monotone depth: z, ray distance).
      valid: ``[N]`` bool, the pair is a candidate.
      num_pixels: ``P``.
      k: layers kept per pixel.

    Returns:
      ``[P, k]`` int32 pair indices into the ``N`` pairs, nearest first, ``-1`` for empty slots.
      Pairs at equal quantised depth keep their input order (a stable sort).
    """
    pixel, depth, valid = jax.lax.stop_gradient((pixel, depth, valid))
    pbits = max(1, math.ceil(math.log2(num_pixels)))
    dbits = 31 - pbits
    if dbits < 8:
        raise ValueError(f"nearest_k: {num_pixels} pixels leave {dbits} bits of depth (need >= 8)")
    levels = (1 << dbits) - 2  # keys stay below INT32_MAX, the empty marker
    lo = jnp.min(jnp.where(valid, depth, jnp.inf))
    hi = jnp.max(jnp.where(valid, depth, -jnp.inf))
    lo = jnp.where(jnp.isfinite(lo), lo, 0.0)
    span = jnp.where(hi > lo, hi - lo, 1.0)
    q = jnp.clip((depth - lo) * (levels / span), 0.0, levels).astype(jnp.int32)
    key = jnp.where(valid, (pixel << dbits) | q, INT32_MAX)
    order = jnp.arange(key.shape[0], dtype=jnp.int32)
    key, order = jax.lax.sort((key, order), num_keys=1, is_stable=True)
    run_pixel = key >> dbits
    position = jnp.arange(key.shape[0], dtype=jnp.int32)
    first = jnp.concatenate([jnp.ones((1,), bool), run_pixel[1:] != run_pixel[:-1]])
    run_start = jax.lax.cummax(jnp.where(first, position, 0))
    rank = position - run_start
    keep = (key != INT32_MAX) & (rank < k)
    slot = jnp.where(keep, run_pixel * k + rank, -1)
    # Slots are unique, so the scatter-min is a plain scatter (min keeps it flat under vmap).
    chosen = flat_scatter(num_pixels * k, "min")(slot, order)
    return jnp.where(chosen == INT32_MAX, -1, chosen).reshape(num_pixels, k)
