"""Train the pose-classification baseline (NeMo's Res50-General style) on a built dataset.

    python tools/train_baseline.py --config configs/baseline_synthetic.py --workdir /tmp/baseline \
        --config.data.data_dir=data [--config.train.steps=100]

Writes config.json, checkpoints/ (resumed from) and metrics.jsonl into --workdir.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from nemo_jax.baseline import train_baseline  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Baseline config file (configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    result = train_baseline(_CONFIG.value, _WORKDIR.value)
    final = result["losses"][-1] if result["losses"] else None  # None: the run was already complete
    print(json.dumps({"final_loss": final, "images_per_s": result["images_per_s"]}))


if __name__ == "__main__":
    app.run(main)
