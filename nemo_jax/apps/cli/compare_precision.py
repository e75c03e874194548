"""float32 vs bfloat16 backbone compute, side by side in one run: train the same NeMo config twice
(only ``config.model.dtype`` differs), then score both on the synthetic validation set (the
synthetic set built with ``seed=1``) and time training and inference.

    python tools/compare_precision.py --out out/precision --category car --steps 300

Builds OUT/data (train, seed 0) and OUT/val (seed 1) unless there, trains OUT/runs/<dtype> (resumes
if there), prints one JSON line per dtype and then the comparison (per dtype the Acc@pi/6, Acc@pi/18
and median error per occlusion level, train images/s, evaluation seconds; the bf16 / f32 speed
ratios; the device). On CPUs without native bfloat16 arithmetic bf16 is usually SLOWER (XLA
emulates it); the ratio that matters is a GPU's.
"""

from __future__ import annotations

import json
import os

from absl import flags, logging

from nemo_jax.apps.cli import REPO_ROOT, no_positional, run

_OUT = flags.DEFINE_string("out", None, "Output folder (data, val, runs).")
_CONFIG = flags.DEFINE_string(
    "config",
    os.path.join(REPO_ROOT, "configs", "synthetic_cpu.py"),
    "NeMo training config file (synthetic data).",
)
_CATEGORY = flags.DEFINE_string("category", "car", "Synthetic category.")
_STEPS = flags.DEFINE_integer("steps", 300, "Train steps per run.")
_TRAIN = flags.DEFINE_integer("train_per_category", 800, "Training images.")
_VAL = flags.DEFINE_integer("val_per_level", 100, "Validation images per occlusion level.")
_LEVELS = flags.DEFINE_list("levels", ["0", "1", "2", "3"], "Occlusion levels to score.")
_DTYPES = flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Compute dtypes to compare.")
flags.mark_flags_as_required(["out"])


def _main(argv):
    no_positional(argv)
    from nemo_jax.apps.precision import compare_precision

    logging.set_verbosity(logging.WARNING)
    result = compare_precision(
        _OUT.value,
        _CONFIG.value,
        _CATEGORY.value,
        _STEPS.value,
        _TRAIN.value,
        _VAL.value,
        [int(x) for x in _LEVELS.value],
        _DTYPES.value,
        log=lambda record: print(json.dumps(record), flush=True),
    )
    print(json.dumps(result))


def main():
    """Entry point of ``python tools/compare_precision.py``."""
    run(__name__, _main)
