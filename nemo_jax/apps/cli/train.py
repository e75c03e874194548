"""Train a NeMo neural mesh + feature backbone.

    nemo-jax-train --config configs/smoke.py --workdir /tmp/run [--config.train.steps=10]
    python tools/train.py ...   (the same)

Resumes automatically from the newest checkpoint in --workdir. Writes config.json, mesh.json,
checkpoints/, metrics.jsonl and tb/ (TensorBoard) there, and prints the held-out nearest-vertex
matching accuracy at the end.
"""

from __future__ import annotations

import json

from absl import flags, logging
from ml_collections import config_flags

from nemo_jax.apps.cli import checked_training_inputs, no_positional, run

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py[:arg]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, config).")
flags.mark_flags_as_required(["config", "workdir"])


def _main(argv):
    no_positional(argv)
    from nemo_jax.train.loop import train

    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    result, _ = train(checked_training_inputs(_CONFIG, _WORKDIR.value), _WORKDIR.value)
    print(json.dumps({k: v for k, v in result.items()}, default=float))


def main():
    """Console entry point (``[project.scripts]``); ``tools/*.py`` call it too."""
    run(__name__, _main)
