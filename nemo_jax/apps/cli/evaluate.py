"""Evaluate trained NeMo runs (or the baseline) on a dataset's occlusion levels with NeMo's metric.

    nemo-jax-evaluate --workdir RUNS --dataset synthetic --data_dir data --json out.json
    nemo-jax-evaluate --workdir RUNS/car ...            # a single category's run
    nemo-jax-evaluate --method baseline --workdir BASELINE --dataset synthetic --data_dir data
    python tools/evaluate.py ...   (the same)

--workdir is one NeMo training run (config.json + checkpoints/) or a folder of runs, one per category.
A local PASCAL3D+ + OccludedPASCAL3D+ tree is evaluated directly with --manual_dir (the folder holding
PASCAL3D+_release1.1/ and OccludedPASCAL3D+/, as for nemo-jax-build-data, whose --option KEY=VALUE
this takes too): what --data_dir lacks is built first. NeMo's protocol: --dataset occluded_pascal3d
evaluates L0 on the clean PASCAL3D+ val set and L1-L3 on OccludedPASCAL3D+.

The pose search follows each run's stored inference settings (config.json's "inference" section);
--config.inference.KEY=VALUE changes them, e.g. --config.inference.steps=100 or
--config.inference.parametrization=camera_position (keys: nemo_jax.inference.settings).

Prints the table, writes the results JSON ({"results": ..., "predictions": ...}) and, with
--figures DIR, NeMo's Figure 1 for the first image of each level.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from nemo_jax.apps.cli import define_inference_overrides, no_positional, run

_WORKDIR = flags.DEFINE_string("workdir", None, "A NeMo run, a folder of runs, or the baseline's run.")
_METHOD = flags.DEFINE_enum("method", "nemo", ["nemo", "baseline"], "What --workdir holds.")
_DATASET = flags.DEFINE_string("dataset", "synthetic", "Dataset name.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where nemo-jax-build-data wrote the dataset.")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir",
    "",
    "Local release (as nemo-jax-build-data): build the dataset into --data_dir first if absent.",
)
_OPTION = flags.DEFINE_multi_string("option", [], "KEY=VALUE builder option, with --manual_dir (repeatable).")
_LEVELS = flags.DEFINE_string("levels", "0,1,2,3", "Occlusion levels, e.g. 0,1,2,3.")
_CATEGORIES = flags.DEFINE_string("categories", "", "Baseline only: comma-separated subset.")
_JSON = flags.DEFINE_string("json", "", "Write the results JSON here.")
_FIGURES = flags.DEFINE_string("figures", "", "Folder for Figure 1 PNGs (NeMo).")
_INFERENCE = define_inference_overrides()
flags.mark_flags_as_required(["workdir", "data_dir"])


def _main(argv) -> int:
    no_positional(argv)
    from nemo_jax import data as data_lib
    from nemo_jax import eval as eval_lib
    from nemo_jax.apps.evaluate import evaluate

    try:
        options = data_lib.parse_option_items(_OPTION.value)
    except ValueError as err:
        raise app.UsageError(str(err)) from err
    results = evaluate(
        _WORKDIR.value,
        _DATASET.value,
        _DATA_DIR.value,
        method=_METHOD.value,
        levels=[int(x) for x in _LEVELS.value.split(",") if x],
        categories=[c for c in _CATEGORIES.value.split(",") if c],
        manual_dir=_MANUAL_DIR.value,
        options=options,
        figures_dir=_FIGURES.value,
        inference_overrides=_INFERENCE(),
    )
    print(eval_lib.format_table(results, f"{_METHOD.value} on {_DATASET.value}"))
    if _JSON.value:
        os.makedirs(os.path.dirname(os.path.abspath(_JSON.value)), exist_ok=True)
        with open(_JSON.value, "w") as fh:
            json.dump(results, fh, indent=1, default=float)
    return 0


def main():
    """Console entry point (``[project.scripts]``); ``tools/*.py`` call it too."""
    run(__name__, _main)
