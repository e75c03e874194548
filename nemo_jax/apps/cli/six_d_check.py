"""6D pose vs NeMo's centred protocol on the same synthetic objects, for a run trained on the
synthetic set.

    python tools/six_d_check.py --checkpoint RUNS/car [--views 20] [--canvas 1.5] [--seed 0]
        [--scale_range 0.8,1.25] [--six_d_starts 4] [--out out/six_d_check.json]

Renders --views viewpoints of the run's category with the synthetic generator (the test_l0 views of
the set built with --seed) into a large image, cuts the run's crop centred on the object (NeMo's
protocol: true centre and distance, the --mode 3d search) and a window --canvas times the crop
(rounded up as estimate_pose --mode 6d rounds it) at a random zoom in --scale_range and a random
offset (the object's crop-size box inside the window), searched as estimate_pose --mode 6d searches
it. Prints Acc@pi/6 and the median rotation error of both, the 6D centre error (feature cells:
median and the fraction within half a cell) and distance error, and writes them with per-view
figures, the settings, device and versions to --out (JSON). Deterministic for a seed
(nemo_jax/apps/six_d_check.py).
"""

from __future__ import annotations

import sys

from absl import flags

from nemo_jax.apps.cli import define_inference_overrides, no_positional, run

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "NeMo training run on the synthetic set.")
_VIEWS = flags.DEFINE_integer("views", 20, "Viewpoints (objects) measured.")
_CANVAS = flags.DEFINE_float("canvas", 1.5, "6D window size / the run's crop size (>= 1).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the views (the synthetic set's seed) and of the windows.")
_SCALE_RANGE = flags.DEFINE_list("scale_range", "0.8,1.25", "Zoom of the 6D window: low,high (log-uniform).")
_DISTANCE_FACTORS = flags.DEFINE_list(
    "distance_factors", "0.7,0.85,1,1.2,1.4", "6D coarse distances, multiples of the run's."
)
_SIX_D_STARTS = flags.DEFINE_integer("six_d_starts", 4, "6D: best coarse poses refined (as estimate_pose's).")
_BATCH = flags.DEFINE_integer("batch_size", 4, "Images per search call.")
_OUT = flags.DEFINE_string("out", "out/six_d_check.json", "JSON report path.")
_INFERENCE = define_inference_overrides()
flags.mark_flags_as_required(["checkpoint"])


def _floats(values, name):
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise ValueError(f"--{name}: expected numbers, got {values}") from None


def _main(argv) -> int:
    no_positional(argv)
    from nemo_jax.apps.six_d_check import format_report, six_d_check, write_report

    try:
        scale_range = _floats(_SCALE_RANGE.value, "scale_range")
        if len(scale_range) != 2:
            raise ValueError(f"--scale_range: expected low,high, got {_SCALE_RANGE.value}")
        report = six_d_check(
            _CHECKPOINT.value,
            views=_VIEWS.value,
            canvas=_CANVAS.value,
            seed=_SEED.value,
            scale_range=scale_range,
            distance_factors=_floats(_DISTANCE_FACTORS.value, "distance_factors"),
            batch_size=_BATCH.value,
            inference_overrides=_INFERENCE(),
            six_d_starts=_SIX_D_STARTS.value,
        )
    except (ValueError, OSError) as err:
        print(f"six_d_check: {err}", file=sys.stderr)
        return 1
    write_report(report, _OUT.value)
    print(format_report(report))
    print(f"report: {_OUT.value}")
    return 0


def main():
    """Entry point of ``python tools/six_d_check.py``."""
    run(__name__, _main)
