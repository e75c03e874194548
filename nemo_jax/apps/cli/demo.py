"""The main job: NeMo vs a pose-classification baseline on the embedded synthetic dataset (CPU-sized).

    nemo-jax-demo [--workdir out/demo] [--data_dir out/data] [--categories car,chair,aeroplane] [--jobs 0]
    python tools/demo.py ...   (the same)

Builds the synthetic set if absent, trains NeMo (one neural mesh per category) and the baseline,
evaluates both on occlusion levels L0-L3, prints the tables and writes --workdir/results.json
({"nemo": ..., "baseline": ...}) and figures (--workdir/figures). Configs: --nemo_config and
--baseline_config (ml_collections files; override fields with --nemo_config.train.steps=100 etc.).
Each category trains with the NeMo config file's own get_config(category), then the overrides; a
config with ``categories`` (configs/synthetic_all.py) trains one backbone for all --categories.
The NeMo runs and the baseline are independent jobs; on a CPU, --jobs of them (default: as many as
cores, at most 4) run at once in separate processes, which changes the wall clock, not the numbers.
"""

from __future__ import annotations

import os
import time

from absl import flags, logging
from ml_collections import config_flags

from nemo_jax.apps.cli import REPO_ROOT, no_positional, run

_NEMO = config_flags.DEFINE_config_file(
    "nemo_config", os.path.join(REPO_ROOT, "configs", "synthetic_cpu.py"), "NeMo training config."
)
_BASE = config_flags.DEFINE_config_file(
    "baseline_config", os.path.join(REPO_ROOT, "configs", "baseline_synthetic.py"), "Baseline config."
)
_WORKDIR = flags.DEFINE_string("workdir", "out/demo", "Output folder (results.json, figures, runs).")
_DATA = flags.DEFINE_string("data_dir", "out/data", "Dataset folder (built here if absent).")
_CATS = flags.DEFINE_string("categories", "car,chair,aeroplane", "Synthetic categories.")
_JOBS = flags.DEFINE_integer(
    "jobs",
    0,
    "Jobs (NeMo runs, the baseline) run at once in separate processes; 0: automatic (1 on a GPU/TPU, "
    "else the CPU count, at most 4). The numbers do not depend on it.",
    lower_bound=0,
)


def _main(argv):
    no_positional(argv)
    from nemo_jax.apps.demo import category_configs, default_jobs, print_results_table, run_demo

    logging.set_verbosity(logging.WARNING)
    start = time.perf_counter()
    categories = [c for c in _CATS.value.split(",") if c]
    loaded = _NEMO.value  # loads the file and applies the overrides once, so errors show up now
    holder = flags.FLAGS["nemo_config"]
    if loaded.get("categories", ()):  # one backbone for all categories (configs/synthetic_all.py)
        nemo_configs = loaded
        nemo_configs.train.progress = False
    else:
        nemo_configs = category_configs(
            config_flags.get_config_filename(holder), config_flags.get_override_values(holder), progress=False
        )
    jobs = _JOBS.value or default_jobs()
    results = run_demo(_WORKDIR.value, _DATA.value, categories, nemo_configs, _BASE.value, jobs=jobs)
    print(print_results_table(results))
    print(
        f"results: {os.path.join(_WORKDIR.value, 'results.json')}; figures: "
        f"{os.path.join(_WORKDIR.value, 'figures')}; total {time.perf_counter() - start:.0f} s"
    )


def main():
    """Console entry point (``[project.scripts]``); ``tools/*.py`` call it too."""
    run(__name__, _main)
