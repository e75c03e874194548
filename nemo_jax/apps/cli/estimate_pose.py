"""Predict object poses (and figures) for unlabeled images with a given object box.

    nemo-jax-estimate-pose --images DIR --category car --checkpoint RUNS/car \
        [--boxes boxes.json] [--out out/poses] [--fill F] [--distance D] \
        [--config.inference.parametrization=camera_position] [--mode 6d [--canvas 1.5]]

--checkpoint is a NeMo training run (nemo-jax-train's --workdir) for --category. --boxes is a JSON
file {image file name: [x0, y0, x1, y1]} in pixels, the image's top-left corner at (0, 0) (the whole
image is [0, 0, w, h]); images without a box use the whole image. Each box is cropped as the run's
training crops were (the run's crop_protocol.json, written by training: median box-to-crop size and
principal-point offset over its training set); --fill F instead makes the box's longer side span F
of the crop's shorter side (needed for runs without crop_protocol.json).
Writes --out/predictions.json (azimuth, elevation, theta in degrees and radians, the search's
distance, loss, confidence: an estimate of P(rotation error < pi/6) when the run has a
calibration.json, made by nemo-jax-evaluate --calibrate on validation images, and flags:
reasons not to trust a pose, e.g. "box outside image") and one overlay figure per image, all at
once: a previous --out of this tool is replaced whole, any other non-empty --out is refused. An
image that cannot be processed (unreadable, a bad box) is reported and skipped; a box naming no
image in --images is an error.
The pose search follows the run's stored inference settings; --config.inference.KEY=VALUE changes
them (keys: nemo_jax.inference.settings), e.g. --config.inference.parametrization=camera_position
lets the distance move (NeMo's refinement).
--mode 6d: the box is only rough (or absent): a crop --canvas times the run's crop size around it is
searched for the object's position and distance (--distance_factors times the run's) besides the
angles (nemo_jax.inference.six_d); predictions.json then also holds "centre" (x, y: the image of the
object's CAD origin, image pixels, the boxes' convention) and "distance_image" (the distance for a
focal length of 3000 pixels of the input image, as PASCAL3D+ annotates it).
"""

from __future__ import annotations

import math
import os
import sys

from absl import flags

from nemo_jax.apps.cli import define_inference_overrides, no_positional, run

_IMAGES = flags.DEFINE_string("images", None, "Folder of images.")
_CATEGORY = flags.DEFINE_string("category", None, "The run's category.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "NeMo training run directory.")
_BOXES = flags.DEFINE_string("boxes", "", "JSON {image name: [x0, y0, x1, y1]}.")
_OUT = flags.DEFINE_string("out", "out/poses", "Output folder.")
_FILL = flags.DEFINE_float(
    "fill",
    None,
    "Override the run's crop protocol: box's longer side / crop's shorter side (synthetic set: 0.6).",
)
_DISTANCE = flags.DEFINE_float(
    "distance", None, "Render distance (CAD units); default: the run's data.distance."
)
_NO_FIGURES = flags.DEFINE_bool("no_figures", False, "Write predictions.json only.")
_MODE = flags.DEFINE_enum(
    "mode", "3d", ["3d", "6d"], "3d: the box gives the centre and scale (NeMo); 6d: they are searched."
)
_CANVAS = flags.DEFINE_float("canvas", 1.5, "--mode 6d: searched crop size / the run's crop size (>= 1).")
_DISTANCE_FACTORS = flags.DEFINE_list(
    "distance_factors", "0.7,0.85,1,1.2,1.4", "--mode 6d: coarse distances, multiples of the run's."
)
_SIX_D_STARTS = flags.DEFINE_integer(
    "six_d_starts", 4, "--mode 6d: best coarse poses refined (--config.inference.num_starts sets 3d's)."
)
_INFERENCE = define_inference_overrides()
flags.mark_flags_as_required(["images", "category", "checkpoint"])


def _main(argv) -> int:
    no_positional(argv)
    from nemo_jax.apps.estimate import estimate_poses, load_boxes

    if _DISTANCE.value is not None and not (math.isfinite(_DISTANCE.value) and _DISTANCE.value > 0):
        raise ValueError(f"--distance: expected a positive number (CAD units), got {_DISTANCE.value}")
    try:
        factors = tuple(float(v) for v in _DISTANCE_FACTORS.value)
    except ValueError:
        raise ValueError(f"--distance_factors: expected numbers, got {_DISTANCE_FACTORS.value}") from None
    boxes = load_boxes(_BOXES.value) if _BOXES.value else None
    records = estimate_poses(
        _CHECKPOINT.value,
        _IMAGES.value,
        boxes,
        _OUT.value,
        _FILL.value,
        _DISTANCE.value,
        not _NO_FIGURES.value,
        _CATEGORY.value,
        boxes_source=_BOXES.value or "--boxes",
        inference_overrides=_INFERENCE(),
        mode=_MODE.value,
        canvas=_CANVAS.value,
        distance_factors=factors,
        six_d_starts=_SIX_D_STARTS.value,
    )
    for r in records:
        if "error" in r:
            print(f"{r['image']}: skipped ({r['error']})")
            continue
        flags = f"  NOT TRUSTED: {', '.join(r['flags'])}" if r["flags"] else ""
        centre = f"  centre ({r['centre'][0]:.1f}, {r['centre'][1]:.1f}) px" if "centre" in r else ""
        print(
            f"{r['image']}: azimuth {r['azimuth_deg']:.1f}  elevation {r['elevation_deg']:.1f}  "
            f"theta {r['theta_deg']:.1f} deg  distance {r['distance']:.3g}{centre}  "
            f"loss {r['loss']:.3f}{flags}"
        )
    skipped = sum("error" in r for r in records)
    print(
        f"predictions: {os.path.join(_OUT.value, 'predictions.json')}"
        + (f" ({skipped} of {len(records)} images skipped)" if skipped else "")
    )
    if records and skipped == len(records):
        print(
            f"nemo-jax-estimate-pose: every image in {_IMAGES.value} was skipped (reasons above); "
            "no pose was estimated",
            file=sys.stderr,
        )
        return 1
    return 0


def main():
    """Console entry point (``[project.scripts]``); ``tools/*.py`` call it too."""
    run(__name__, _main)
