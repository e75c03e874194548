"""Generated validation data that looks like real data, in the real releases' on-disk formats.

Recipes are chosen on validation data; box silhouettes on black cannot choose them. This package
makes PASCAL3D+ / OccludedPASCAL3D+ trees whose images look like photographs of the categories:
procedural CAD models with thin parts and holes (:mod:`.categories`, built from :mod:`.primitives`),
per-image materials and 3D textures (:mod:`.textures`), shaded by the project's rasterizer with a
ground shadow over a textured background (:mod:`.renderer`, :mod:`.backgrounds`), at PASCAL3D+-like
viewpoints, scales and positions (:mod:`.views`), written in the releases' formats with occluded
levels from a chosen occluder family (:mod:`.tree`, :mod:`nemo_jax.data.occlusion`,
:mod:`.sprites`). Everything is made by the project: no downloaded meshes, textures or photographs.

  write_validation_tree(out, TreeOptions(categories=("car", "bicycle"), seed=1))

or ``python tools/write_validation_tree.py --out DIR ...``; then ``nemo_jax.data.build("pascal3d",
...)`` / ``"occluded_pascal3d"`` with ``manual_dir=DIR`` read it as a release.
"""

from nemo_jax.data.scenes.categories import CATEGORIES, cad_models, styles
from nemo_jax.data.scenes.tree import TreeOptions, write_validation_tree

__all__ = ["CATEGORIES", "TreeOptions", "cad_models", "styles", "write_validation_tree"]
