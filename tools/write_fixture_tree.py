"""Writes a small PASCAL3D+-format tree (and OccludedPASCAL3D+ beside it) to try the real-data path.

    python tools/write_fixture_tree.py --out /tmp/p3d [--categories car] [--train 48 --val 16]

The tree has the releases' exact on-disk formats (PASCAL3D+_release1.1/{Images,Annotations,CAD,
Image_sets}, OccludedPASCAL3D+/{images,annotations,lists}); its images are white silhouettes of a
box-shaped CAD model at random annotated viewpoints, so any pipeline step can be run on it in
minutes. It is the test suite's fixture writer (tests/data_fixtures.py).
"""

from __future__ import annotations

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, REPO)

import data_fixtures  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder to write (the builders' --manual_dir)")
    p.add_argument("--categories", default="car", help="comma-separated PASCAL3D+ categories")
    p.add_argument("--train", type=int, default=48, help="train images per category")
    p.add_argument("--val", type=int, default=16, help="val images per category")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    categories = tuple(c for c in args.categories.split(",") if c)
    views = data_fixtures.write_pascal3d(args.out, categories, (args.train, args.val), seed=args.seed)
    val = {name: view for name, view in views.items() if "_val_" in name}  # occluded: val images
    for category in categories:
        data_fixtures.write_occluded(args.out, val, category, seed=args.seed)
    print(f"wrote {len(views)} images of {', '.join(categories)} under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
