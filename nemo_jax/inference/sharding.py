"""Spreading a batch of images over all local devices for inference (data parallel).

A batch is padded along its leading (image) axis to a multiple of the device count by repeating
its last image, placed with a ``NamedSharding`` over a ``'data'`` mesh axis, and the jitted
feature extraction / pose search then runs on every device at once (XLA partitions the vmapped
computation along that axis); the padded rows are dropped from the result. Each image's result
does not depend on the other images of the batch, so the predictions equal a one-device run's.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def image_mesh(devices=None) -> Mesh:
    """A 1-D ``'data'`` mesh over ``devices`` (default: all local devices)."""
    devices = jax.local_devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), ("data",))


def padded_size(n: int, mesh: Mesh) -> int:
    """``n`` rounded up to a multiple of the mesh's device count."""
    d = mesh.size
    return -(-int(n) // d) * d


def pad_images(tree, size: int):
    """Pads every array leaf's leading axis ``[B, ...]`` to ``size`` by repeating row ``B - 1``."""

    def pad(x):
        x = np.asarray(x)
        if x.shape[0] > size:
            raise ValueError(f"pad_images: batch of {x.shape[0]} rows > target size {size}")
        return np.concatenate([x, np.repeat(x[-1:], size - x.shape[0], axis=0)]) if size > x.shape[0] else x

    return jax.tree.map(pad, tree)


def shard_images(tree, mesh: Mesh):
    """Pads the leading axis of every leaf to a multiple of ``mesh.size`` and places the rows
    split over the ``'data'`` axis. Returns ``(sharded tree, number of real rows)``."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        raise ValueError("shard_images: empty batch")
    n = int(np.shape(leaves[0])[0])
    for x in leaves:
        if np.shape(x)[:1] != (n,):
            raise ValueError(f"shard_images: leaves have {np.shape(x)[:1]} and ({n},) leading rows")
    padded = pad_images(tree, padded_size(n, mesh))
    return jax.device_put(padded, NamedSharding(mesh, PartitionSpec("data"))), n


def replicate(tree, mesh: Mesh):
    """Places ``tree`` whole on every device of ``mesh`` (shared inputs: weights, the neural mesh)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def unpad(tree, n: int):
    """The first ``n`` rows of every leaf, as numpy arrays (gathered from the devices)."""
    return jax.tree.map(lambda x: np.asarray(x)[:n], tree)


def place(tree, axes, mesh: Mesh):
    """Places a batch PyTree whose leaves are per-image (``axes`` leaf ``0``: padded and split over
    the ``'data'`` axis) or shared (``None``: replicated), e.g. a batched ``SearchInputs`` with
    ``BATCH_AXES``. Returns ``(placed tree, number of real images)``."""
    flat, treedef = jax.tree.flatten(tree)
    flat_axes = treedef.flatten_up_to(axes)
    per_image = [x for x, a in zip(flat, flat_axes, strict=True) if a is not None]
    if any(a not in (None, 0) for a in flat_axes):
        raise ValueError(f"place: axes must be 0 or None, got {flat_axes}")
    sharded, n = shard_images(per_image, mesh)
    shared = replicate([x for x, a in zip(flat, flat_axes, strict=True) if a is None], mesh)
    it_sharded, it_shared = iter(sharded), iter(shared)
    out = [next(it_shared) if a is None else next(it_sharded) for a in flat_axes]
    return jax.tree.unflatten(treedef, out), n
