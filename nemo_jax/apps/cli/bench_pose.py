"""Benchmarks NeMo's full pose search on NeMo's car setting; prints what it measured.

    python tools/bench_pose.py [--json] [--images 8] [--only pose_search]

Defaults: a car-sized SingleCuboid (~1,000 vertices; box [-0.2,-0.5,-0.17]..[0.2,0.5,0.17]), feature
map 32 x 84 (NeMo's 256 x 672 car crop at stride 8), 128-d unit features, render distance 5, focal
3000 / 8 = 375 pixels of the feature map, the NeMo search: 144-pose grid (12 az x 4 el x 3 theta),
K=1 start refined with Adam for 300 steps (nemo_jax.inference.search_batch), vmapped over --images
images.

Benchmarks (median of --repeats runs after one warm-up; compile time reported separately):
  pose_search      the search for a batch of images, from precomputed feature maps (backbone excluded)
  pose_search_e2e  backbone (nemo_jax.models.build_backbone, --backbone) + search, from uint8 images
                   of 256 x 672; skipped with a note if nemo_jax.models is unavailable

With --json, one JSON object per line (conventions of tools/bench_render.py). The tile budget is sized
from the grid poses with a 1.2x margin (nemo_jax.inference.size_tile_budget); overflow_max reports
dropped tiles (0 = every render exact).

With several devices the image batch is sharded over them (data parallel). On a CPU, split the cores
into devices with ``XLA_FLAGS=--xla_force_host_platform_device_count=2 python tools/bench_pose.py``.
"""

from __future__ import annotations

import json

from absl import flags

from nemo_jax.apps.bench import CAR_SETTING, bench_pose, define_car_setting_flags
from nemo_jax.apps.cli import no_positional, run

define_car_setting_flags()
_IMAGES = flags.DEFINE_integer("images", 8, "Images per batch.")
_STARTS = flags.DEFINE_integer("starts", 1, "K refined starts per image (NeMo: 1).")
_STEPS = flags.DEFINE_integer("steps", 300, "Adam steps.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs after the warm-up.")
_BACKBONE = flags.DEFINE_string("backbone", "resnet50", "nemo_jax.models backbone name for pose_search_e2e.")
_ONLY = flags.DEFINE_string("only", "", "Comma-separated subset of benchmark names.")
_COST = flags.DEFINE_bool(
    "cost",
    False,
    "Print XLA's cost analysis of the compiled search (FLOPs, bytes per image) and the H100 roofline.",
)
_XLA_BYTES = flags.DEFINE_bool(
    "xla_bytes",
    True,
    "Add xla_bytes_per_image (XLA's count for the whole search) to the pose_search record; costs two "
    "more compilations.",
)
FLAGS = flags.FLAGS


def _main(argv) -> int:
    no_positional(argv)
    records = bench_pose(
        images=_IMAGES.value,
        starts=_STARTS.value,
        steps=_STEPS.value,
        repeats=_REPEATS.value,
        backbone=_BACKBONE.value,
        only=_ONLY.value.split(","),
        **{name: FLAGS[name].value for name, *_ in CAR_SETTING if name not in ("json", "tile", "no_cull")},
        tile=[int(t) for t in FLAGS.tile],
        cull=not FLAGS.no_cull,
        log=lambda note: print(json.dumps(note)),
        cost=_COST.value,
        xla_bytes=_XLA_BYTES.value,
    )
    common = next(records)
    if not FLAGS.json:
        print(json.dumps(common))
        print(
            f"{'name':<18}{'median_ms':>12}{'ms/image':>11}{'images/s':>10}{'compile_s':>11}{'overflow':>10}"
        )
    for record in records:
        if FLAGS.json or _COST.value:
            print(json.dumps(record), flush=True)
        else:
            print(
                f"{record['name']:<18}{record['median_ms']:>12.1f}{record['ms_per_image']:>11.1f}"
                f"{record['images_per_s']:>10.2f}{record['compile_s']:>11.2f}{record['overflow_max']:>10}"
            )
    return 0


def main():
    """Entry point of ``python tools/bench_pose.py``."""
    run(__name__, _main)
