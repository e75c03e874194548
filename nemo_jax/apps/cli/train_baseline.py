"""Train the pose-classification baseline (NeMo's Res50-General style) on a built dataset.

    nemo-jax-train-baseline --config configs/baseline_synthetic.py --workdir /tmp/baseline \
        --config.data.data_dir=data [--config.train.steps=100]
    nemo-jax-train-baseline --config configs/baseline_pascal3d.py --workdir /tmp/baseline \
        --config.data.data_dir=data --config.model.pretrained=/path/resnet50-0676ba61.pth

Writes config.json, checkpoints/ (resumed from) and metrics.jsonl into --workdir.
"""

from __future__ import annotations

import json

from absl import flags, logging
from ml_collections import config_flags

from nemo_jax.apps.cli import checked_training_inputs, no_positional, run

_CONFIG = config_flags.DEFINE_config_file("config", None, "Baseline config file (configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.")
flags.mark_flags_as_required(["config", "workdir"])


def _main(argv):
    no_positional(argv)
    from nemo_jax.baseline import train_baseline

    logging.set_verbosity(logging.WARNING)
    result = train_baseline(checked_training_inputs(_CONFIG, _WORKDIR.value), _WORKDIR.value)
    final = result["losses"][-1] if result["losses"] else None  # None: the run was already complete
    print(json.dumps({"final_loss": final, "images_per_s": result["images_per_s"]}))


def main():
    """Console entry point (``[project.scripts]``); ``tools/*.py`` call it too."""
    run(__name__, _main)
