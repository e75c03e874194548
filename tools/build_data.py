"""Builds a nemo_jax dataset (tfds ArrayRecord) into --data_dir.

  python tools/build_data.py --dataset synthetic --data_dir ~/nemo_data
  python tools/build_data.py --dataset synthetic --data_dir D --option height=96 --option seed=1
  python tools/build_data.py --dataset pascal3d --manual_dir /datasets --data_dir D --categories car,bus

For the PASCAL3D+ family --manual_dir is the folder holding PASCAL3D+_release1.1/ (and, for
occluded_pascal3d, OccludedPASCAL3D+/ beside it); for objectnet3d the folder holding ObjectNet3D/.
Prints a closing summary: examples written per split, examples skipped and why.
"""

from __future__ import annotations

import argparse
import sys

from nemo_jax.data import prepare as build_lib


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True, choices=build_lib.DATASETS)
    parser.add_argument("--data_dir", required=True, help="where built datasets live")
    parser.add_argument("--manual_dir", default=None, help="folder holding the downloaded release(s)")
    parser.add_argument("--categories", default=None, help="comma-separated category names")
    parser.add_argument(
        "--pose_split", default=None, choices=("all", "unseen"), help="NeMo's unseen-pose split"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any field of the dataset's options dataclass (repeatable)",
    )
    parser.add_argument("--overwrite", action="store_true", help="rebuild an existing dataset")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)

    try:
        overrides = build_lib.parse_option_items(args.option)
    except ValueError as err:
        parser.error(str(err))
    if args.categories:
        overrides["categories"] = args.categories
    if args.pose_split:
        overrides["pose_split"] = args.pose_split
    if args.dataset != "synthetic" and not args.manual_dir:
        parser.error(f"--manual_dir is required for {args.dataset}")
    if args.manual_dir:
        overrides["manual_dir"] = args.manual_dir
    try:
        options = build_lib.make_options(args.dataset, overrides)
        stats = build_lib.build(
            args.dataset,
            args.data_dir,
            options,
            manual_dir=args.manual_dir,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (ValueError, OSError, RuntimeError) as err:  # OSError: FileNotFoundError, FileExistsError, ...
        print(f"build_data: {args.dataset} failed: {err}", file=sys.stderr)
        return 1
    print(build_lib.summary(args.dataset, stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
