"""Training data: random-access sources of train-step examples (toy or a built dataset) and the
deterministic, random-access batch sequence (``batches[s]`` is a pure function of ``(seed, s)``).
"""

from __future__ import annotations

import numpy as np

from nemo_jax import data
from nemo_jax.data.toy import toy_dataset
from nemo_jax.train.step import BATCH_FIELDS


class StepExamples:
    """Random-access view of ``source`` with only the train-step fields (``image`` uint8, the
    rest float32)."""

    def __init__(self, source):
        self.source = source

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        ex = self.source[i]
        return {k: np.asarray(ex[k], np.uint8 if k == "image" else np.float32) for k in BATCH_FIELDS}


def build_sources(config, vertices, faces, perm):
    """``(train, eval)`` random-access sources of examples with the train-step fields."""
    d = config.data
    size = tuple(int(s) for s in d.image_size)
    if d.source == "toy":
        train = toy_dataset(
            vertices, faces, perm, int(d.num_train), size, seed=int(d.seed), distance=float(d.distance)
        )
        held = toy_dataset(
            vertices, faces, perm, int(d.num_eval), size, seed=int(d.seed) + 1, distance=float(d.distance)
        )
        return StepExamples(train), StepExamples(held)
    if d.source == "tfds":
        out = []
        for split in (d.train_split, d.eval_split):
            src = data.load(d.name, split, d.data_dir)
            if config.category not in src.categories:
                raise ValueError(f"config.category: {config.category!r} not in {src.path} ({src.categories})")
            idx = src.indices_of(config.category)  # labels only, no image decoded
            if not idx:
                raise ValueError(f"{src.path} [{split}]: no examples of category {config.category!r}")
            shape = tuple(src[idx[0]]["image"].shape[:2])
            if shape != size:
                raise ValueError(
                    f"{src.path} [{split}]: images are {shape}, config.data.image_size is {size}"
                )
            out.append(StepExamples(data.Subset(src, idx)))
        return tuple(out)
    raise ValueError(f"config.data.source: {d.source!r} is not 'toy' or 'tfds'")


def batch_dataset(source, batch_size: int, seed: int):
    """Infinite, reshuffled-every-epoch batches with random access: ``ds[step]`` is batch ``step``
    (:func:`nemo_jax.data.batch_dataset`)."""
    return data.batch_dataset(source, batch_size, seed, shuffle=True, drop_remainder=True, epochs=None)
