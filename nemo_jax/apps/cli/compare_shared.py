"""Per-category runs vs one backbone for all categories, on the same images.

    python tools/compare_shared.py --per_category RUNS --shared RUN --data_dir DIR [--json OUT.json]

--per_category is a folder of runs, one per category (as the demo's out/demo/nemo); --shared is one
run of configs/synthetic_all.py (or nemo_pascal3d_all.py). Prints Acc@pi/6 (%) per occlusion level
over all categories for each, the shared run once more with the category searched (its category
accuracy), the training steps and seconds (from each run's metrics.jsonl), and the numbers in the
backbones and neural meshes; then the shared run's per-category table. Results JSONs that
tools/evaluate.py already wrote for the same runs and images can be given instead of evaluating
again (--per_category_results, --shared_results, --search_results).
"""

from __future__ import annotations

import json
import os

from absl import flags

from nemo_jax.apps.cli import no_positional, run

_PER = flags.DEFINE_string("per_category", None, "A folder of training runs, one per category.")
_SHARED = flags.DEFINE_string("shared", None, "One training run of several categories.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where tools/build_data.py wrote the dataset.")
_DATASET = flags.DEFINE_string("dataset", "synthetic", "Dataset name.")
_LEVELS = flags.DEFINE_list("levels", ["0", "1", "2", "3"], "Occlusion levels.")
_SEARCH = flags.DEFINE_boolean("search", True, "Also score the shared run with the category searched.")
_JSON = flags.DEFINE_string("json", "", "Write the comparison JSON here.")
_PER_JSON = flags.DEFINE_string("per_category_results", "", "tools/evaluate.py's JSON for --per_category.")
_SHARED_JSON = flags.DEFINE_string("shared_results", "", "tools/evaluate.py's JSON for --shared.")
_SEARCH_JSON = flags.DEFINE_string(
    "search_results", "", "tools/evaluate.py --category_mode=search's JSON for --shared."
)
flags.mark_flags_as_required(["per_category", "shared", "data_dir"])


def _main(argv):
    no_positional(argv)
    from nemo_jax.apps.compare_shared import compare_shared, format_comparison

    comparison = compare_shared(
        _PER.value,
        _SHARED.value,
        _DATASET.value,
        _DATA_DIR.value,
        levels=[int(x) for x in _LEVELS.value],
        search=_SEARCH.value,
        results_files={
            "per-category": _PER_JSON.value,
            "shared": _SHARED_JSON.value,
            "shared, category searched": _SEARCH_JSON.value,
        },
    )
    print(format_comparison(comparison))
    if _JSON.value:
        os.makedirs(os.path.dirname(os.path.abspath(_JSON.value)), exist_ok=True)
        with open(_JSON.value, "w") as fh:
            json.dump(comparison, fh, indent=1, default=float)


def main():
    """Entry point of ``python tools/compare_shared.py``."""
    run(__name__, _main)
