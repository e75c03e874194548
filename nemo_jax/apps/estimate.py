"""Pose estimation for unlabeled images with a given object box, using a trained NeMo run.

Each image is cropped as the run's training crops were: the run's crop protocol
(``<run>/crop_protocol.json``, written by training: the median box-to-crop size and where the
principal point sits in the box, see :mod:`nemo_jax.data.crop_protocol`) maps the box to a crop of
the run's size with the principal point at ``(W / 2, H / 2)`` (pixel-centre coordinates, as the
builders' crops). The run's backbone and the pose search then give the viewpoint in the crop's
camera (focal 3000 px) at the run's ``data.distance`` (the crop's scale stands in for the true one,
as in NeMo's test protocol).
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from nemo_jax.apps.evaluate import _preprocess
from nemo_jax.data import crop_protocol
from nemo_jax.data.pascal3d import crop as crop_image
from nemo_jax.geometry.camera import feature_coordinates
from nemo_jax.inference import neural_mesh_inputs, run_settings, search_config_from_settings, search_pose
from nemo_jax.train.run import load_run

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def crop_to_box(image: np.ndarray, box, size: tuple[int, int], protocol: dict) -> np.ndarray:
    """``[H, W, 3]`` uint8 crop of ``size = (H, W)`` for ``box = (x0, y0, x1, y1)``, the box's pixel
    edges in the project's pixel-centre coordinates (the whole ``h x w`` image is ``(-0.5, -0.5,
    w - 0.5, h - 0.5)``), made by ``protocol`` (:func:`nemo_jax.data.crop_protocol.crop_for_box`);
    bilinear, black outside the image."""
    scale, x0, y0 = crop_protocol.crop_for_box(box, size, protocol)
    return crop_image(Image.fromarray(image), x0, y0, scale, size)


def estimate_poses(
    run_dir: str,
    images_dir: str,
    boxes: dict | None,
    out_dir: str,
    fill: float | None = None,
    distance: float | None = None,
    figures: bool = True,
    category: str | None = None,
    inference_overrides: dict | None = None,
) -> list[dict]:
    """Predicts the viewpoint of every image in ``images_dir``; writes ``out_dir/predictions.json``
    (and Figure-1-style overlays). ``boxes``: ``{file name: [x0, y0, x1, y1]}`` in the usual corner
    convention (the image's top-left corner at ``(0, 0)``, the whole image ``[0, 0, w, h]``); a
    missing entry means the whole image. ``category``, if given, must be the run's. ``fill``:
    overrides the run's crop protocol (the box's longer side spans ``fill`` of the crop's shorter
    side; needed for runs without ``crop_protocol.json``). The search follows the run's ``inference``
    settings with ``inference_overrides`` applied (:func:`nemo_jax.inference.run_settings`). Returns
    the prediction records (angles in degrees and radians; ``distance`` is the search's: the start
    value unless the refinement moves it, e.g. ``parametrization="camera_position"``)."""
    config, model, variables, mesh = load_run(run_dir)
    settings = run_settings(config, inference_overrides, where=os.path.join(run_dir, "config.json"))
    if category is not None and config.category != category:
        raise ValueError(f"{run_dir}: the run is for category {config.category!r}, not {category!r}")
    size = tuple(int(s) for s in config.data.image_size)
    if fill is not None:
        protocol = crop_protocol.fill_protocol(fill)
    else:
        protocol = crop_protocol.read(run_dir)
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
    names = sorted(n for n in os.listdir(images_dir) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise FileNotFoundError(f"{images_dir}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    focal_px = 3000.0 / stride  # NeMo's focal 1 x viewport 3000 image pixels, at feature resolution
    principal_px = np.array([size[1] / 2, size[0] / 2])  # crop_protocol's principal point
    principal = feature_coordinates(principal_px, stride)
    records, search_config = [], None
    os.makedirs(out_dir, exist_ok=True)
    for name in names:
        path = os.path.join(images_dir, name)
        try:
            image = np.asarray(Image.open(path).convert("RGB"))
        except Exception as err:
            raise ValueError(f"{path}: not a readable image ({err})") from err
        box = (boxes or {}).get(name, [0, 0, image.shape[1], image.shape[0]])
        if len(box) != 4:
            raise ValueError(f"boxes[{name!r}]: expected [x0, y0, x1, y1], got {box}")
        # corner convention -> pixel-centre coordinates (pixel (i, j) centred at (j, i))
        crop = crop_to_box(image, [float(v) - 0.5 for v in box], size, protocol)
        observed = model.apply(variables, _preprocess(crop[None]), train=False)
        if search_config is None:
            search_config = search_config_from_settings(
                settings, mesh, observed.shape[1:3], focal_px, principal, distance, where=run_dir
            )
        result = search_pose(neural_mesh_inputs(mesh, observed, focal_px, principal, distance), search_config)
        pose = {k: float(np.asarray(getattr(result, k))[0]) for k in ("azimuth", "elevation", "theta")}
        predicted_distance = float(np.asarray(result.distance)[0])
        record = {
            "image": name,
            "box": [float(v) for v in box],
            **{f"{k}_rad": v for k, v in pose.items()},
            **{f"{k}_deg": float(np.degrees(v)) for k, v in pose.items()},
            "distance": predicted_distance,
            "loss": float(np.asarray(result.loss)[0]),
        }
        records.append(record)
        if figures:
            from nemo_jax import viz

            viz.figure_one(
                os.path.join(out_dir, os.path.splitext(name)[0] + "_pose.png"),
                crop,
                np.asarray(mesh.vertices),
                np.asarray(mesh.faces),
                (pose["azimuth"], pose["elevation"], pose["theta"], predicted_distance),
                3000.0,  # focal in crop (image) pixels
                principal_px,
                np.asarray(result.occluder)[0],
                np.asarray(result.object_mask)[0],
                title=f"{name}: loss {record['loss']:.3f}",
            )
    with open(os.path.join(out_dir, "predictions.json"), "w") as fh:
        json.dump(records, fh, indent=1)
    return records
