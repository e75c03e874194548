"""6D vs NeMo's centred protocol on the same objects, for a run trained on the synthetic set.

Each of ``views`` viewpoints of the run's category (the synthetic generator's ``test_l0`` views for
``seed``: with the dataset's seed, the same viewpoints as its test set) is rendered by the
generator (:func:`nemo_jax.data.synthetic.generate`) into a large image at the run's distance, with
the generator's random background all around the object. Two crops are cut from it:

* centred (NeMo's protocol): the run's crop size, the object's centre at the crop's principal point
  and at the run's distance (no resampling); the pose search of ``estimate_pose --mode 3d``
  (:func:`nemo_jax.inference.search_pose`) with the true centre and distance;
* 6D: a window ``canvas`` times the run's crop size (rounded up as ``estimate_pose --mode 6d``
  rounds it), zoomed by a random scale (log-uniform in ``scale_range``) and placed so that the
  object's centre lies at a random offset from the window's centre, uniform per axis within
  ``(canvas size - crop size) / 2`` window pixels (a crop-size box around the object stays inside
  the window). The 6D search runs as ``estimate_pose --mode 6d`` runs it
  (:func:`nemo_jax.apps.estimate.six_d_config`, :func:`nemo_jax.inference.six_d_pose`); its
  truth is the object's centre in the window and the distance ``run distance / scale`` (the focal
  length stays the run's 3000 pixels).

Reported: Acc@pi/6 and the median rotation error of both, the 6D centre error in feature cells
(median, fraction within half a cell) and relative distance error (median), per-view figures, the
settings, the device and versions. Deterministic for a seed.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
import time

import jax
import numpy as np
from PIL import Image

from nemo_jax.apps.estimate import SIX_D_STARTS, six_d_canvas_size, six_d_config
from nemo_jax.apps.evaluate import _preprocess
from nemo_jax.data import shapes
from nemo_jax.data.pascal3d import crop as crop_image
from nemo_jax.data.synthetic import SyntheticOptions, generate
from nemo_jax.eval import metrics as eval_lib
from nemo_jax.geometry.camera import feature_coordinates
from nemo_jax.inference import (
    neural_mesh_inputs,
    run_settings,
    search_config_from_settings,
    search_pose,
    six_d_pose,
)
from nemo_jax.mesh import subtypes
from nemo_jax.train import category_data
from nemo_jax.train.run import load_run

FOCAL_PX = 3000.0  # the synthetic set's and the runs' focal length, image pixels
ACC_THRESHOLD = math.pi / 6


def big_image_size(canvas_size: tuple[int, int], crop_size: tuple[int, int], min_scale: float) -> int:
    """Side of the square rendered image: every window (``canvas_size``, zoomed by at least
    ``min_scale``, its object offset within ``(canvas - crop) / 2``) lies inside it; a multiple of 8
    (the generator's tiles)."""
    reach = max((c / 2 + (c - k) / 2) / min_scale for c, k in zip(canvas_size, crop_size, strict=True))
    return int(math.ceil((2 * reach + 4) / 8)) * 8


def windows(count: int, seed: int, canvas_size, crop_size, scale_range) -> list[dict]:
    """Per view: the zoom ``scale`` and the object's centre ``centre`` (x, y) in window pixels."""
    rng = np.random.default_rng([seed, 6])
    lo, hi = (math.log(float(s)) for s in scale_range)
    out = []
    for _ in range(count):
        scale = float(np.exp(rng.uniform(lo, hi)))
        offset = [rng.uniform(-(c - k) / 2, (c - k) / 2) for c, k in zip(canvas_size, crop_size, strict=True)]
        h, w = canvas_size
        out.append({"scale": scale, "centre": [(w - 1) / 2 + offset[1], (h - 1) / 2 + offset[0]]})
    return out


def _versions() -> dict:
    import jaxlib

    import nemo_jax

    return {
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.default_backend(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "nemo_jax": getattr(nemo_jax, "__version__", "unknown"),
        "date": datetime.date.today().isoformat(),
    }


def _padded_batches(n: int, batch_size: int):
    """Index lists of ``batch_size`` (the last padded with its last index: one compiled shape)."""
    for start in range(0, n, batch_size):
        idx = list(range(start, min(n, start + batch_size)))
        yield idx, idx + [idx[-1]] * (batch_size - len(idx))


def six_d_check(
    run_dir: str,
    views: int = 20,
    canvas: float = 1.5,
    seed: int = 0,
    scale_range: tuple[float, float] = (0.8, 1.25),
    distance_factors: tuple[float, ...] = (0.7, 0.85, 1.0, 1.2, 1.4),
    batch_size: int = 4,
    inference_overrides: dict | None = None,
    six_d_starts: int = SIX_D_STARTS,
    log=None,
) -> dict:
    """Measures 6D against the centred protocol on ``views`` synthetic views (module docstring);
    returns the report (JSON-ready). ``run_dir``: a single-category run trained on the synthetic set
    (its category one of the generator's, its ``data.distance`` and crop size those of the set).
    The searches follow the run's ``inference`` settings with ``inference_overrides`` applied; 6D
    refines its ``six_d_starts`` best coarse poses, as ``estimate_pose --mode 6d --six_d_starts``.
    ``batch_size``: images per search call."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if views < 1 or batch_size < 1:
        raise ValueError(f"views and batch_size must be >= 1, got {views} and {batch_size}")
    if not (np.isfinite(canvas) and canvas >= 1):
        raise ValueError(f"canvas: expected a number >= 1, got {canvas}")
    lo, hi = (float(s) for s in scale_range)
    if not (0 < lo <= hi):
        raise ValueError(f"scale_range: expected 0 < low <= high, got {list(scale_range)}")
    start_time = time.perf_counter()
    config, model, variables, mesh = load_run(run_dir)
    if category_data.is_shared_config(config) or subtypes.is_stacked(mesh):
        raise ValueError(f"{run_dir}: six_d_check measures single-category, single-mesh runs")
    category = config.category
    if category not in shapes.CATEGORIES:
        raise ValueError(f"{run_dir}: category {category!r} is not a synthetic one {shapes.CATEGORIES}")
    settings = run_settings(config, inference_overrides, where=os.path.join(run_dir, "config.json"))
    size = tuple(int(s) for s in config.data.image_size)
    stride = int(config.model.get("stride", 8))
    distance = float(config.data.distance)
    canvas_size = six_d_canvas_size(size, canvas)
    big = big_image_size(canvas_size, size, lo)
    options = SyntheticOptions(
        categories=(category,),
        height=big,
        width=big,
        train_per_category=0,
        val_per_category=0,
        test_per_category=views,
        fill=FOCAL_PX / (distance * big),  # the run's distance: the object as large as in its crops
        render_batch=min(views, 8),
        seed=seed,
    )
    if not np.isclose(options.distance, distance, rtol=1e-5):
        raise AssertionError("six_d_check: rendered distance differs from the run's")
    log(f"rendering {views} {category} views at {big} x {big} px")
    examples = list(generate(options, "test_l0"))
    cuts = windows(views, seed, canvas_size, size, (lo, hi))
    centre_big = np.array([(big - 1) / 2, (big - 1) / 2])  # the object's centre (principal point)
    centred, wide = [], []
    for ex, cut in zip(examples, cuts, strict=True):
        image = Image.fromarray(ex["image"])
        x0, y0 = centre_big - np.array([(size[1] - 1) / 2, (size[0] - 1) / 2])
        centred.append(crop_image(image, float(x0), float(y0), 1.0, size))
        # window pixel u = big pixel * scale - (x0, y0): the object's centre lands on cut["centre"]
        x0, y0 = centre_big * cut["scale"] - np.asarray(cut["centre"])
        wide.append(crop_image(image, float(x0), float(y0), cut["scale"], canvas_size))
    focal_px = FOCAL_PX / stride
    principal_centred = feature_coordinates(np.array([(size[1] - 1) / 2, (size[0] - 1) / 2]), stride)
    principal_6d = feature_coordinates(
        np.array([canvas_size[1] / 2, canvas_size[0] / 2]), stride
    )  # as estimate
    where = os.path.join(run_dir, "config.json")
    features = jax.jit(lambda images: model.apply(variables, _preprocess(images), train=False))
    config_3d = config_6d = None
    rows = [{} for _ in range(views)]
    for idx, padded in _padded_batches(views, batch_size):
        obs_c = np.asarray(features(np.stack([centred[i] for i in padded])))
        obs_w = np.asarray(features(np.stack([wide[i] for i in padded])))
        if config_3d is None:
            config_3d = search_config_from_settings(
                settings, mesh, obs_c.shape[1:3], focal_px, principal_centred, distance, where=where
            )
            search = search_config_from_settings(
                settings, mesh, obs_w.shape[1:3], focal_px, principal_6d, distance, where=where
            )
            config_6d = six_d_config(
                search, mesh, focal_px, distance, distance_factors, size, stride, six_d_starts
            )
        res_c = search_pose(neural_mesh_inputs(mesh, obs_c, focal_px, principal_centred, distance), config_3d)
        res_w = six_d_pose(neural_mesh_inputs(mesh, obs_w, focal_px, principal_6d, distance), config_6d)
        for j, i in enumerate(idx):
            truth = [float(examples[i][k]) for k in ("azimuth", "elevation", "theta")]
            row = rows[i]
            row["id"] = str(examples[i]["id"])
            row["truth_deg"] = [math.degrees(v) for v in truth]
            row["scale"], row["centre_px"] = cuts[i]["scale"], cuts[i]["centre"]
            for name, res in (("centred", res_c), ("six_d", res_w)):
                pred = [float(np.asarray(getattr(res, k))[j]) for k in ("azimuth", "elevation", "theta")]
                row[name] = {
                    "pose_deg": [math.degrees(v) for v in pred],
                    "error_deg": float(np.degrees(eval_lib.rotation_error(pred, truth))),
                    "loss": float(np.asarray(res.loss)[j]),
                }
            true_cells = feature_coordinates(np.asarray(cuts[i]["centre"]), stride)
            found = np.asarray(res_w.principal)[j]
            true_distance = distance / cuts[i]["scale"]
            found_distance = float(np.asarray(res_w.distance)[j])
            row["six_d"].update(
                centre_cells=[float(v) for v in found],
                centre_error_cells=float(np.linalg.norm(found - true_cells)),
                distance=found_distance,
                true_distance=true_distance,
                distance_error=abs(found_distance - true_distance) / true_distance,
            )
        log(f"searched {idx[-1] + 1} / {views}")

    def rotation_summary(name):
        err = np.array([r[name]["error_deg"] for r in rows])
        return {
            "acc_pi6": float(np.mean(np.radians(err) < ACC_THRESHOLD)),
            "median_error_deg": float(np.median(err)),
        }

    centre_err = np.array([r["six_d"]["centre_error_cells"] for r in rows])
    dist_err = np.array([r["six_d"]["distance_error"] for r in rows])
    return {
        "run": os.path.abspath(run_dir),
        "category": category,
        "views": views,
        "seed": seed,
        "canvas": canvas,
        "crop_size": list(size),
        "canvas_size": list(canvas_size),
        "rendered_size": [big, big],
        "feature_stride": stride,
        "scale_range": [lo, hi],
        "max_offset_px": [(c - k) / 2 for c, k in zip(canvas_size, size, strict=True)],
        "distance_factors": list(distance_factors),
        "six_d_starts": int(six_d_starts),
        "inference": json.loads(settings.to_json()),
        "centred": rotation_summary("centred"),
        "six_d": {
            **rotation_summary("six_d"),
            "centre_error_median_cells": float(np.median(centre_err)),
            "centre_within_half_cell": float(np.mean(centre_err < 0.5)),
            "distance_error_median": float(np.median(dist_err)),
        },
        "per_view": rows,
        "seconds": time.perf_counter() - start_time,
        "environment": _versions(),
    }


def format_report(report: dict) -> str:
    """The report's summary, a few lines."""
    c, s = report["centred"], report["six_d"]
    return "\n".join(
        [
            f"{report['category']}: {report['views']} views, seed {report['seed']}, crop "
            f"{report['crop_size']}, 6D window {report['canvas_size']} (canvas {report['canvas']}), "
            f"scale {report['scale_range']}, offset up to {report['max_offset_px']} px, "
            f"{report['six_d_starts']} 6D starts",
            f"centred: Acc@pi/6 {100 * c['acc_pi6']:.0f} %, median error {c['median_error_deg']:.1f} deg",
            f"6D:      Acc@pi/6 {100 * s['acc_pi6']:.0f} %, median error {s['median_error_deg']:.1f} deg; "
            f"centre error median {s['centre_error_median_cells']:.2f} cells "
            f"({100 * s['centre_within_half_cell']:.0f} % within 0.5); "
            f"distance error median {100 * s['distance_error_median']:.1f} %",
            f"{report['environment']['device']} ({report['environment']['platform']}), "
            f"jax {report['environment']['jax']}, {report['seconds']:.0f} s",
        ]
    )


def write_report(report: dict, path: str) -> None:
    """``report`` as JSON at ``path`` (folders made)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(report, fh, indent=1)
