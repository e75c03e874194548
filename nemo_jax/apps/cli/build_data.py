"""Builds a nemo_jax dataset (tfds ArrayRecord) into --data_dir.

  nemo-jax-build-data --dataset synthetic --data_dir ~/nemo_data
  nemo-jax-build-data --dataset synthetic --data_dir D --option height=96 --option seed=1
  nemo-jax-build-data --dataset pascal3d --manual_dir /datasets --data_dir D --categories car,bus
  python tools/build_data.py ...   (the same)

For the PASCAL3D+ family --manual_dir is the folder holding PASCAL3D+_release1.1/ (and, for
occluded_pascal3d, OccludedPASCAL3D+/ beside it); for objectnet3d the folder holding ObjectNet3D/.
Prints a closing summary: examples written per split, examples skipped and why. Exit status 1 when
the build fails (e.g. the dataset is already there without --overwrite).
"""

from __future__ import annotations

import sys

from absl import app, flags

from nemo_jax.apps.cli import no_positional, run
from nemo_jax.data import prepare as build_lib

_DATASET = flags.DEFINE_enum("dataset", None, list(build_lib.DATASETS), "Dataset to build.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where built datasets live.")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Folder holding the downloaded release(s).")
_CATEGORIES = flags.DEFINE_string("categories", None, "Comma-separated category names.")
_POSE_SPLIT = flags.DEFINE_enum("pose_split", None, ["all", "unseen"], "NeMo's unseen-pose split.")
_OPTION = flags.DEFINE_multi_string(
    "option", [], "KEY=VALUE: any field of the dataset's options dataclass (repeatable)."
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Rebuild an existing dataset.")
_NO_PROGRESS = flags.DEFINE_bool("no_progress", False, "No progress bars.")
flags.mark_flags_as_required(["dataset", "data_dir"])


def _main(argv) -> int:
    no_positional(argv)
    dataset = _DATASET.value
    try:
        overrides = build_lib.parse_option_items(_OPTION.value)
    except ValueError as err:
        raise app.UsageError(str(err)) from err
    if _CATEGORIES.value:
        overrides["categories"] = _CATEGORIES.value
    if _POSE_SPLIT.value:
        overrides["pose_split"] = _POSE_SPLIT.value
    if dataset != "synthetic" and not _MANUAL_DIR.value:
        raise app.UsageError(f"--manual_dir is required for {dataset}")
    if _MANUAL_DIR.value:
        overrides["manual_dir"] = _MANUAL_DIR.value
    try:
        options = build_lib.make_options(dataset, overrides)
        stats = build_lib.build(
            dataset,
            _DATA_DIR.value,
            options,
            manual_dir=_MANUAL_DIR.value,
            overwrite=_OVERWRITE.value,
            progress=not _NO_PROGRESS.value,
        )
    except (ValueError, OSError, RuntimeError) as err:  # OSError: FileNotFoundError, unwritable ...
        print(f"build_data: {dataset} failed: {err}", file=sys.stderr)
        return 1
    print(build_lib.summary(dataset, stats))
    return 0


def main():
    """Console entry point (``[project.scripts]``); ``tools/*.py`` call it too."""
    run(__name__, _main)
