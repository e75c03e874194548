"""NeMo's Figure 1 for one image and accuracy vs occlusion level for several methods (PNG, Agg).

Host-side (numpy + matplotlib); the only device work is one render of the mesh at image resolution.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nemo_jax.geometry import camera_from_viewpoint  # noqa: E402
from nemo_jax.render import RasterSettings, render_exact  # noqa: E402
from nemo_jax.viz.shading import face_normals_camera, overlay, shade  # noqa: E402

# Occluder localisation colours: background, visible object, occluded object.
OCCLUSION_COLORS = np.array([[0.15, 0.15, 0.15], [0.2, 0.65, 0.95], [0.95, 0.3, 0.2]])
PARAMETER_LABELS = {
    "azimuth": "azimuth (deg)",
    "elevation": "elevation (deg)",
    "theta": "in-plane theta (deg)",
    "distance": "distance",
}


def occlusion_image(occluder, object_mask) -> np.ndarray:
    """``[h, w]`` bool maps -> ``[h, w, 3]`` float RGB: background / visible object / occluded."""
    occluder = np.asarray(occluder, bool)
    mask = np.asarray(object_mask, bool)
    label = np.where(mask, np.where(occluder, 2, 1), 0)
    return OCCLUSION_COLORS[label]


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

    Panels: the input; the mesh superimposed in the predicted pose; occluder localisation
    (background / visible object / occluded object, feature resolution, upsampled); and, if
    ``landscape`` (from :func:`nemo_jax.inference.loss_landscape`) is given, the loss along each
    camera parameter with the prediction (solid) and ground truth (dashed) marked.

    Args:
      path: output PNG path (parent directories are created).
      image: ``[H, W, 3]`` uint8.
      vertices, faces: the mesh ``[V, 3]``, ``[F, 3]`` (``-1`` rows ignored).
      pose: predicted (azimuth, elevation, theta RADIANS, distance).
      focal_px, principal: focal length and principal point (x, y) in IMAGE pixels.
      occluder, object_mask: ``[h, w]`` bool maps from the search (feature resolution).
      landscape: ``{name: (values, losses)}``; angles in radians.
      true_pose: optional ground truth (azimuth, elevation, theta, distance), radians.
    Returns:
      ``path`` as a string.
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
    axes = [fig.add_subplot(grid[0, 4 * i : 4 * i + 4]) for i in range(3)]
    width = 12 // max(len(names), 1)
    axes += [fig.add_subplot(grid[1, width * i : width * i + width]) for i in range(len(names))]
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
    for ax in axes[:3]:
        ax.set_xticks([])
        ax.set_yticks([])
    for i, name in enumerate(names):
        ax = axes[3 + i]
        values, losses = (np.asarray(x, np.float64) for x in landscape[name])
        index = ["azimuth", "elevation", "theta", "distance"].index(name)
        to_unit = np.degrees if name != "distance" else (lambda x: x)
        ax.plot(to_unit(values), losses, color="k", lw=1.2)
        ax.axvline(float(to_unit(pose[index])), color="tab:blue", lw=1.5, label="prediction")
        if true_pose is not None:
            truth = float(to_unit(true_pose[index]))
            if name == "azimuth":  # show the ground truth in the sampled window
                lo = float(to_unit(values.min()))
                truth = lo + (truth - lo) % 360.0
            ax.axvline(truth, color="tab:green", ls="--", lw=1.5, label="ground truth")
        ax.set_xlabel(PARAMETER_LABELS.get(name, name))
        ax.set_ylabel("loss" if i == 0 else "")
        if i == 0:
            ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
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


__all__ = ["accuracy_vs_occlusion", "figure_one", "mesh_overlay", "occlusion_image"]
