"""Reading built datasets without TensorFlow: random-access sources and a numpy batcher."""

from __future__ import annotations

import concurrent.futures
import os
import re
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds


def dataset_dir(name: str, data_dir: str) -> str:
    """``<data_dir>/<name>/<newest complete version>``; ``FileNotFoundError`` names what is missing."""
    root = os.path.join(os.fspath(data_dir), name)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: dataset {name!r} is not built in data_dir {data_dir!r}")
    versions = [
        v
        for v in os.listdir(root)
        if re.fullmatch(r"\d+\.\d+\.\d+", v) and os.path.isfile(os.path.join(root, v, "dataset_info.json"))
    ]
    if not versions:
        raise FileNotFoundError(
            f"{root}: no complete version of dataset {name!r} (no <version>/dataset_info.json)"
        )
    newest = max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))
    return os.path.join(root, newest)


class Source:
    """Random access to one split. ``source[i]`` -> dict of numpy values (``id`` a str, ``category``
    an int32 index into ``source.categories``, angles float32 RADIANS, ``image`` uint8 ``[H, W, 3]``).

    Attributes:
      categories: category names (index = ``category`` label).
      metadata: the builder's options and build statistics.
      path: the dataset version directory.
    """

    def __init__(self, path: str, split: str):
        builder = tfds.builder_from_directory(path)
        if split not in builder.info.splits:
            raise ValueError(
                f"{path}: no split {split!r}; available: {', '.join(builder.info.splits.keys())}"
            )
        self.path = path
        self.split = split
        self._source = builder.as_data_source(split=split)
        self.categories = list(builder.info.features["category"].names)
        self.metadata = dict(builder.info.metadata or {})

    def __len__(self) -> int:
        return len(self._source)

    @property
    def max_vertices(self) -> int:
        """The largest neural-mesh vertex count over the dataset's categories (``kp2d`` padding)."""
        from nemo_jax.data.meshes import load_category  # local: meshes imports this module

        root = os.path.join(self.path, "meshes")
        return max(len(load_category(os.path.join(root, c)).neural_vertices) for c in self.categories)

    @staticmethod
    def _convert(example: dict) -> dict:
        out = {}
        for k, v in example.items():
            if k == "id":
                out[k] = v.decode() if isinstance(v, bytes) else str(v)
            elif k in ("category", "cad_index", "occlusion_level"):
                out[k] = np.int32(v)
            elif isinstance(v, float):
                out[k] = np.float32(v)
            else:
                out[k] = np.asarray(v)
        return out

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.path} [{self.split}]: index {index} out of range ({len(self)} examples)")
        return self._convert(self._source[int(index) % len(self)])

    def __getitems__(self, indices) -> list[dict]:
        return [self._convert(e) for e in self._source.__getitems__([int(i) for i in indices])]


def load(name: str, split: str, data_dir: str) -> Source:
    """A random-access source over ``split`` of the built dataset ``name`` in ``data_dir``."""
    return Source(dataset_dir(name, data_dir), split)


def _pad_rows(value, n: int, what: str) -> np.ndarray:
    """Pads the leading axis of ``value`` to ``n`` with zeros (False for bool)."""
    value = np.asarray(value)
    if len(value) > n:
        raise ValueError(f"{what}: {len(value)} vertices > {n}")
    return np.concatenate([value, np.zeros((n - len(value), *value.shape[1:]), value.dtype)])


def pad_example(example: dict, num_vertices: int) -> dict:
    """Pads ``kp2d [V, 2]`` / ``visible [V]`` to ``num_vertices`` (zeros / False), so that examples
    of categories with different neural meshes stack; ``visible`` doubles as the mask. For grain:
    ``grain.MapDataset.source(src).map(lambda e: pad_example(e, src.max_vertices)).batch(B)``."""
    out = dict(example)
    for key in ("kp2d", "visible"):
        out[key] = _pad_rows(example[key], num_vertices, f"pad_example {example.get('id')} {key}")
    return out


def _stack(examples: list[dict], pad_vertices: int | None) -> dict:
    """Stacks examples; ``kp2d``/``visible`` are padded to ``pad_vertices`` (default: the batch max)
    with zeros / False, so ``visible`` doubles as the mask."""
    out = {}
    for k in examples[0]:
        values = [e[k] for e in examples]
        if k == "id":
            out[k] = np.array(values)
            continue
        if k in ("kp2d", "visible"):
            n = max(len(v) for v in values) if pad_vertices is None else pad_vertices
            values = [_pad_rows(v, n, f"batches: {k} (pad_vertices)") for v in values]
        shapes = {np.shape(v) for v in values}
        if len(shapes) > 1:
            raise ValueError(f"batches: field {k!r} has different shapes in one batch: {sorted(shapes)}")
        out[k] = np.stack(values)
    return out


def batches(
    source,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    drop_remainder: bool = True,
    epochs: int | None = 1,
    pad_vertices: int | None = None,
    prefetch: int = 2,
) -> Iterator[dict]:
    """Yields batches (dicts of numpy arrays with a leading ``[B]`` axis) from a random-access source.

    Deterministic for a ``seed``: epoch ``e`` uses the permutation of ``default_rng([seed, e])``.

    Args:
      source: anything with ``len`` and ``[i]`` (e.g. :func:`load`'s result).
      batch_size: examples per batch.
      seed: shuffle seed.
      shuffle: permute each epoch.
      drop_remainder: drop the last partial batch of each epoch (static shapes under jit).
      epochs: number of passes; ``None`` repeats forever.
      pad_vertices: pad ``kp2d [B, V, 2]`` / ``visible [B, V]`` to this ``V`` (default: the
        source's ``max_vertices`` if it has one, else the batch max).
      prefetch: batches read ahead in a background thread (0: none).
    """
    if batch_size <= 0:
        raise ValueError(f"batches: batch_size must be > 0, got {batch_size}")
    if pad_vertices is None:  # static shapes across batches when the source knows its meshes
        pad_vertices = getattr(source, "max_vertices", None)
    n = len(source)
    fetch = getattr(source, "__getitems__", None) or (lambda idx: [source[i] for i in idx])

    def index_batches():
        epoch = 0
        while epochs is None or epoch < epochs:
            order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
            stop = n - n % batch_size if drop_remainder else n
            for start in range(0, stop, batch_size):
                yield order[start : min(start + batch_size, stop)]
            epoch += 1

    make = lambda idx: _stack(fetch(idx), pad_vertices)
    if prefetch <= 0:
        for idx in index_batches():
            yield make(idx)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = []
        for idx in index_batches():
            pending.append(pool.submit(make, idx))
            if len(pending) > prefetch:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()
