"""NeMo's Figure 1 for one image and accuracy vs occlusion level for several methods (PNG, Agg).

Host-side (numpy + matplotlib); the only device work is one render of the mesh at image resolution.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nemo_jax.geometry import camera_from_viewpoint  # noqa: E402
from nemo_jax.render import RasterSettings, render_exact  # noqa: E402
from nemo_jax.viz.shading import face_normals_camera, overlay, shade  # noqa: E402

# Occluder localisation colours as NeMo's Figure 1 draws them: background yellow, visible object
# green, occluded object red (RGB in [0, 1]; row = class of ``occlusion_labels``).
OCCLUSION_CLASSES = ("background", "visible object", "occluded object")
OCCLUSION_COLORS = np.array([[0.98, 0.85, 0.1], [0.2, 0.7, 0.25], [0.9, 0.15, 0.15]])
PARAMETER_LABELS = {
    "azimuth": "azimuth (deg)",
    "elevation": "elevation (deg)",
    "theta": "in-plane theta (deg)",
    "distance": "distance",
}


def occlusion_labels(occluder, object_mask) -> np.ndarray:
    """``[h, w]`` bool maps -> ``[h, w]`` int: 0 background (outside the rendered object), 1 visible
    object, 2 occluded object (inside the object, clutter wins)."""
    occluder = np.asarray(occluder, bool)
    mask = np.asarray(object_mask, bool)
    if occluder.shape != mask.shape:
        raise ValueError(f"occlusion_labels: occluder {occluder.shape} and object_mask {mask.shape} differ")
    return np.where(mask, np.where(occluder, 2, 1), 0)


def occlusion_image(occluder, object_mask) -> np.ndarray:
    """``[h, w]`` bool maps -> ``[h, w, 3]`` float RGB: background yellow, visible object green,
    occluded object red (``OCCLUSION_COLORS``)."""
    return OCCLUSION_COLORS[occlusion_labels(occluder, object_mask)]


def _wrap_into(value: float, centre: float, period: float) -> float:
    """``value`` shifted by whole periods into ``[centre - period / 2, centre + period / 2)``."""
    return centre + (value - centre + period / 2) % period - period / 2


def mesh_overlay(image, vertices, faces, pose, focal_px, principal, tile: int = 16) -> np.ndarray:
    """The mesh shaded and blended over ``image`` ``[H, W, 3]`` uint8 at ``pose`` = (azimuth,
    elevation, theta RADIANS, distance), with ``focal_px`` the focal length in image pixels
    (PASCAL3D+: ``focal * viewport``) and ``principal`` (x, y) in image pixels. Returns uint8
    ``[H, W, 3]``."""
    image = np.asarray(image)
    h, w = image.shape[:2]
    a, e, t, d = (float(x) for x in pose)
    camera = camera_from_viewpoint(a, e, t, d, float(principal[0]), float(principal[1]), float(focal_px), 1.0)
    settings = RasterSettings(h, w, tile_height=tile, tile_width=tile)
    faces = np.asarray(faces)
    valid = np.all((faces >= 0) & (faces < len(vertices)), axis=1)
    faces = faces[valid]
    out, _ = render_exact(np.asarray(vertices, np.float32), faces, camera, settings)
    face_index = np.asarray(out.face_index)
    normals = face_normals_camera(vertices, faces, np.asarray(camera.rotation))
    return overlay(image, shade(face_index, normals), face_index >= 0)


def draw_figure_one(
    image,
    vertices,
    faces,
    pose,
    focal_px,
    principal,
    occluder,
    object_mask,
    landscape: Mapping | None = None,
    true_pose=None,
    title: str = "",
):
    """NeMo's Figure 1 for one image as a matplotlib ``Figure`` (arguments as :func:`figure_one`).

    Axes labels (``ax.get_label()``): ``"input"``, ``"prediction"``, ``"occluder"`` and one
    ``"landscape:NAME"`` per landscape parameter.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"figure_one: image must be [H, W, 3], got shape {image.shape}")
    names = list(landscape) if landscape else []
    # Top row: the three image panels; bottom row (if any): one loss curve per camera parameter.
    aspect = image.shape[0] / image.shape[1]
    rows = 2 if names else 1
    fig = plt.figure(figsize=(12.0, 4.0 * aspect + 0.8 + (3.0 if names else 0.0)))
    grid = fig.add_gridspec(rows, 12, height_ratios=[4.0 * aspect + 0.8, 3.0][:rows])
    axes = [
        fig.add_subplot(grid[0, 4 * i : 4 * i + 4], label=n)
        for i, n in enumerate(("input", "prediction", "occluder"))
    ]
    width = 12 // max(len(names), 1)
    axes += [
        fig.add_subplot(grid[1, width * i : width * i + width], label=f"landscape:{name}")
        for i, name in enumerate(names)
    ]
    axes[0].imshow(image)
    axes[0].set_title("input")
    axes[1].imshow(mesh_overlay(image, vertices, faces, pose, focal_px, principal))
    axes[1].set_title("prediction")
    axes[2].imshow(
        occlusion_image(occluder, object_mask),
        extent=(0, image.shape[1], image.shape[0], 0),
        interpolation="nearest",
    )
    axes[2].set_title("occluder localisation")
    axes[2].legend(
        handles=[
            matplotlib.patches.Patch(color=c, label=n)
            for c, n in zip(OCCLUSION_COLORS, OCCLUSION_CLASSES, strict=True)
        ],
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),  # below the map, covering none of its cells
        ncol=3,
        frameon=False,
    )
    for ax in axes[:3]:
        ax.set_xticks([])
        ax.set_yticks([])
    for i, name in enumerate(names):
        ax = axes[3 + i]
        values, losses = (np.asarray(x, np.float64) for x in landscape[name])
        index = ["azimuth", "elevation", "theta", "distance"].index(name)
        to_unit = np.degrees if name != "distance" else (lambda x: x)
        values = to_unit(values)
        # The paper's landscapes put the ground truth at the centre of each x-axis; without a ground
        # truth the centre of the sampled window is used.
        centre = 0.5 * (float(values.min()) + float(values.max()))
        if true_pose is not None:
            truth = float(to_unit(true_pose[index]))
            centre = _wrap_into(truth, centre, 360.0) if name in ("azimuth", "theta") else truth
        predicted = float(to_unit(pose[index]))
        if name in ("azimuth", "theta"):
            predicted = _wrap_into(predicted, centre, 360.0)
        # matplotlib's usual 5 % margin beyond the farthest sample or the prediction
        half = 1.05 * max(float(np.abs(values - centre).max()), abs(predicted - centre), 1e-6)
        ax.plot(values, losses, color="k", lw=1.2)
        ax.axvline(predicted, color="tab:blue", lw=1.5, label="prediction")
        if true_pose is not None:
            ax.axvline(centre, color="tab:green", ls="--", lw=1.5, label="ground truth")
        ax.set_xlim(centre - half, centre + half)
        ax.set_xlabel(PARAMETER_LABELS.get(name, name))
        ax.set_ylabel("loss" if i == 0 else "")
        if i == 0:
            ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def figure_one(
    path,
    image,
    vertices,
    faces,
    pose,
    focal_px,
    principal,
    occluder,
    object_mask,
    landscape: Mapping | None = None,
    true_pose=None,
    title: str = "",
) -> str:
    """NeMo's Figure 1 for one image, written as a PNG.

    Panels, as the paper draws them: the input; the mesh superimposed in the predicted pose;
    occluder localisation (background yellow, visible object green, occluded object red, at feature
    resolution, upsampled; with a legend); and, if ``landscape`` (from
    :func:`nemo_jax.inference.loss_landscape`, computed around ``true_pose``) is given, the loss along
    each camera parameter with the ground truth (dashed) at the centre of each x-axis and the
    prediction (solid) marked.

    Args:
      path: output PNG path (parent directories are created).
      image: ``[H, W, 3]`` uint8.
      vertices, faces: the mesh ``[V, 3]``, ``[F, 3]`` (``-1`` rows ignored).
      pose: predicted (azimuth, elevation, theta RADIANS, distance).
      focal_px, principal: focal length and principal point (x, y) in IMAGE pixels.
      occluder, object_mask: ``[h, w]`` bool maps from the search (feature resolution).
      landscape: ``{name: (values, losses)}``; angles in radians.
      true_pose: optional ground truth (azimuth, elevation, theta, distance), radians; the centre
        of each landscape x-axis (angles shifted by whole turns into the sampled window).
    Returns:
      ``path`` as a string.
    """
    fig = draw_figure_one(
        image, vertices, faces, pose, focal_px, principal, occluder, object_mask, landscape, true_pose, title
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def accuracy_vs_occlusion(
    path, methods: Mapping[str, Mapping], metric: str = "acc_pi6", category: str = "mean", title: str = ""
) -> str:
    """Accuracy (percent) vs occlusion level for several methods, as a PNG.

    Args:
      methods: ``{method name: results JSON of nemo_jax.eval.evaluate_records (or its "results")}``.
      metric: ``"acc_pi6"``, ``"acc_pi18"`` or ``"med_err_deg"``.
      category: a category name or ``"mean"``.
    """
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for name, res in methods.items():
        res = res.get("results", res)
        if category not in res:
            raise ValueError(f"accuracy_vs_occlusion: method {name!r} has no category {category!r}")
        per_level = res[category]
        levels = sorted(per_level, key=lambda s: int(s[1:]))
        values = [per_level[lv][metric] for lv in levels]
        if metric.startswith("acc"):
            values = [100.0 * v for v in values]
        ax.plot([int(lv[1:]) for lv in levels], values, marker="o", label=name)
    ax.set_xlabel("occlusion level")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    label = {"acc_pi6": "Acc@pi/6 (%)", "acc_pi18": "Acc@pi/18 (%)", "med_err_deg": "median error (deg)"}
    ax.set_ylabel(label.get(metric, metric))
    ax.set_title(title or category)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def occluder_vs_occlusion(
    path, nemo: Mapping, baseline: Mapping | None = None, category: str = "mean", title: str = ""
) -> str:
    """NeMo's occluder localisation and pose accuracy against occlusion level, as a PNG.

    Left (axes label ``"occluder"``): the occluder map's AUROC at the predicted pose (solid) and at
    the true pose (dashed), levels without one (no occluded cells, no occluder mask) left out.
    Right (``"accuracy"``): Acc@pi/6 (percent) of NeMo and, if given, of the baseline.

    Args:
      nemo: NeMo's results JSON (:func:`nemo_jax.eval.evaluate_records`, or its ``"results"``),
        with ``occluder_auroc`` / ``occluder_auroc_true_pose`` in its level entries.
      baseline: the baseline's results JSON (optional).
      category: a category name or ``"mean"``.
    """
    nemo = nemo.get("results", nemo)
    if category not in nemo:
        raise ValueError(f"occluder_vs_occlusion: NeMo's results have no category {category!r}")
    per_level = nemo[category]
    if not any("occluder_auroc" in r for r in per_level.values()):
        raise ValueError(
            f"occluder_vs_occlusion: NeMo's results for {category!r} have no 'occluder_auroc' "
            "(evaluated on data without occluder masks)"
        )
    levels = sorted(per_level, key=lambda s: int(s[1:]))
    x = [int(lv[1:]) for lv in levels]
    fig = plt.figure(figsize=(8.0, 3.2))
    occ = fig.add_subplot(1, 2, 1, label="occluder")
    acc = fig.add_subplot(1, 2, 2, label="accuracy")
    for key, style, name in (
        ("occluder_auroc", "-", "at predicted pose"),
        ("occluder_auroc_true_pose", "--", "at true pose"),
    ):
        points = [(xi, per_level[lv].get(key)) for xi, lv in zip(x, levels, strict=True)]
        points = [(xi, v) for xi, v in points if v is not None]
        if points:
            occ.plot(*zip(*points, strict=True), style, marker="o", color="tab:red", label=name)
    occ.set_ylim(0.0, 1.02)
    occ.axhline(0.5, color="gray", lw=0.8, ls=":", label="chance")
    occ.set_ylabel("occluder AUROC")
    occ.set_title("occluder localisation (NeMo)")
    acc.plot(x, [100.0 * per_level[lv]["acc_pi6"] for lv in levels], marker="o", label="NeMo")
    if baseline is not None:
        base = baseline.get("results", baseline)
        if category not in base:
            raise ValueError(f"occluder_vs_occlusion: the baseline's results have no category {category!r}")
        b_levels = sorted(base[category], key=lambda s: int(s[1:]))
        acc.plot(
            [int(lv[1:]) for lv in b_levels],
            [100.0 * base[category][lv]["acc_pi6"] for lv in b_levels],
            marker="s",
            label="baseline",
        )
    acc.set_ylim(0.0, 102.0)
    acc.set_ylabel("Acc@pi/6 (%)")
    acc.set_title("pose accuracy")
    for ax in (occ, acc):
        ax.set_xlabel("occlusion level")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(title or category)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def reliability_diagram(path, confidence, correct, bins: int = 10, title: str = "") -> str:
    """Reliability diagram as a PNG: per equal-width confidence bin, the accuracy of its images as a
    bar spanning the bin (blue) with its image count at the foot, the bin's mean confidence (orange
    dot), the diagonal of perfect calibration (dashed), and the ECE and image count in the title.

    Args:
      confidence: ``[N]`` in ``[0, 1]``.
      correct: ``[N]`` bool, e.g. rotation error < pi/6.
      bins: equal-width bins of ``[0, 1]`` (as :func:`nemo_jax.eval.expected_calibration_error`).
    """
    from nemo_jax.eval.metrics import expected_calibration_error, reliability_bins  # noqa: PLC0415

    table = reliability_bins(confidence, correct, bins)
    fig, ax = plt.subplots(figsize=(4.0, 4.0))
    filled = [b for b in table if b["n"]]
    ax.bar(
        [b["lo"] for b in filled],
        [b["accuracy"] for b in filled],
        width=1.0 / bins,
        align="edge",
        color="tab:blue",
        edgecolor="white",
        label="accuracy",
    )
    ax.plot(
        [b["confidence"] for b in filled],
        [b["confidence"] for b in filled],
        "o",
        color="tab:orange",
        markersize=4,
        label="mean confidence",
    )
    ax.plot([0, 1], [0, 1], "--", color="gray", label="calibrated")
    for b in filled:  # the image count at each bin's foot (white on its bar, black where it has none)
        colour = "white" if b["accuracy"] >= 0.08 else "black"
        ax.text(b["lo"] + 0.5 / bins, 0.02, str(b["n"]), ha="center", va="bottom", fontsize=7, color=colour)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy (error < pi/6)")
    ece = expected_calibration_error(confidence, correct, bins)
    ax.set_title(title or f"ECE {ece:.3f}, {len(np.ravel(confidence))} images, {bins} bins")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def selective_accuracy_curve(path, confidence, correct, title: str = "") -> str:
    """Accuracy (percent) of the most confident images against the fraction of images kept, as a
    PNG (:func:`nemo_jax.eval.selective_accuracy`), with the accuracy of all images (dashed grey)
    and the best any confidence could do, every wrong image ranked last (dotted green).

    Args:
      confidence: ``[N]`` in ``[0, 1]``.
      correct: ``[N]`` bool, e.g. rotation error < pi/6.
    """
    from nemo_jax.eval.metrics import selective_accuracy  # noqa: PLC0415

    kept, accuracy = selective_accuracy(confidence, correct)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(100.0 * kept, 100.0 * accuracy, color="tab:blue", label="most confident kept")
    ax.axhline(100.0 * accuracy[-1], linestyle="--", color="gray", label="all images")
    _, best = selective_accuracy(np.asarray(correct, np.float64), correct)
    ax.plot(100.0 * kept, 100.0 * best, ":", color="tab:green", label="wrong images last")
    ax.set_xlim(0, 100)
    ax.set_ylim(min(0.0, 100.0 * float(np.min(accuracy))), 101)
    ax.set_xlabel("images kept (%), most confident first")
    ax.set_ylabel("Acc@pi/6 (%)")
    ax.set_title(title or "selective accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


__all__ = [
    "OCCLUSION_CLASSES",
    "OCCLUSION_COLORS",
    "accuracy_vs_occlusion",
    "draw_figure_one",
    "figure_one",
    "mesh_overlay",
    "occlusion_image",
    "occlusion_labels",
    "occluder_vs_occlusion",
    "reliability_diagram",
    "selective_accuracy_curve",
]
