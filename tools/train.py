"""Train a NeMo neural mesh + feature backbone.

    python tools/train.py --config configs/smoke.py --workdir /tmp/run [--config.train.steps=10]

Resumes automatically from the newest checkpoint in --workdir. Writes config.json, mesh.json,
checkpoints/, metrics.jsonl and tb/ (TensorBoard) there, and prints the held-out nearest-vertex
matching accuracy at the end.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from nemo_jax.train.loop import train  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py[:arg]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, config).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    result, _ = train(_CONFIG.value, _WORKDIR.value)
    print(json.dumps({k: v for k, v in result.items()}, default=float))


if __name__ == "__main__":
    app.run(main)
