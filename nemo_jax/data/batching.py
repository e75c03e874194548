"""Batching random-access sources: the one batcher of the project (training, the baseline,
evaluation), built on grain so that batch ``s`` is a pure function of ``(seed, s)``.

``batch_dataset(...)[s]`` is batch ``s`` (random access: resume at any step reads nothing twice);
:func:`batches` iterates over it with a background prefetch. Examples of categories with different
neural meshes stack because ``kp2d [V, 2]`` / ``visible [V]`` are padded (``visible`` doubles as
the mask).
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence

import grain
import numpy as np

from nemo_jax.mesh.padding import pad_rows

PADDED_FIELDS = ("kp2d", "visible")


class Subset:
    """Random-access view of ``source`` restricted to ``indices`` (e.g. one category)."""

    def __init__(self, source, indices: Sequence[int]):
        self.source, self.indices = source, np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return self.source[int(self.indices[i])]


def pad_example(example: dict, num_vertices: int) -> dict:
    """Pads ``kp2d [V, 2]`` / ``visible [V]`` to ``num_vertices`` (zeros / False), so that examples
    of categories with different neural meshes stack; ``visible`` doubles as the mask. For grain:
    ``grain.MapDataset.source(src).map(lambda e: pad_example(e, src.max_vertices)).batch(B)``."""
    out = dict(example)
    for key in PADDED_FIELDS:
        out[key] = pad_rows(example[key], num_vertices, 0, f"pad_example {example.get('id')} {key}")
    return out


def stack(examples: list[dict], pad_vertices: int | None = None) -> dict:
    """Stacks examples; ``kp2d``/``visible`` are padded to ``pad_vertices`` (default: the batch max)
    with zeros / False, so ``visible`` doubles as the mask."""
    out = {}
    for k in examples[0]:
        values = [e[k] for e in examples]
        if k == "id":
            out[k] = np.array(values)
            continue
        if k in PADDED_FIELDS:
            n = max(len(v) for v in values) if pad_vertices is None else pad_vertices
            values = [pad_rows(v, n, 0, f"batches: {k} (pad_vertices)") for v in values]
        shapes = {np.shape(v) for v in values}
        if len(shapes) > 1:
            raise ValueError(f"batches: field {k!r} has different shapes in one batch: {sorted(shapes)}")
        out[k] = np.stack(values)
    return out


def batch_dataset(
    source,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    drop_remainder: bool = True,
    epochs: int | None = None,
    batch_fn=None,
) -> grain.MapDataset:
    """Batches with random access: ``ds[s]`` is batch ``s``, a pure function of ``(seed, s)``.

    The examples are shuffled (``seed``, reshuffled every epoch), repeated ``epochs`` times
    (``None``: forever) and grouped in ``batch_size``; a batch may span an epoch boundary, and with
    ``drop_remainder`` only the last, partial batch of the whole sequence is dropped.

    Args:
      source: anything with ``len`` and ``[i]`` (:class:`nemo_jax.data.Source`, :class:`Subset`).
      batch_fn: list of examples -> batch (default: :func:`stack` with the source's
        ``max_vertices``, if it has one, as the ``kp2d`` / ``visible`` padding).
    """
    if batch_size <= 0:
        raise ValueError(f"batches: batch_size must be > 0, got {batch_size}")
    if drop_remainder and len(source) < batch_size:
        raise ValueError(f"data: {len(source)} examples < batch size {batch_size}")
    if batch_fn is None:
        pad_vertices = getattr(source, "max_vertices", None)
        batch_fn = lambda examples: stack(list(examples), pad_vertices)
    ds = grain.MapDataset.source(source)
    if shuffle:
        ds = ds.seed(seed).shuffle()
    return ds.repeat(epochs).batch(batch_size, drop_remainder=drop_remainder, batch_fn=batch_fn)


def batches(
    source,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    drop_remainder: bool = True,
    epochs: int | None = 1,
    pad_vertices: int | None = None,
    prefetch: int = 2,
    start: int = 0,
) -> Iterator[dict]:
    """Yields batches (dicts of numpy arrays with a leading ``[B]`` axis; ``id`` an array of str)
    ``start, start + 1, ...`` of :func:`batch_dataset`, reading ``prefetch`` batches ahead in a
    background thread (0: none).

    Args:
      source, batch_size, seed, shuffle, drop_remainder, epochs: as :func:`batch_dataset`
        (``epochs=None`` repeats forever).
      pad_vertices: pad ``kp2d [B, V, 2]`` / ``visible [B, V]`` to this ``V`` (default: the
        source's ``max_vertices`` if it has one, else the batch max).
      start: the first batch (resume).
    """
    if pad_vertices is None:  # static shapes across batches when the source knows its meshes
        pad_vertices = getattr(source, "max_vertices", None)
    ds = batch_dataset(
        source,
        batch_size,
        seed,
        shuffle,
        drop_remainder,
        epochs,
        batch_fn=lambda examples: stack(list(examples), pad_vertices),
    )
    stop = len(ds) if epochs is not None else None
    steps = range(start, stop) if stop is not None else itertools.count(start)
    return prefetched(ds.__getitem__, steps, prefetch)


def prefetched(fetch: Callable, keys: Iterable, ahead: int = 2) -> Iterator:
    """Yields ``fetch(k)`` for ``k`` in ``keys``, in order, computing up to ``ahead`` of them in a
    background thread while the caller works on the current one (reading and decoding a batch is
    ~15 % of a CPU train step). ``ahead <= 0``: no thread."""
    if ahead <= 0:
        yield from map(fetch, keys)
        return
    keys = iter(keys)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = collections.deque(pool.submit(fetch, k) for k in itertools.islice(keys, ahead))
        while pending:
            result = pending.popleft().result()
            for k in itertools.islice(keys, 1):
                pending.append(pool.submit(fetch, k))
            yield result
