"""Datasets: tfds builders (ArrayRecord, read without TensorFlow), crops, occluders and batching.

Example fields (numpy, per example; ``batches`` adds a leading ``[B]`` axis):
  id str; image uint8 ``[H, W, 3]``; azimuth, elevation, theta float32 RADIANS (PASCAL3D+ convention);
  distance float32 (CAD units); px, py float32 principal point in the crop, 0-based pixels (pixel
  ``(row i, col j)`` has its centre at ``(x, y) = (j, i)``); focal float32 (1.0), viewport float32
  (3000.0) (the PASCAL3D+ pair: the focal length in crop pixels is ``focal * viewport``);
  category int32 (index into ``Source.categories``); cad_index int32 (1-based);
  kp2d float32 ``[V, 2]`` projected neural-mesh vertices ``(x, y)`` in crop pixels; visible bool ``[V]``
  (z-buffer visibility of the neural mesh, inside the crop and ``box``); occlusion_level int32 (0..3);
  object_mask uint8 ``[H, W]`` (synthetic); occluder_mask uint8 ``[H, W]`` (synthetic, occluded sets);
  box float32 ``[4]`` ``(x0, y0, x1, y1)`` crop pixels (PASCAL3D+ family): the object's annotated box
  within the image, where a vertex may count as visible (NeMo), so never on the crop's zero padding.

Build: ``build(name, data_dir, make_options(name, {...}))`` (or ``tools/build_data.py``), read:
``load(name, split, data_dir)`` -> :class:`Source`, ``batches(source, batch_size, seed)`` (or the
random-access ``batch_dataset``); ``Source.indices_of(category)`` reads labels without images.

Layout of a built dataset: ``<data_dir>/<name>/<version>/`` holds the tfds files and
``meshes/<category>/{cad_01.off, ..., neural.off}`` (:func:`load_meshes`).
"""

from nemo_jax.data.batching import Subset, batch_dataset, batches, pad_example, prefetched
from nemo_jax.data.builders import BuildStats, NemoBuilder, Synthetic
from nemo_jax.data.layout import dataset_dir
from nemo_jax.data.loader import Source, load
from nemo_jax.data.meshes import CategoryMeshes, load_meshes, write_meshes
from nemo_jax.data.occlusion import LEVELS, make_occluder_mask, occlude, occlusion_ratio
from nemo_jax.data.prepare import DATASETS, build, ensure_built, make_options, parse_option_items, summary
from nemo_jax.data.splits import TEST_SPLITS, in_seen_bins, sample_azimuth
from nemo_jax.data.synthetic import SyntheticOptions
from nemo_jax.render.visibility import project_with_visibility

__all__ = [
    "DATASETS",
    "LEVELS",
    "TEST_SPLITS",
    "BuildStats",
    "CategoryMeshes",
    "NemoBuilder",
    "Source",
    "Subset",
    "Synthetic",
    "SyntheticOptions",
    "batch_dataset",
    "batches",
    "build",
    "dataset_dir",
    "ensure_built",
    "in_seen_bins",
    "load",
    "load_meshes",
    "make_occluder_mask",
    "make_options",
    "occlude",
    "occlusion_ratio",
    "pad_example",
    "prefetched",
    "parse_option_items",
    "project_with_visibility",
    "sample_azimuth",
    "summary",
    "write_meshes",
]
