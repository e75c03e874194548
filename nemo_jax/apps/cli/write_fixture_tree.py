"""Writes a small PASCAL3D+-format tree (and OccludedPASCAL3D+ beside it) to try the real-data path on.

  python tools/write_fixture_tree.py --out /tmp/p3d [--categories car] [--train 48] [--val 16]

The tree has the releases' exact on-disk formats (PASCAL3D+_release1.1/{Images, Annotations, CAD,
Image_sets}, OccludedPASCAL3D+/{images, annotations, lists} made from the val images); its images
are light silhouettes of a box-shaped CAD model at random annotated viewpoints on a dark background
(the test suite's fixtures, nemo_jax.data.fixtures). --out is then the builders' --manual_dir; a
--out holding files this tool did not write is refused.
"""

from __future__ import annotations

import sys

from absl import flags

from nemo_jax.apps.cli import no_positional, run

_OUT = flags.DEFINE_string("out", None, "Folder to write (the builders' --manual_dir).")
_CATEGORIES = flags.DEFINE_string("categories", "car", "Comma-separated PASCAL3D+ categories.")
_TRAIN = flags.DEFINE_integer("train", 48, "Train images per category.")
_VAL = flags.DEFINE_integer("val", 16, "Val images per category.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed of the viewpoints.")
flags.mark_flags_as_required(["out"])


def _main(argv) -> int:
    no_positional(argv)
    from nemo_jax import output
    from nemo_jax.data import fixtures, pascal3d

    categories = tuple(c for c in _CATEGORIES.value.split(",") if c)
    unknown = [c for c in categories if c not in pascal3d.PASCAL_CATEGORIES]
    if unknown:
        raise ValueError(f"--categories: unknown {unknown}; known: {', '.join(pascal3d.PASCAL_CATEGORIES)}")
    try:
        with output.output_folder(_OUT.value, "write-fixture-tree") as scratch:
            views = fixtures.write_pascal3d(scratch, categories, (_TRAIN.value, _VAL.value), seed=_SEED.value)
            val = {name: view for name, view in views.items() if "_val_" in name}  # occluded: val images
            for category in categories:
                fixtures.write_occluded(scratch, val, category, seed=_SEED.value)
    except (ValueError, OSError) as err:
        print(f"write_fixture_tree: {err}", file=sys.stderr)
        return 1
    print(f"wrote {len(views)} images of {', '.join(categories)} under {_OUT.value}")
    return 0


def main():
    """Entry point of ``python tools/write_fixture_tree.py``."""
    run(__name__, _main)
