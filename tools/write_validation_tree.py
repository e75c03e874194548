r"""Writes generated validation trees in the real releases' formats (nemo_jax.data.scenes).

  python tools/write_validation_tree.py --out DIR --categories car,bicycle \
      --train_per_category 200 --val_per_category 100 --seed 1 --occluders objects

DIR then holds PASCAL3D+_release1.1/ (shaded, textured procedural objects of each category on
textured backgrounds, annotations, CAD models, image sets) and OccludedPASCAL3D+/ (the val images at
levels FGL1-3_BGL1-3, occluders of the named family: objects, polygons or blobs); it is the
builders' --manual_dir. The same flags give the same files on the same machine. A DIR holding files
this command did not write is refused before any work; its own earlier tree is replaced.
"""

from __future__ import annotations

import sys

from absl import app, flags

from nemo_jax.data import scenes

_OUT = flags.DEFINE_string("out", None, "Folder to write (the builders' --manual_dir).")
_CATEGORIES = flags.DEFINE_string("categories", "car", "Comma-separated PASCAL3D+ categories.")
_TRAIN = flags.DEFINE_integer("train_per_category", 200, "Clean training images per category.")
_VAL = flags.DEFINE_integer(
    "val_per_category", 100, "Clean val images per category (and per occluded level)."
)
_SEED = flags.DEFINE_integer("seed", 1, "The tree's seed: use one that no test set uses.")
_OCCLUDERS = flags.DEFINE_string(
    "occluders", "objects", "Occluder family of the occluded levels: objects, polygons, blobs."
)
_LEVELS = flags.DEFINE_string("levels", "1,2,3", "Comma-separated occluded levels to write (empty: none).")
flags.mark_flags_as_required(["out"])


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        try:
            levels = tuple(int(v) for v in _LEVELS.value.split(",") if v)
        except ValueError:
            raise ValueError(f"--levels: expected comma-separated integers, got {_LEVELS.value!r}") from None
        options = scenes.TreeOptions(
            categories=tuple(c for c in _CATEGORIES.value.split(",") if c),
            train_per_category=_TRAIN.value,
            val_per_category=_VAL.value,
            seed=_SEED.value,
            occluders=_OCCLUDERS.value,
            levels=levels,
        )
        summary = scenes.write_validation_tree(_OUT.value, options, progress=print)
    except (ValueError, OSError) as err:  # the project's commands: one line, exit 1
        print(f"write_validation_tree: {err}", file=sys.stderr)
        return 1
    print("written: " + ", ".join(f"{k} {v}" for k, v in summary["counts"].items()))
    if summary["skipped"]:
        print(
            "levels not reached (images left out): "
            + ", ".join(f"{k} {v}" for k, v in summary["skipped"].items())
        )
    for folder, (low, mean, high) in summary["ratios"].items():
        print(
            f"{folder}: occluded share of the object {low:.2f} / {mean:.2f} / {high:.2f} (min / mean / max)"
        )
    return 0


if __name__ == "__main__":
    if any(arg in ("--help", "-help", "-h", "--helpshort", "-?") for arg in sys.argv[1:]):
        # absl's own --help exits 1; this command's documentation and flags, exit 0.
        print(__doc__.strip() + "\n\n" + flags.FLAGS.main_module_help())
        sys.exit(0)
    app.run(main)
