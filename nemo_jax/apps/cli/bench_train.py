"""Benchmark the jitted train step (images/s) on random images with the config's shapes.

    python tools/bench_train.py --config configs/synthetic_cpu.py --json
    python tools/bench_train.py --config configs/nemo_pascal3d.py:car --config.train.batch_size=32 --json

Prints one JSON object per line: name 'train_step', median_ms, images_per_s, device, jax_version,
backbone, shapes (batch, image, features, vertices), dtype, steps timed. The neural mesh is a
cuboid (~config.mesh.target_vertices vertices) spanning ~70% of the image width; no data files.
"""

from __future__ import annotations

import json

from absl import flags, logging
from ml_collections import config_flags

from nemo_jax.apps.cli import no_positional, run

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py[:arg]).")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
_JSON = flags.DEFINE_bool("json", False, "Print JSON lines only.")
_COST = flags.DEFINE_bool(
    "cost",
    False,
    "Print XLA's cost analysis of the compiled step (FLOPs, bytes per image) and the H100 roofline.",
)
flags.mark_flags_as_required(["config"])


def _main(argv):
    no_positional(argv)
    from nemo_jax.apps.bench import bench_train

    logging.set_verbosity(logging.WARNING)
    result = bench_train(_CONFIG.value, _STEPS.value, _WARMUP.value, cost=_COST.value)
    if _JSON.value or _COST.value:
        print(json.dumps(result))
    else:
        print(
            f"train_step: {result['median_ms']:.1f} ms/step, {result['images_per_s']:.1f} images/s on "
            f"{result['device']} ({result['backbone']}, batch {result['shapes']['batch']}, "
            f"image {result['shapes']['image']}, {result['shapes']['vertices']} vertices)"
        )
        print(json.dumps(result))


def main():
    """Entry point of ``python tools/bench_train.py``."""
    run(__name__, _main)
