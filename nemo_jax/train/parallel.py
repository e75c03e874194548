"""Data parallelism with jax.sharding: one ``'data'`` mesh axis over all devices; the state is
replicated, batches are split along their leading axis. XLA inserts the gradient all-reduce, and
batch statistics / the memory-bank update see the global batch, so the sharded step computes the
same function as the single-device step."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nemo_jax.train import multihost


def maybe_initialize_distributed(cfg) -> None:
    """Joins a multi-process run when ``config.parallel`` (``cfg``) or the environment asks for one
    (see :func:`nemo_jax.train.multihost.process_spec`); a no-op for a single process."""
    spec = multihost.process_spec(cfg)
    if spec is not None:
        multihost.initialize(spec)


def data_mesh(num_devices: int | None = None) -> Mesh:
    devices = jax.devices() if num_devices is None else jax.devices()[:num_devices]
    return Mesh(np.asarray(devices), ("data",))


def shardings(mesh: Mesh) -> tuple[NamedSharding, NamedSharding]:
    """``(replicated, batch-split)`` shardings."""
    return NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data"))


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
