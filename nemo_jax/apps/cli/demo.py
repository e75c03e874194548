"""The main job: NeMo vs pose-classification baselines on the embedded synthetic dataset (CPU-sized).

    nemo-jax-demo [--workdir out/demo] [--data_dir out/data] [--categories car,chair,aeroplane] [--jobs 0]
    python tools/demo.py ...   (the same)

Builds the synthetic set if absent, trains NeMo (one neural mesh per category) and two baselines,
Res50-General (one classifier) and Res50-Specific (one per category), evaluates them on occlusion
levels L0-L3, prints the tables and writes --workdir/results.json ({"nemo": ..., "baseline": ...,
"baseline_specific": ...}) and figures (--workdir/figures). Configs: --nemo_config,
--baseline_config and --baseline_specific_config (ml_collections files; override fields with
--nemo_config.train.steps=100 etc.; --baseline_specific_config='' leaves that baseline out). Each
category trains with the NeMo config file's own get_config(category), then the overrides; a config
with ``categories`` (configs/synthetic_all.py) trains one backbone for all --categories.
The NeMo runs and the baselines are independent jobs; on a CPU, --jobs of them (default: as many as
cores, at most 4) run at once in separate processes, which changes the wall clock, not the numbers.
While they run, one progress line per job (step/total, loss, images per second, time left); when
stdout is not a terminal, plain lines every --progress_every steps instead.
"""

from __future__ import annotations

import os
import sys
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
_SPECIFIC = config_flags.DEFINE_config_file(
    "baseline_specific_config",
    os.path.join(REPO_ROOT, "configs", "baseline_synthetic.py") + ":specific",
    "Res50-Specific baseline config (one classifier per category); '' leaves it out.",
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
_EVERY = flags.DEFINE_integer(
    "progress_every",
    0,
    "When stdout is not a terminal: a progress line per job every this many training steps; 0: a "
    "tenth of the job's steps.",
    lower_bound=0,
)


def _main(argv):
    no_positional(argv)
    from nemo_jax.apps.demo import (
        Progress,
        category_configs,
        default_jobs,
        print_results_table,
        quiet_third_party,
        run_demo,
    )

    logging.set_verbosity(logging.WARNING)
    quiet_third_party()
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
    baselines = [_BASE.value]
    # --baseline_specific_config= (empty): no Res50-Specific baseline
    specific = config_flags.get_config_filename(flags.FLAGS["baseline_specific_config"])
    baselines.append(_SPECIFIC.value if specific else None)
    for config in baselines:
        if config is not None:  # the demo shows its own progress lines, not the runs' bars
            config.train.progress = False
    jobs = _JOBS.value or default_jobs()
    workdir = _WORKDIR.value
    results = run_demo(
        workdir,
        _DATA.value,
        categories,
        nemo_configs,
        baselines[0],
        jobs=jobs,
        baseline_specific_config=baselines[1],
        progress=Progress(sys.stdout, every=_EVERY.value),
    )
    print(print_results_table(results))
    figure = os.path.join(workdir, "figures", "accuracy_vs_occlusion.png")
    print(
        f"\ndone in {time.perf_counter() - start:.0f} s. Everything is in {workdir}:\n"
        f"  results:  {os.path.join(workdir, 'results.json')}  (every prediction, per category and level)\n"
        f"  figures:  {os.path.join(workdir, 'figures')}  (accuracy against occlusion, NeMo's Figure 1 "
        "per category)\n"
        f"  runs:     {os.path.join(workdir, 'nemo')}, {os.path.join(workdir, 'baseline')}"
        + (f", {os.path.join(workdir, 'baseline_specific')}" if baselines[1] is not None else "")
        + f"\nlook at a figure:  xdg-open {figure}   (macOS: open)\n"
        f"re-evaluate:       nemo-jax-evaluate --workdir {os.path.join(workdir, 'nemo')} --dataset synthetic "
        f"--data_dir {_DATA.value} --json nemo_results.json"
    )


def main():
    """Console entry point (``[project.scripts]``); ``tools/*.py`` call it too."""
    run(__name__, _main)
