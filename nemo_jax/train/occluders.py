"""Occluder augmentation inside the train step: a patch of ANOTHER image of the batch pasted over
the training object through a random rectangle or ellipse.

A different family from the test-time occluders (:mod:`nemo_jax.data.occlusion`,
:mod:`nemo_jax.data.scenes`, which draw objects, polygons and blobs): here the occluder's texture is
real image content (background or another object) from the same batch, so the backbone learns
that an object's features survive when part of it is hidden, and that whatever hides it is clutter.
The vertices under the occluder are not visible (no pull toward their own feature), and the
feature cells it mostly covers count as background for the clutter samples.

Everything is drawn from explicit PRNG keys with static shapes: every image gets a mask (all
False where the per-example coin says no occluder).
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

# Aspect ratios (width / height) of the occluder, log-uniform in [1 / MAX_ASPECT, MAX_ASPECT].
MAX_ASPECT = 2.0


@flax.struct.dataclass
class Occluders:
    """Per-image occluder draws (a leading batch axis ``[B]``; image pixels, x right, y down).

    Attributes:
      apply: ``[B]`` bool, whether the image gets an occluder.
      centre: ``[B, 2]`` (x, y) of the shape's centre.
      half_size: ``[B, 2]`` half width / half height (rectangle) or semi-axes (ellipse).
      ellipse: ``[B]`` bool, ellipse (else rectangle).
      source: ``[B]`` int32 index of the image the patch is cut from (another image of the batch
        when it has more than one).
      offset: ``[B, 2]`` int32 (dx, dy): the pasted pixel ``(x, y)`` comes from the source's
        ``((x + dx) mod W, (y + dy) mod H)``.
    """

    apply: jax.Array
    centre: jax.Array
    half_size: jax.Array
    ellipse: jax.Array
    source: jax.Array
    offset: jax.Array


def object_boxes(points: jax.Array, visible: jax.Array, image_size: tuple[int, int]) -> jax.Array:
    """``[B, 4]`` (x0, y0, x1, y1) image pixels: the box of each image's visible vertex projections
    (``points [B, V, 2]``, ``visible [B, V]``), clipped to the image; the whole image where no
    vertex is visible."""
    height, width = image_size
    inf = jnp.float32(jnp.inf)
    lo = jnp.min(jnp.where(visible[..., None], points, inf), axis=1)
    hi = jnp.max(jnp.where(visible[..., None], points, -inf), axis=1)
    full = jnp.array([-0.5, -0.5, width - 0.5, height - 0.5], jnp.float32)
    box = jnp.concatenate([jnp.maximum(lo, full[:2]), jnp.minimum(hi, full[2:])], axis=-1)
    return jnp.where(jnp.any(visible, axis=1)[:, None], box, full)


def draw_occluders(
    key: jax.Array, boxes: jax.Array, image_size: tuple[int, int], prob: float, fraction: tuple[float, float]
) -> Occluders:
    """Random occluders over the object boxes ``[B, 4]`` (image pixels).

    Args:
      key: PRNG key.
      boxes: ``[B, 4]`` (x0, y0, x1, y1) object boxes.
      image_size: static ``(H, W)``.
      prob: probability that an image gets an occluder.
      fraction: ``(low, high)``: the occluder's area is uniform in that fraction of the box's area
        (an ellipse has the area of its rectangle's ``pi / 4``, so its axes are scaled up to keep
        the fraction); its aspect ratio log-uniform in ``[1 / MAX_ASPECT, MAX_ASPECT]``, and its
        centre uniform where the shape stays inside the box (the box centre where it cannot).
    """
    height, width = image_size
    b = boxes.shape[0]
    k_apply, k_frac, k_aspect, k_shape, k_centre, k_source, k_offset = jax.random.split(key, 7)
    apply = jax.random.bernoulli(k_apply, prob, (b,))
    area = jnp.maximum(boxes[:, 2] - boxes[:, 0], 1.0) * jnp.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    frac = jax.random.uniform(k_frac, (b,), minval=fraction[0], maxval=fraction[1])
    aspect = jnp.exp(jax.random.uniform(k_aspect, (b,), minval=-1.0, maxval=1.0) * jnp.log(MAX_ASPECT))
    ellipse = jax.random.bernoulli(k_shape, 0.5, (b,))
    scale = jnp.where(ellipse, 2.0 / jnp.sqrt(jnp.pi), 1.0)  # ellipse area = rectangle's area
    half = (
        0.5 * scale[:, None] * jnp.stack([jnp.sqrt(frac * area * aspect), jnp.sqrt(frac * area / aspect)], -1)
    )
    lo = boxes[:, :2] + half
    hi = boxes[:, 2:] - half
    mid = 0.5 * (boxes[:, :2] + boxes[:, 2:])
    u = jax.random.uniform(k_centre, (b, 2))
    centre = jnp.where(hi > lo, lo + u * (hi - lo), mid)
    # another image of the batch: i + s (mod B), s uniform in 1..B-1 (itself for a batch of one)
    shift = jax.random.randint(k_source, (b,), 1, max(b, 2))
    source = (jnp.arange(b) + shift) % b
    offset = jax.random.randint(k_offset, (b, 2), 0, jnp.array([width, height]))
    return Occluders(apply, centre, half, ellipse, source.astype(jnp.int32), offset.astype(jnp.int32))


def occluder_masks(occ: Occluders, image_size: tuple[int, int]) -> jax.Array:
    """``[B, H, W]`` bool: pixels (centres at integer coordinates) inside each image's occluder;
    all False where ``occ.apply`` is False."""
    height, width = image_size
    y = jnp.arange(height, dtype=jnp.float32)[None, :, None]
    x = jnp.arange(width, dtype=jnp.float32)[None, None, :]
    dx = (x - occ.centre[:, 0, None, None]) / jnp.maximum(occ.half_size[:, 0, None, None], 1e-6)
    dy = (y - occ.centre[:, 1, None, None]) / jnp.maximum(occ.half_size[:, 1, None, None], 1e-6)
    in_ellipse = dx * dx + dy * dy <= 1.0
    in_rect = (jnp.abs(dx) <= 1.0) & (jnp.abs(dy) <= 1.0)
    inside = jnp.where(occ.ellipse[:, None, None], in_ellipse, in_rect)
    return inside & occ.apply[:, None, None]


def paste(images: jax.Array, sources: jax.Array, masks: jax.Array, occ: Occluders) -> jax.Array:
    """``images [B, H, W, 3]`` with each image's ``masks [B, H, W]`` pixels replaced by its source
    image (``sources [N, H, W, 3]``, indexed by ``occ.source``) shifted by ``occ.offset``."""

    def one(image, mask, index, offset):
        patch = jnp.roll(sources[index], (-offset[1], -offset[0]), axis=(0, 1))
        return jnp.where(mask[..., None], patch.astype(image.dtype), image)

    return jax.vmap(one)(images, masks, occ.source, occ.offset)


def hidden_vertices(points: jax.Array, mask: jax.Array) -> jax.Array:
    """``[V]`` bool: vertices whose projection ``points [V, 2]`` (image pixels) falls on an occluder
    pixel of ``mask [H, W]`` (nearest pixel; projections off the image are never hidden)."""
    height, width = mask.shape
    col = jnp.round(points[:, 0]).astype(jnp.int32)
    row = jnp.round(points[:, 1]).astype(jnp.int32)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    return inside & mask[jnp.clip(row, 0, height - 1), jnp.clip(col, 0, width - 1)]


def occluder_cells(mask: jax.Array, stride: int) -> jax.Array:
    """``[h, w]`` bool at feature resolution (``h = H / stride``): cells more than half covered by
    the occluder ``mask [H, W]``."""
    height, width = mask.shape
    cells = mask.reshape(height // stride, stride, width // stride, stride)
    return jnp.mean(cells.astype(jnp.float32), axis=(1, 3)) > 0.5
