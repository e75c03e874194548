"""Pose estimation for unlabeled images with a given object box, using a trained NeMo run.

Each image is cropped as the run's training crops were: the run's crop protocol
(``<run>/crop_protocol.json``, written by training: the median box-to-crop size and where the
principal point sits in the box, see :mod:`nemo_jax.data.crop_protocol`) maps the box to a crop of
the run's size with the principal point at ``(W / 2, H / 2)`` (pixel-centre coordinates, as the
builders' crops). The run's backbone and the pose search then give the viewpoint in the crop's
camera (focal 3000 px) at the run's ``data.distance`` (the crop's scale stands in for the true one,
as in NeMo's test protocol).

``mode="6d"``: the box is only rough (or absent). The crop is made as above but ``canvas`` times
larger around the same point, and the 6D search (:mod:`nemo_jax.inference.six_d`) finds the object's
position in it and its distance (``distance_factors`` times the run's) besides the angles.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import sys

import numpy as np
from PIL import Image

from nemo_jax import output
from nemo_jax.apps.calibrate import how_to_calibrate
from nemo_jax.apps.evaluate import _preprocess
from nemo_jax.data import crop_protocol
from nemo_jax.data import images as images_lib
from nemo_jax.data.pascal3d import crop as crop_image
from nemo_jax.geometry.camera import feature_coordinates
from nemo_jax.inference import (
    SixDConfig,
    neural_mesh_inputs,
    run_settings,
    search_config_from_settings,
    search_pose,
    six_d_pose,
    size_six_d_tile_budget,
    trust_flags,
)
from nemo_jax.inference import confidence as confidence_lib
from nemo_jax.inference.search import pose_grid
from nemo_jax.inference.six_d import refine_distance_range
from nemo_jax.mesh.subtypes import unstack
from nemo_jax.models.backbone import INPUT_MULTIPLE
from nemo_jax.train import category_data
from nemo_jax.train.run import load_run

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
MODES = ("3d", "6d")


def crop_to_box(image: np.ndarray, box, size: tuple[int, int], protocol: dict) -> np.ndarray:
    """``[H, W, 3]`` uint8 crop of ``size = (H, W)`` for ``box = (x0, y0, x1, y1)``, the box's pixel
    edges in the project's pixel-centre coordinates (the whole ``h x w`` image is ``(-0.5, -0.5,
    w - 0.5, h - 0.5)``), made by ``protocol`` (:func:`nemo_jax.data.crop_protocol.crop_for_box`);
    bilinear, black outside the image."""
    scale, x0, y0 = crop_protocol.crop_for_box(box, size, protocol)
    return crop_image(Image.fromarray(image), x0, y0, scale, size)


def load_boxes(path: str) -> dict:
    """The boxes JSON ``{image file name: [x0, y0, x1, y1]}`` at ``path``, entries unchecked
    (:func:`check_box` checks each when its image is processed); ``ValueError`` naming the file if it
    is not such an object."""
    try:
        with open(path) as fh:
            boxes = json.load(fh)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(boxes, dict):
        raise ValueError(
            f"{path}: expected an object {{image file name: [x0, y0, x1, y1]}}, got a {type(boxes).__name__}"
        )
    return boxes


def check_box(box, where: str) -> list[float]:
    """``box`` as ``[x0, y0, x1, y1]`` floats; ``ValueError`` starting with ``where`` unless it is four
    finite numbers with ``x1 > x0`` and ``y1 > y0``."""
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise ValueError(f"{where}: expected four numbers [x0, y0, x1, y1], got {box!r}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
        raise ValueError(f"{where}: expected four numbers [x0, y0, x1, y1], got {box!r}")
    values = [float(v) for v in box]
    if not all(np.isfinite(values)):
        raise ValueError(f"{where}: non-finite coordinate in {box!r}")
    if not (values[2] > values[0] and values[3] > values[1]):
        raise ValueError(f"{where}: box {box!r} needs x1 > x0 and y1 > y0")
    return values


def unmatched_boxes(boxes: dict, names) -> list[str]:
    """Keys of ``boxes`` naming none of the image files ``names``, each with a hint when it matches
    one but for case (``'A.PNG' (did you mean 'a.png'?)``)."""
    by_lower = {n.lower(): n for n in names}
    out = []
    for key in boxes:
        if key not in names:
            hint = by_lower.get(str(key).lower())
            out.append(f"{key!r}" + (f" (did you mean {hint!r}?)" if hint else ""))
    return out


def box_flags(box, image_shape, crop: np.ndarray) -> list[str]:
    """Reasons not to trust a pose estimated from ``crop`` (the ``[h, w, 3]`` crop of ``box`` in an
    image of ``image_shape`` ``(H, W, ...)``): ``'box outside image'`` (no overlap), ``'tiny box'``
    (longer side under 8 pixels: an upscaled handful of pixels), ``'empty crop'`` (the crop is one
    flat colour, e.g. all black)."""
    x0, y0, x1, y1 = box
    h, w = image_shape[:2]
    flags = []
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        flags.append("box outside image")
    if max(x1 - x0, y1 - y0) < 8:
        flags.append("tiny box")
    if float(np.ptp(np.asarray(crop, np.float32))) <= 2.0:
        flags.append("empty crop")
    return flags


def crop_flags(result, crops, valid=None) -> list[list[str]]:
    """Per crop of a batched search ``result``, the reasons not to trust its pose that the crop and
    the search give (host side): :func:`nemo_jax.inference.trust_flags` and
    :data:`nemo_jax.data.images.UNIFORM_IMAGE` when the crop's pixels are uniform
    (:func:`nemo_jax.data.images.is_uniform`). ``crops``: ``[B, H, W, 3]``, 0..255; ``valid``:
    optional ``[B, H, W]`` bool, the pixels that come from the image (not the crop's padding).
    The exported estimator computes the same names in-graph
    (:func:`nemo_jax.inference.confidence.flag_bits`)."""
    flags = trust_flags(result)
    for i, crop in enumerate(np.asarray(crops)):
        if bool(images_lib.is_uniform(crop, None if valid is None else np.asarray(valid)[i])):
            flags[i].append(images_lib.UNIFORM_IMAGE)
    return flags


# Coarse poses refined by --mode 6d. Its coarse set is candidates x distances x the rotation grid (15
# times the centred search's 144 with the defaults). On the synthetic validation views (car,
# configs/synthetic_6d.py, tools/six_d_check.py --seed 1, 30 views) 1 start scored 6D 93 % vs
# centred 100 %, 4 starts 100 % vs 100 % (README "6D pose").
SIX_D_STARTS = 4


def six_d_flags(centre, image_shape, distance_factor: float, distance_factors) -> list[str]:
    """Reasons not to trust a 6D pose: ``'centre outside image'`` (the found object centre ``(x, y)``,
    image pixels in the corner convention, lies outside the ``(H, W, ...)`` image) and ``'distance
    at search bound'`` (``distance_factor``, the found distance over the run's, within 1e-3 of the
    refinement's limits :func:`nemo_jax.inference.six_d.refine_distance_range`): both mark a search
    that preferred a large object mostly outside the view, e.g. when the object's scale is outside
    the coarse ``distance_factors``."""
    h, w = image_shape[:2]
    flags = []
    if not (0 <= centre[0] <= w and 0 <= centre[1] <= h):
        flags.append("centre outside image")
    lo, hi = refine_distance_range(distance_factors)
    if distance_factor <= lo * (1 + 1e-3) or distance_factor >= hi * (1 - 1e-3):
        flags.append("distance at search bound")
    return flags


def estimate_poses(
    run_dir: str,
    images_dir: str,
    boxes: dict | None,
    out_dir: str,
    fill: float | None = None,
    distance: float | None = None,
    figures: bool = True,
    category: str | None = None,
    boxes_source: str = "boxes",
    log=None,
    inference_overrides: dict | None = None,
    mode: str = "3d",
    canvas: float = 1.5,
    distance_factors: tuple[float, ...] = (0.7, 0.85, 1.0, 1.2, 1.4),
    six_d_starts: int = SIX_D_STARTS,
) -> list[dict]:
    """Predicts the viewpoint of every image in ``images_dir``; writes ``out_dir/predictions.json``
    (and Figure-1-style overlays). ``boxes``: ``{file name: [x0, y0, x1, y1]}`` in the usual corner
    convention (the image's top-left corner at ``(0, 0)``, the whole image ``[0, 0, w, h]``), from
    ``boxes_source`` (named in messages); a missing entry means the whole image, a key naming no
    image is an error. ``category``, if given, must be the run's (one of a shared run's
    ``config.categories``, which needs it: its mesh is searched). ``fill``: overrides the run's
    crop protocol (the box's longer side spans ``fill`` of the crop's shorter side; needed for runs
    without ``crop_protocol.json``). The search follows the run's ``inference`` settings with
    ``inference_overrides`` applied (:func:`nemo_jax.inference.run_settings`). Returns one record
    per image: angles in degrees and radians, ``distance`` (the search's: the start value unless the
    refinement moves it, e.g. ``parametrization="camera_position"``), ``loss``, ``confidence``
    (an estimate of P(rotation error < pi/6), only when the run has a ``calibration.json``, see
    :mod:`nemo_jax.apps.calibrate`; else ``log`` says how to make one) and ``flags``
    (reasons not to trust the pose, see :func:`box_flags` and :func:`crop_flags`, e.g.
    ``"uniform image"``; empty when none; a flagged image's ``confidence`` is at most
    :data:`nemo_jax.inference.confidence.CONFIDENCE_FLOOR`), or, for an image
    that could not be processed (unreadable, a bad box, non-finite features), only ``image`` and
    ``error``: it is reported through ``log`` and skipped, the others are kept.

    ``mode``: ``"3d"`` (NeMo's protocol: the box fixes the object's centre and scale) or ``"6d"``:
    the crop is ``canvas`` (>= 1) times the run's crop size around the same point (rounded up to
    the backbone's input multiple), and the object's position and distance are searched as well
    (coarse distances: ``distance_factors`` times the run's; the ``six_d_starts`` best coarse poses
    refined); the records then also hold ``centre`` (the image of the CAD origin, image pixels in
    the boxes' corner convention) and ``distance_image`` (the distance for a focal length of 3000 pixels
    of the input image, PASCAL3D+'s convention; ``distance`` is the crop camera's, as in ``"3d"``).

    All or nothing: the output is written into a scratch folder beside ``out_dir`` and moved into
    place at the end, replacing the files of a previous output of this tool (those its manifest
    lists, :mod:`nemo_jax.output`); an ``out_dir`` holding any file this tool did not write is
    refused before the work, naming those files.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    factors = np.asarray(distance_factors, np.float64)
    if mode == "6d" and not (
        factors.ndim == 1 and factors.size and np.all(np.isfinite(factors) & (factors > 0))
    ):
        raise ValueError(f"distance_factors: expected positive numbers, got {list(distance_factors)}")
    if mode == "6d" and int(six_d_starts) < 1:
        raise ValueError(f"six_d_starts: expected >= 1, got {six_d_starts}")
    if mode == "6d" and not (np.isfinite(canvas) and canvas >= 1):
        raise ValueError(
            f"canvas: expected a number >= 1 (the searched crop over the run's crop size), got {canvas}"
        )
    if distance is not None and not (np.isfinite(distance) and distance > 0):
        raise ValueError(f"--distance: expected a positive number (CAD units), got {distance}")
    if fill is not None and not (np.isfinite(fill) and fill > 0):
        raise ValueError(f"--fill: expected a positive number, got {fill}")
    out_dir = os.path.abspath(out_dir)
    output.check_output_folder(out_dir, "--out", TOOL)
    names = sorted(n for n in os.listdir(images_dir) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise FileNotFoundError(f"{images_dir}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    unmatched = unmatched_boxes(boxes or {}, names)
    if unmatched:
        raise ValueError(f"{boxes_source}: boxes for images not in {images_dir}: {', '.join(unmatched)}")
    config, model, variables, mesh = load_run(run_dir)
    settings = run_settings(config, inference_overrides, where=os.path.join(run_dir, "config.json"))
    if settings.clutter_clusters != 1 and mode == "6d":
        raise ValueError(f"{run_dir}: inference.clutter_clusters > 1 is not supported by the 6D search")
    if category_data.is_shared_config(config):  # one backbone, one mesh per category: pick it
        known = category_data.shared_categories(config)
        if category is None:
            raise ValueError(f"{run_dir}: the run knows several categories {list(known)}; name one")
        mesh = unstack(mesh)[category_data.category_index(known, category, run_dir)]
    elif category is not None and config.category != category:
        raise ValueError(
            f"{run_dir}: category {category!r} is not the run's; it knows only [{config.category!r}]"
        )
    size = tuple(int(s) for s in config.data.image_size)
    if fill is not None:
        protocol = crop_protocol.fill_protocol(fill)
    else:
        where = os.path.join(run_dir, crop_protocol.FILENAME)
        try:
            protocol = crop_protocol.read(run_dir)
        except json.JSONDecodeError as err:  # e.g. truncated: name the file, say what to do
            raise ValueError(
                f"{where}: not valid JSON ({err}); restore it from the run's copy, or pass --fill F to "
                "crop by hand"
            ) from None
        except (TypeError, KeyError) as err:
            raise ValueError(f"{where}: not a crop protocol ({type(err).__name__}: {err})") from None
        if protocol is None:
            raise FileNotFoundError(
                f"{os.path.join(run_dir, crop_protocol.FILENAME)}: the run stores no crop protocol "
                "(its training set had no object boxes); pass fill (--fill F: the box's longer side "
                "over the crop's shorter side) to crop by hand"
            )
        if tuple(protocol["image_size"]) != size:
            raise ValueError(
                f"{os.path.join(run_dir, crop_protocol.FILENAME)}: crop size {protocol['image_size']} "
                f"differs from the run's data.image_size {list(size)}"
            )
    distance = float(distance if distance is not None else config.data.distance)
    stride = int(config.model.get("stride", 8))
    focal_px = 3000.0 / stride  # NeMo's focal 1 x viewport 3000 image pixels, at feature resolution
    principal_px = np.array([size[1] / 2, size[0] / 2])  # crop_protocol's principal point
    principal = feature_coordinates(principal_px, stride)
    canvas_size = size
    if mode == "6d":  # the searched crop, centred where the run's crop would be
        canvas_size = six_d_canvas_size(size, canvas)
        principal_px = np.array([canvas_size[1] / 2, canvas_size[0] / 2])
        principal = feature_coordinates(principal_px, stride)
    # The calibration maps the centred (3d) search's outputs; 6d records carry no confidence yet.
    calibration = confidence_lib.load_calibration(run_dir) if mode == "3d" else None
    if calibration is None and mode == "3d":
        log(f"note: {how_to_calibrate(run_dir)}")
    records, search_config = [], None
    scratch = output.scratch_folder(out_dir)
    try:
        for name in names:
            path = os.path.join(images_dir, name)
            try:
                try:  # as its owner sees it: EXIF orientation, 16-bit and float images by their range
                    image = images_lib.read_image(path)  # uint8 [H, W, 3], upright
                except (ValueError, OSError) as err:
                    reason = str(err).removeprefix(f"{path}: ")
                    raise ValueError(f"{path}: not a readable image ({reason})") from err
                if boxes and name in boxes:
                    box = check_box(boxes[name], f"{boxes_source}: box of {name!r}")
                else:
                    box = [0.0, 0.0, float(image.shape[1]), float(image.shape[0])]
                # corner convention -> pixel-centre coordinates (pixel (i, j) centred at (j, i))
                scale, x0, y0 = crop_protocol.crop_for_box([v - 0.5 for v in box], size, protocol)
                x0, y0 = x0 - (canvas_size[1] - size[1]) / 2, y0 - (canvas_size[0] - size[0]) / 2
                crop = crop_image(Image.fromarray(image), x0, y0, scale, canvas_size)
                # the crop's pixels that come from the image (not its zero padding)
                inside = np.full(image.shape[:2], 255, np.uint8)
                valid = crop_image(Image.fromarray(inside), x0, y0, scale, canvas_size) == 255
                observed = model.apply(variables, _preprocess(crop[None]), train=False)
                if search_config is None:
                    search_config = search_config_from_settings(
                        settings, mesh, observed.shape[1:3], focal_px, principal, distance, where=run_dir
                    )
                    if mode == "6d":
                        search_config = six_d_config(
                            search_config,
                            mesh,
                            focal_px,
                            distance,
                            distance_factors,
                            size,
                            stride,
                            six_d_starts,
                        )
                inputs = neural_mesh_inputs(
                    mesh, observed, focal_px, principal, distance, int(settings.clutter_clusters)
                )
                result = (six_d_pose if mode == "6d" else search_pose)(inputs, search_config)
            except ValueError as err:
                log(f"warning: {name}: skipped ({err})")
                records.append({"image": name, "error": str(err)})
                continue
            pose = {k: float(np.asarray(getattr(result, k))[0]) for k in ("azimuth", "elevation", "theta")}
            predicted_distance = float(np.asarray(result.distance)[0])
            flags = box_flags(box, image.shape, crop) + crop_flags(result, crop[None], valid[None])[0]
            record = {
                "image": name,
                "box": [float(v) for v in box],
                **{f"{k}_rad": v for k, v in pose.items()},
                **{f"{k}_deg": float(np.degrees(v)) for k, v in pose.items()},
                "distance": predicted_distance,
                "loss": float(np.asarray(result.loss)[0]),
                "flags": flags,
            }
            if mode == "6d":
                found_px = np.asarray(result.principal)[0] * stride + (stride - 1) / 2  # crop pixels
                record["centre"] = [
                    float((found_px[0] + x0) / scale + 0.5),
                    float((found_px[1] + y0) / scale + 0.5),
                ]
                record["distance_image"] = predicted_distance * scale
                flags += six_d_flags(
                    record["centre"], image.shape, predicted_distance / distance, distance_factors
                )
            if calibration is not None:
                outputs = confidence_lib.batch_outputs(result, pose_grid(search_config), calibration)
                # a flagged crop (e.g. a uniform image) is worth no more than a guess
                conf = confidence_lib.clip_flagged(outputs["confidence"][0], bool(flags))
                record["confidence"] = float(conf)
            if flags:
                log(f"warning: {name}: pose not to be trusted ({', '.join(flags)})")
            records.append(record)
            if figures:
                from nemo_jax import viz

                viz.figure_one(
                    os.path.join(scratch, os.path.splitext(name)[0] + "_pose.png"),
                    crop,
                    np.asarray(mesh.vertices),
                    np.asarray(mesh.faces),
                    (pose["azimuth"], pose["elevation"], pose["theta"], predicted_distance),
                    3000.0,  # focal in crop (image) pixels
                    found_px if mode == "6d" else principal_px,
                    np.asarray(result.occluder)[0],
                    np.asarray(result.object_mask)[0],
                    title=f"{name}: loss {record['loss']:.3f}" + (f" ({', '.join(flags)})" if flags else ""),
                )
        with open(os.path.join(scratch, PREDICTIONS), "w") as fh:
            json.dump(records, fh, indent=1)
        output.commit_output(scratch, out_dir, TOOL)
    except OSError as err:  # a full disk or a read-only folder: name --out, not the scratch folder
        if err.errno not in _WRITE_ERRORS:
            raise
        raise OSError(
            f"--out {out_dir}: cannot write the output there ({os.strerror(err.errno)}); "
            "the previous output, if any, is left as it was"
        ) from err
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return records


#: errno values of a write that failed for want of room or permission (reported naming --out).
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)


PREDICTIONS = "predictions.json"
TOOL = "estimate-pose"


def six_d_canvas_size(crop_size: tuple[int, int], canvas: float) -> tuple[int, int]:
    """The 6D search's crop ``(H, W)``: ``canvas`` times the run's ``crop_size``, rounded up to the
    backbone's input multiple."""
    return tuple(int(np.ceil(canvas * s / INPUT_MULTIPLE)) * INPUT_MULTIPLE for s in crop_size)


def six_d_config(
    search, mesh, focal_px, distance, distance_factors, crop_size, stride, num_starts: int = SIX_D_STARTS
) -> SixDConfig:
    """The 6D search for ``search`` (the pose search's config at the searched crop's feature size):
    candidate peaks smoothed over about a sixth of the run's crop (``crop_size`` ``(H, W)`` image
    pixels, feature ``stride``), suppressed within a third of it; ``num_starts`` best coarse poses
    refined (replacing ``search.num_starts``, which sizes the centred search); the tile budget sized
    for the nearest coarse distance."""
    if int(num_starts) < 1:
        raise ValueError(f"6D starts: expected >= 1, got {num_starts}")
    cells = min(crop_size) / stride
    config = SixDConfig(
        search=dataclasses.replace(search, num_starts=int(num_starts)),
        distance_factors=tuple(distance_factors),
        smooth_px=max(1.0, cells / 6),
        nms_radius_px=max(2.0, cells / 3),
    )
    return size_six_d_tile_budget(mesh.vertices, mesh.faces, focal_px, distance, config)
