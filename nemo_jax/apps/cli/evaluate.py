"""Evaluate trained NeMo runs (or the baseline) on a dataset's occlusion levels with NeMo's metric.

    nemo-jax-evaluate --workdir RUNS --dataset synthetic --data_dir data --json out.json
    nemo-jax-evaluate --workdir RUNS/car ...            # a single category's run
    nemo-jax-evaluate --method baseline --workdir BASELINE --dataset synthetic --data_dir data
    python tools/evaluate.py ...   (the same)

--workdir is one NeMo training run (config.json + checkpoints/) or a folder of runs, one per category.
A run of one backbone for several categories (configs/synthetic_all.py) scores every category it
knows; --category_mode=search infers each image's category as well (lowest loss over every
category's mesh) and reports the category accuracy beside the pose accuracy.
A local PASCAL3D+ + OccludedPASCAL3D+ tree is evaluated directly with --manual_dir (the folder holding
PASCAL3D+_release1.1/ and OccludedPASCAL3D+/, as for nemo-jax-build-data, whose --option KEY=VALUE
this takes too): what --data_dir lacks is built first. NeMo's protocol: --dataset occluded_pascal3d
evaluates L0 on the clean PASCAL3D+ val set and L1-L3 on OccludedPASCAL3D+.

The pose search follows each run's stored inference settings (config.json's "inference" section);
--config.inference.KEY=VALUE changes them, e.g. --config.inference.steps=100 or
--config.inference.parametrization=camera_position (keys: nemo_jax.inference.settings).

Prints the table, writes the results JSON ({"results": ..., "predictions": ...}) and, with
--figures DIR, NeMo's Figure 1 for the first image of each level.

Confidence: a run with a calibration.json gives every prediction a "confidence" (an estimate of
P(rotation error < pi/6)), the results JSON a "confidence" entry (ECE over 10 equal-width bins,
AUROC) and --figures DIR a reliability diagram and a selective-accuracy curve. --calibrate fits that
file on the evaluated images, which must be a validation set, not the test images:

    nemo-jax-build-data --dataset synthetic --data_dir val --option seed=1 --option test_per_category=100
    nemo-jax-evaluate --workdir RUN --data_dir val --calibrate
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from nemo_jax.apps.cli import define_inference_overrides, no_positional, run

_WORKDIR = flags.DEFINE_string("workdir", None, "A NeMo run, a folder of runs, or the baseline's run.")
_METHOD = flags.DEFINE_enum("method", "nemo", ["nemo", "baseline"], "What --workdir holds.")
_DATASET = flags.DEFINE_string("dataset", "synthetic", "Dataset name.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where nemo-jax-build-data wrote the dataset.")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir",
    "",
    "Local release (as nemo-jax-build-data): build the dataset into --data_dir first if absent.",
)
_OPTION = flags.DEFINE_multi_string("option", [], "KEY=VALUE builder option, with --manual_dir (repeatable).")
_LEVELS = flags.DEFINE_string("levels", "0,1,2,3", "Occlusion levels, e.g. 0,1,2,3.")
_CATEGORIES = flags.DEFINE_string(
    "categories", "", "Comma-separated subset of the categories (baseline, or a run of several categories)."
)
_CATEGORY_MODE = flags.DEFINE_enum(
    "category_mode",
    "ground_truth",
    ["ground_truth", "search"],
    "A run of one backbone for several categories: search each image against its annotated "
    "category's mesh, or against every category's mesh keeping the lowest loss (the category is "
    "inferred; the results report its accuracy as category_acc).",
)
_JSON = flags.DEFINE_string("json", "", "Write the results JSON here.")
_FIGURES = flags.DEFINE_string(
    "figures", "", "Folder for Figure 1 PNGs and, with a calibration, the confidence figures (NeMo)."
)
_CALIBRATE = flags.DEFINE_bool(
    "calibrate",
    False,
    "NeMo: fit each run's confidence calibration (calibration.json) on these images, a validation set.",
)
_INFERENCE = define_inference_overrides()
_DTYPE = flags.DEFINE_enum(
    "dtype",
    "",
    ["", "float32", "bfloat16"],
    "NeMo backbone compute dtype (default: the run's config.model.dtype).",
)
flags.mark_flags_as_required(["workdir", "data_dir"])


def parse_levels(text: str) -> list[int]:
    """``"0,1,3"`` -> ``[0, 1, 3]``; ``app.UsageError`` naming the flag and the bad item otherwise."""
    from nemo_jax.data import LEVELS

    levels = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        if not item.isdigit() or int(item) not in LEVELS:
            raise app.UsageError(
                f"--levels {text!r}: {item!r} is not an occlusion level; expected some of "
                f"{', '.join(map(str, LEVELS))}, comma-separated"
            )
        levels.append(int(item))
    if not levels:
        raise app.UsageError(f"--levels {text!r}: no occlusion level given")
    return levels


def _main(argv) -> int:
    no_positional(argv)
    from nemo_jax import data as data_lib
    from nemo_jax import eval as eval_lib
    from nemo_jax import output
    from nemo_jax.apps.evaluate import evaluate

    try:
        options = data_lib.parse_option_items(_OPTION.value)
    except ValueError as err:
        raise app.UsageError(str(err)) from err
    levels = parse_levels(_LEVELS.value)
    # output paths first: a bad one fails now, not after the whole evaluation
    json_path = ""
    if _JSON.value:  # replaced only if it is an earlier results JSON
        json_path = output.check_output_file(_JSON.value, "--json", output.is_json_with("results"))
    if _FIGURES.value and os.path.exists(_FIGURES.value) and not os.path.isdir(_FIGURES.value):
        raise ValueError(f"--figures {_FIGURES.value}: exists and is not a folder")
    results = evaluate(
        _WORKDIR.value,
        _DATASET.value,
        _DATA_DIR.value,
        method=_METHOD.value,
        levels=levels,
        categories=[c for c in _CATEGORIES.value.split(",") if c],
        manual_dir=_MANUAL_DIR.value,
        options=options,
        figures_dir=_FIGURES.value,
        inference_overrides=_INFERENCE(),
        dtype=_DTYPE.value,
        calibrate=_CALIBRATE.value,
        category_mode=_CATEGORY_MODE.value,
    )
    print(eval_lib.format_table(results, f"{_METHOD.value} on {_DATASET.value}"))
    flagged = [p for p in results["predictions"] if p.get("flags")]
    if flagged:
        shown = "; ".join(f"{p['id']} ({', '.join(p['flags'])})" for p in flagged[:10])
        more = f"; ... {len(flagged) - 10} more" if len(flagged) > 10 else ""
        print(
            f"warning: {len(flagged)} of {len(results['predictions'])} predictions are not to be trusted "
            f"(their flags are in the results JSON): {shown}{more}",
            file=sys.stderr,
        )
    _report_confidence(results)
    if json_path:
        output.write_json(json_path, results, indent=1, default=float)
    return 0


def _report_confidence(results: dict) -> None:
    """Prints the confidence's ECE and AUROC, or how to calibrate the runs that have none."""
    if _METHOD.value != "nemo":
        return
    summary = results.get("confidence")
    if summary is None:
        from nemo_jax.apps.calibrate import how_to_calibrate
        from nemo_jax.apps.evaluate import nemo_workdirs
        from nemo_jax.inference.confidence import load_calibration

        workdir = _WORKDIR.value
        runs = (
            [workdir]
            if os.path.isfile(os.path.join(workdir, "config.json"))
            else nemo_workdirs(workdir).values()
        )
        for run_dir in runs:
            if load_calibration(run_dir) is None:
                print(f"note: {how_to_calibrate(run_dir)}", file=sys.stderr)
        return
    s = summary["all"]
    auroc = "n/a (one class only)" if s["auroc"] is None else f"{s['auroc']:.3f}"
    print(
        f"confidence for {summary['target']}: ECE {s['ece']:.3f} ({summary['bins']}), "
        f"AUROC {auroc}, {s['n']} images"
    )


def main():
    """Console entry point (``[project.scripts]``); ``tools/*.py`` call it too."""
    run(__name__, _main)
