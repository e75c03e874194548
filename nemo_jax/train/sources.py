"""Training data: random-access sources of train-step examples (toy or a built dataset) and the
deterministic, random-access batch sequence (``batches[s]`` is a pure function of ``(seed, s)``).
"""

from __future__ import annotations

import jax
import numpy as np

from nemo_jax import data
from nemo_jax import mesh as mesh_lib
from nemo_jax.data.toy import toy_dataset
from nemo_jax.train import category_data, subtype_data
from nemo_jax.train.step import BATCH_FIELDS, SUBTYPE_FIELD, full_box


class StepExamples:
    """Random-access view of ``source`` with only the train-step fields (``image`` uint8, the
    rest float32) and ``box`` (where vertices may be visible: the example's own ``box``, else the
    whole image)."""

    def __init__(self, source, fields=BATCH_FIELDS):
        self.source, self.fields = source, tuple(fields)

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        ex = self.source[i]
        out = {k: np.asarray(ex[k], np.uint8 if k == "image" else np.float32) for k in self.fields}
        out["box"] = np.asarray(ex["box"], np.float32) if "box" in ex else full_box(*out["image"].shape[:2])
        return out


def build_sources(config, vertices, faces, perm):
    """``(train, eval)`` random-access sources of examples with the train-step fields.

    For per-sub-type meshes pass the :class:`nemo_jax.mesh.MeshSet` as ``vertices`` (``faces``
    unused): the examples then also carry ``cad_index``, each checked to have a mesh. For a shared
    multi-category run (``config.categories``) pass its stacked category meshes: the examples of
    every category, with ``category_index`` (:mod:`nemo_jax.train.category_data`).
    """
    d = config.data
    size = tuple(int(s) for s in d.image_size)
    if category_data.is_shared_config(config):
        return category_data.shared_sources(config, vertices, BATCH_FIELDS)
    if isinstance(vertices, mesh_lib.MeshSet):
        return _subtype_sources(config, vertices, size)
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
            idx, shape = category_data.category_rows(src, split, config.category)
            built_shrink = (src.metadata.get("options") or {}).get("shrink")
            if (
                d.get("shrink") is not None
                and built_shrink is not None
                and int(built_shrink) != int(d.shrink)
            ):
                raise ValueError(
                    f"{src.path}: built with shrink={built_shrink}, config.data.shrink is {d.shrink} "
                    f"(rebuild with tools/build_data.py --option shrink={d.shrink})"
                )
            if shape != size:
                raise ValueError(
                    f"{src.path} [{split}]: images are {shape}, config.data.image_size is {size}"
                )
            out.append(StepExamples(data.Subset(src, idx)))
        return tuple(out)
    raise ValueError(f"config.data.source: {d.source!r} is not 'toy' or 'tfds'")


def _subtype_sources(config, meshes, size):
    d, n_sub, fields = config.data, meshes.num_meshes, (*BATCH_FIELDS, SUBTYPE_FIELD)
    if d.source == "toy":
        out = []
        for num, seed in ((int(d.num_train), int(d.seed)), (int(d.num_eval), int(d.seed) + 1)):
            src = subtype_data.toy_subtype_dataset(meshes, num, size, seed, float(d.distance))
            out.append(StepExamples(src, fields))
        return tuple(out)
    if d.source != "tfds":
        raise ValueError(f"config.data.source: {d.source!r} is not 'toy' or 'tfds'")
    out = []
    for split in (d.train_split, d.eval_split):
        src = data.load(d.name, split, d.data_dir)
        idx, shape = category_data.category_rows(src, split, config.category)
        if shape != size:
            raise ValueError(f"{src.path} [{split}]: images are {shape}, config.data.image_size is {size}")
        cad_index, ids = src.values("cad_index", idx), src.values("id", idx)  # no image decoded
        subtype_data.check_cad_indices(cad_index, ids, n_sub, f"{src.path} [{split}]")
        out.append(StepExamples(data.Subset(src, idx), fields))
    return tuple(out)


def write_crop_protocol(workdir: str, train_src: StepExamples) -> None:
    """Stores the training set's crop protocol with the run (``crop_protocol.json``: median box-to-crop
    size and principal-point offset, :mod:`nemo_jax.data.crop_protocol`), so that unlabeled images
    are cropped as the training images were; nothing for data without object boxes or masks, nor
    for a shared multi-category run (its crop sizes differ per category)."""
    from nemo_jax.data import crop_protocol  # noqa: PLC0415

    if not isinstance(train_src, StepExamples):
        return
    stats = crop_protocol.box_statistics(train_src.source)
    if stats is not None:
        crop_protocol.write(workdir, stats)


def batch_dataset(source, batch_size: int, seed: int):
    """Infinite, reshuffled-every-epoch batches with random access: ``ds[step]`` is this process's
    rows of global batch ``step`` (all of it with one process; :func:`nemo_jax.data.batch_dataset`):
    each process reads only its own examples."""
    return data.batch_dataset(
        source,
        batch_size,
        seed,
        shuffle=True,
        drop_remainder=True,
        epochs=None,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
