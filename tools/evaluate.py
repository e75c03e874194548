"""Evaluate trained NeMo runs (or the baseline) on a dataset's occlusion levels with NeMo's metric.

    python tools/evaluate.py --workdir RUNS --dataset synthetic --data_dir data --json out.json
    python tools/evaluate.py --workdir RUNS/car ...            # a single category's run
    python tools/evaluate.py --method baseline --workdir BASELINE --dataset synthetic --data_dir data

--workdir is one NeMo training run (config.json + checkpoints/) or a folder of runs, one per category.
A local PASCAL3D+ + OccludedPASCAL3D+ tree is evaluated directly with --manual_dir (the folder holding
PASCAL3D+_release1.1/ and OccludedPASCAL3D+/, as for tools/build_data.py, whose --option KEY=VALUE
this takes too): what --data_dir lacks is built first. NeMo's protocol: --dataset occluded_pascal3d
evaluates L0 on the clean PASCAL3D+ val set and L1-L3 on OccludedPASCAL3D+.

Prints the table, writes the results JSON ({"results": ..., "predictions": ...}) and, with
--figures DIR, NeMo's Figure 1 for the first image of each level.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nemo_jax import data as data_lib  # noqa: E402
from nemo_jax import eval as eval_lib  # noqa: E402
from nemo_jax.apps import evaluate as evaluate_lib  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True)
    p.add_argument("--method", default="nemo", choices=["nemo", "baseline"])
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--data_dir", required=True, help="where tools/build_data.py wrote the dataset")
    p.add_argument(
        "--manual_dir",
        default="",
        help="local release (as tools/build_data.py): build the dataset into --data_dir first if absent",
    )
    p.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="builder option, with --manual_dir"
    )
    p.add_argument("--levels", default="0,1,2,3", help="occlusion levels, e.g. 0,1,2,3")
    p.add_argument("--categories", default="", help="baseline only: comma-separated subset")
    p.add_argument("--json", default="", help="write the results JSON here")
    p.add_argument("--figures", default="", help="folder for Figure 1 PNGs (NeMo)")
    p.add_argument("--steps", type=int, default=300, help="refinement steps (NeMo: 300)")
    p.add_argument("--starts", type=int, default=1, help="grid starts refined (NeMo: 1)")
    p.add_argument("--variant", default="hard", help="rasterizer variant (any registered name)")
    args = p.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x]
    try:
        options = data_lib.parse_option_items(args.option)
    except ValueError as err:
        p.error(str(err))
    if args.method == "nemo":
        if os.path.isfile(os.path.join(args.workdir, "config.json")):
            runs = {os.path.basename(os.path.normpath(args.workdir)): args.workdir}
        else:
            runs = evaluate_lib.nemo_workdirs(args.workdir)
    cats = [c for c in args.categories.split(",") if c]
    if args.manual_dir:
        if args.method == "nemo":
            cats = []
            for run_dir in runs.values():
                with open(os.path.join(run_dir, "config.json")) as fh:
                    cats.append(json.load(fh)["category"])
        evaluate_lib.ensure_datasets(args.dataset, args.data_dir, args.manual_dir, cats, options)

    if args.method == "baseline":
        records = evaluate_lib.baseline_records(
            args.workdir, args.dataset, args.data_dir, levels, cats or None
        )
    else:
        records = []
        overrides = {"steps": args.steps, "num_starts": args.starts}
        for category, run_dir in runs.items():
            hook = None
            if args.figures:
                hook = evaluate_lib.figure_hook(run_dir, args.figures, category)
            records += evaluate_lib.nemo_records(
                run_dir,
                args.dataset,
                args.data_dir,
                levels,
                search_overrides=overrides,
                variant=args.variant,
                on_batch=hook,
            )
    results = eval_lib.evaluate_records(records)
    print(eval_lib.format_table(results, f"{args.method} on {args.dataset}"))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
