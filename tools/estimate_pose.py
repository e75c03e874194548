"""Predict object poses (and figures) for unlabeled images with a given object box.

    python tools/estimate_pose.py --images DIR --category car --checkpoint RUNS/car \
        [--boxes boxes.json] [--out out/poses] [--fill F] [--distance D]

--checkpoint is a NeMo training run (tools/train.py's --workdir) for --category. --boxes is a JSON
file {image file name: [x0, y0, x1, y1]} in pixels, the image's top-left corner at (0, 0) (the whole
image is [0, 0, w, h]); images without a box use the whole image. Each box is cropped as the run's
training crops were (the run's crop_protocol.json: median box-to-crop size and principal-point offset
over its training set); --fill F instead makes the box's longer side span F of the crop's shorter side.
Writes --out/predictions.json (azimuth, elevation, theta in degrees and radians, loss) and one
overlay figure per image.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nemo_jax.apps.estimate import estimate_poses  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True)
    p.add_argument("--category", required=True)
    p.add_argument("--checkpoint", required=True, help="NeMo training run directory")
    p.add_argument("--boxes", default="", help="JSON {image name: [x0, y0, x1, y1]}")
    p.add_argument("--out", default="out/poses")
    p.add_argument(
        "--fill",
        type=float,
        default=None,
        help="override the run's crop protocol: box's longer side / crop's shorter side (0.6: synthetic set)",
    )
    p.add_argument("--distance", type=float, default=None, help="default: the run's data.distance")
    p.add_argument("--no_figures", action="store_true")
    args = p.parse_args(argv)
    boxes = None
    if args.boxes:
        with open(args.boxes) as fh:
            boxes = json.load(fh)
    records = estimate_poses(
        args.checkpoint,
        args.images,
        boxes,
        args.out,
        args.fill,
        args.distance,
        not args.no_figures,
        args.category,
    )
    for r in records:
        print(
            f"{r['image']}: azimuth {r['azimuth_deg']:.1f}  elevation {r['elevation_deg']:.1f}  "
            f"theta {r['theta_deg']:.1f} deg  loss {r['loss']:.3f}"
        )
    print(f"predictions: {os.path.join(args.out, 'predictions.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
