"""Data parallelism with jax.sharding: one ``'data'`` mesh axis over all devices; the state is
replicated, batches are split along their leading axis. Batch statistics, the loss normaliser,
the gradient and the memory-bank update see the global batch, so the sharded step computes the
same function as the single-device step.

Two ways to combine the devices' partial sums (``config.parallel.ordered_reductions``):

* XLA (default): ``jit`` with shardings, XLA inserts all-reduces. An all-reduce sums in an order of
  its own implementation (in-process vs. gloo / NCCL rings), so runs with another process layout
  differ by rounding, which Adam amplifies over the steps.
* ordered: the step runs under ``shard_map`` and every cross-device sum is an all-gather of the
  devices' partial values followed by a sum over the device axis in device order
  (:func:`ordered_sum`), computed the same way on every device. All-gathers only move bits, so the
  sums' rounding depends on the device count, not on the process layout. Cost: the gradient
  all-gather holds ``n`` copies of the gradient per device (``n`` devices) instead of one. (On the
  smoke config 2 processes x 2 CPU devices still differ from 1 process x 4 by rounding in the
  per-device computation itself; see README "Multi-host".)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nemo_jax.train import multihost


def maybe_initialize_distributed(cfg) -> None:
    """Joins a multi-process run when ``config.parallel`` (``cfg``) or the environment asks for one
    (see :func:`nemo_jax.train.multihost.process_spec`); a no-op for a single process."""
    spec = multihost.process_spec(cfg)
    if spec is not None:
        multihost.initialize(spec)


DATA_AXIS = "data"


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def ordered_sum(x: jax.Array, axis_name: str = DATA_AXIS) -> jax.Array:
    """The sum over the devices of ``axis_name`` (inside ``shard_map``) of each device's ``x``, in
    device order: all-gather (exact), then one local sum, identical on every device, so its
    rounding does not depend on the collective's implementation or the process layout.

    Gradient: each device's cotangent is its own part of the loss's derivative, so the cotangent
    of every device's ``x`` is the ordered sum of all devices' cotangents."""
    return jnp.sum(jax.lax.all_gather(x, axis_name), axis=0)


def _ordered_sum_fwd(x, axis_name):
    return ordered_sum(x, axis_name), None


def _ordered_sum_bwd(axis_name, _, g):
    return (ordered_sum(g, axis_name),)


ordered_sum.defvjp(_ordered_sum_fwd, _ordered_sum_bwd)


def ordered_mean(x: jax.Array, axis_name: str = DATA_AXIS) -> jax.Array:
    """:func:`ordered_sum` divided by the number of devices (for per-device means of equally many
    rows, e.g. BatchNorm statistics)."""
    return ordered_sum(x, axis_name) / jax.lax.axis_size(axis_name)


def data_mesh(num_devices: int | None = None) -> Mesh:
    devices = jax.devices() if num_devices is None else jax.devices()[:num_devices]
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def shardings(mesh: Mesh) -> tuple[NamedSharding, NamedSharding]:
    """``(replicated, batch-split)`` shardings."""
    return NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicate(tree, sharding: NamedSharding):
    """``tree`` (arrays on this process's devices or host arrays, the same values in every
    process) placed replicated on all devices of ``sharding``, those of other processes included:
    each process fills its own devices from its copy, so nothing crosses processes."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def one(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree)


def shard_batch(batch: dict, sharding: NamedSharding) -> dict:
    """Places a host batch (numpy; this process's rows of the global batch, see
    :func:`nemo_jax.data.batch_dataset`'s ``process_index``) with its leading axis split over the
    devices of all processes."""
    n = sharding.mesh.size // jax.process_count()
    for name, value in batch.items():
        if np.shape(value)[0] % n:
            raise ValueError(
                f"batch field {name!r}: batch size {np.shape(value)[0]} not divisible by {n} devices"
            )
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)
