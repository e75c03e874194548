"""tensorflow-datasets builders, stored as ArrayRecord and read back without TensorFlow.

Each builder writes its examples (``nemo_jax.data.features``) and the category meshes
(``nemo_jax.data.meshes``) into ``<data_dir>/<name>/<version>/``. tfds writes into an
``incomplete.*`` directory and renames it only when everything succeeded, so a failed build leaves
no dataset behind (and nothing that looks complete).

Builders are not registered in the global tfds registry (names like ``synthetic`` are generic):
construct them directly, or use ``tools/build_data.py`` / :func:`nemo_jax.data.build`.
"""

from __future__ import annotations

import collections
import dataclasses
import json

import tensorflow_datasets as tfds

from nemo_jax.data import features as features_lib
from nemo_jax.data import meshes as meshes_lib
from nemo_jax.data import synthetic


class BuildStats:
    """Examples written per split and skipped per (split, reason), filled while generating."""

    def __init__(self):
        self.written: collections.Counter = collections.Counter()
        self.skipped: collections.Counter = collections.Counter()
        self.path: str | None = None  # the dataset version directory, once built

    def skip(self, split: str, reason: str) -> None:
        self.skipped[(split, reason)] += 1

    def as_dict(self) -> dict:
        return {
            "written": dict(self.written),
            "skipped": [{"split": s, "reason": r, "count": c} for (s, r), c in sorted(self.skipped.items())],
        }


class NemoBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Common machinery: options, stats, metadata, ArrayRecord, PNG images, meshes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def __init__(self, *, options, progress=None, **kwargs):
        """``options``: the dataset's frozen options dataclass; ``progress(split)``: optional
        callback per written example (the tool's progress bar)."""
        self.options = options
        self.stats = BuildStats()
        self._progress = progress
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)

    # Subclasses define: categories(), image_shape(), has_object_mask, has_occluder_mask,
    # split_names(), write_meshes(dataset_dir) and examples(split) (yielding numpy examples).
    has_object_mask = False
    has_occluder_mask = False
    has_box = False

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(self.__doc__ or "").strip().splitlines()[0],
            features=features_lib.example_features(
                self.categories(),
                self.image_shape(),
                self.has_object_mask,
                self.has_occluder_mask,
                self.has_box,
            ),
            metadata=tfds.core.MetadataDict(
                options=json.loads(json.dumps(dataclasses.asdict(self.options))),
                categories=list(self.categories()),
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        self.write_meshes(self.data_dir)
        return {split: self._generate_examples(split) for split in self.split_names()}

    def _generate_examples(self, split):
        keys = list(self.info.features.keys())
        for example in self.examples(split):
            self.stats.written[split] += 1
            if self._progress is not None:
                self._progress(split)
            yield example["id"], features_lib.encode(example, keys)
        if self.stats.written[split] == 0:  # tfds cannot store an empty split: fail clearly instead
            skipped = {r: n for (s, r), n in self.stats.skipped.items() if s == split}
            raise ValueError(f"{self.name}: split {split!r} has no examples (skipped: {skipped or 'none'})")
        self.info.metadata["build_stats"] = self.stats.as_dict()


class Synthetic(NemoBuilder, skip_registration=True):
    """Procedural categories rendered by nemo_jax's rasterizer (the embedded default dataset)."""

    name = "synthetic"
    has_object_mask = True
    has_occluder_mask = True

    def __init__(self, *, options: synthetic.SyntheticOptions | None = None, **kwargs):
        super().__init__(options=options or synthetic.SyntheticOptions(), **kwargs)

    def categories(self):
        return self.options.categories

    def image_shape(self):
        return (self.options.height, self.options.width, 3)

    def split_names(self):
        return tuple(s for s in synthetic.SPLITS if self.options.count(s) > 0)

    def write_meshes(self, dataset_dir):
        for cat, m in synthetic.category_meshes(self.options).items():
            meshes_lib.write_meshes(
                dataset_dir,
                cat,
                [(m["cad_vertices"], m["cad_faces"])],
                (m["neural_vertices"], m["neural_faces"]),
            )

    def examples(self, split):
        return synthetic.generate(self.options, split)

    def expected_count(self) -> int:
        """Examples the build will write (for the progress bar)."""
        o = self.options
        return len(o.categories) * sum(o.count(s) for s in synthetic.SPLITS)
