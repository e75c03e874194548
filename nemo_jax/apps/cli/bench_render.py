"""Benchmarks the rasterizer variants on NeMo's car setting; prints what it measured.

    python tools/bench_render.py                                 # the hard variant
    python tools/bench_render.py --variant all --json            # every registered variant
    python tools/bench_render.py --variant gaussian --param max_kernels=50 --config.height=64

Defaults (``--config.KEY=VALUE`` overrides any of them, see nemo_jax.apps.bench_render): a car-sized
SingleCuboid (~1,000 vertices, ~2,000 faces; box 0.4 x 1.0 x 0.34 CAD units), feature map 32 x 84
(NeMo's 256 x 672 car crop at stride 8), 128-d unit features, render distance 5, focal 3000 / 8 =
375 px, NeMo's objective through the per-image similarity table S = vertex_features @ observed^T.

Benchmarks (median of --config.repeats runs after one warm-up; compile time reported separately):
  render_fwd            NeMo loss of one pose
  render_fwd_bwd        loss and gradient w.r.t. (azimuth, elevation, theta, distance) of one pose
  render_fwd_bwd_feat   the same, blending the 128-d features instead of S (for the ratio)
  grid144_fwd           loss of NeMo's 144-pose initial grid (12 az x 4 el x 3 theta), one image
  refine_step           one step of the pose search's Adam refinement (nemo_jax.inference.refine_step)
                        for images x starts poses

With --json, one JSON object per line. The tile budget is sized per variant from the benchmark's own
poses with a 20% margin unless --config.tile_budget is given; overflow_max reports dropped tiles
(0 = every render exact).
"""

from __future__ import annotations

import json

from absl import app, flags
from ml_collections import config_flags

from nemo_jax.apps import bench_render as bench_lib
from nemo_jax.apps.cli import no_positional, run

_CONFIG = config_flags.DEFINE_config_dict("config", bench_lib.default_config())
_VARIANT = flags.DEFINE_string("variant", "hard", "A registered variant name, a comma list, or 'all'.")
_PARAM = flags.DEFINE_multi_string("param", [], "KEY=VALUE parameter of the variant (repeatable).")
_JSON = flags.DEFINE_bool("json", False, "One JSON object per line.")
_ONLY = flags.DEFINE_list("only", [], "Subset of benchmark names.")


def _main(argv):
    no_positional(argv)
    try:
        params = bench_lib.parse_params(_PARAM.value)
        variants = bench_lib.variant_list(_VARIANT.value)
    except ValueError as err:
        raise app.UsageError(str(err)) from err
    if params and len(variants) > 1:
        raise app.UsageError("--param applies to one --variant, not several")
    header = False
    for variant in variants:
        for record in bench_lib.run(_CONFIG.value, variant, params or None, only=_ONLY.value):
            if _JSON.value:
                print(json.dumps(record), flush=True)
                continue
            if not header:
                print(json.dumps({k: record[k] for k in bench_lib.ENVIRONMENT_KEYS}))
                print(
                    f"{'variant':<11}{'name':<21}{'median_ms':>11}{'ms/pose':>10}{'compile_s':>10}{'overflow':>9}"
                )
                header = True
            print(
                f"{variant:<11}{record['name']:<21}{record['median_ms']:>11.3f}{record['ms_per_pose']:>10.4f}"
                f"{record['compile_s']:>10.2f}{record['overflow_max']:>9}",
                flush=True,
            )


def main():
    """Entry point of ``python tools/bench_render.py``."""
    run(__name__, _main)
