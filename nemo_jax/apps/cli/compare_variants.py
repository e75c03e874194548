"""Evaluate the same trained NeMo runs on the same images with several rasterizer variants.

    python tools/compare_variants.py --workdir RUNS --data_dir DIR \
        --variants hard,soft,pytorch3d,gaussian --json OUT.json

--workdir is one training run (config.json + checkpoints/) or a folder of runs, one per category.
Prints, per variant, Acc@pi/6, Acc@pi/18 (%) and the median error (degrees) of each occlusion level
over all categories, and milliseconds per image (backbone + pose search, compilation excluded).
--json writes the full per-category results as well. Each variant runs with its default parameters.
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags

from nemo_jax.apps.cli import no_positional, run
from nemo_jax.apps.compare import compare_variants, format_comparison

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run, or a folder of runs (one per category).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where tools/build_data.py wrote the dataset.")
_DATASET = flags.DEFINE_string("dataset", "synthetic", "Dataset name.")
_VARIANTS = flags.DEFINE_list("variants", ["hard", "soft", "pytorch3d", "gaussian"], "Rasterizer variants.")
_LEVELS = flags.DEFINE_list("levels", ["0", "1", "2", "3"], "Occlusion levels.")
_STEPS = flags.DEFINE_integer("steps", 300, "Refinement steps (NeMo: 300).")
_STARTS = flags.DEFINE_integer("starts", 1, "Grid starts refined (NeMo: 1).")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Images per search call.")
_JSON = flags.DEFINE_string("json", "", "Write the comparison JSON here.")
flags.mark_flags_as_required(["workdir", "data_dir"])


def _main(argv):
    no_positional(argv)
    comparison = compare_variants(
        _WORKDIR.value,
        _DATA_DIR.value,
        _VARIANTS.value,
        dataset=_DATASET.value,
        levels=[int(x) for x in _LEVELS.value],
        search_overrides={"steps": _STEPS.value, "num_starts": _STARTS.value},
        batch_size=_BATCH.value,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    print(format_comparison(comparison, f"rasterizer variants on {_DATASET.value}"))
    if _JSON.value:
        os.makedirs(os.path.dirname(os.path.abspath(_JSON.value)), exist_ok=True)
        with open(_JSON.value, "w") as fh:
            json.dump(comparison, fh, indent=1, default=float)


def main():
    """Entry point of ``python tools/compare_variants.py``."""
    run(__name__, _main)
