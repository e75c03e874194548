"""Reading built datasets without TensorFlow: random-access sources over one split."""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from nemo_jax.data.layout import dataset_dir
from nemo_jax.data.meshes import load_category


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
        self._builder = builder
        self._source = builder.as_data_source(split=split)
        self._labels = None
        self.categories = list(builder.info.features["category"].names)
        self.metadata = dict(builder.info.metadata or {})

    def __len__(self) -> int:
        return len(self._source)

    def labels(self) -> np.ndarray:
        """``[N]`` int32 category labels of the split, read without decoding any image (the image
        features are left as encoded bytes); cached."""
        if self._labels is None:
            features = self._builder.info.features
            images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
            skip = {k: tfds.decode.SkipDecoding() for k in images}
            rows = self._builder.as_data_source(split=self.split, decoders=skip)
            self._labels = np.array(
                [int(r["category"]) for r in rows.__getitems__(range(len(rows)))], np.int32
            )
        return self._labels

    def indices_of(self, category: str) -> list[int]:
        """Indices of the examples of ``category`` (a name in ``categories``), in order."""
        if category not in self.categories:
            raise ValueError(f"{self.path} [{self.split}]: category {category!r} not in {self.categories}")
        return np.flatnonzero(self.labels() == self.categories.index(category)).tolist()

    @property
    def max_vertices(self) -> int:
        """The largest neural-mesh vertex count over the dataset's categories (``kp2d`` padding)."""
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
