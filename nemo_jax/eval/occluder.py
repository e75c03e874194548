"""NeMo's occluder localisation, scored against the true occluder mask.

NeMo (Figure 1 of the paper) marks a cell of the object as occluded where the clutter model explains
its feature better than the rendered object does. Here each cell of the feature map gets the score

    occlusion score = <clutter, f_p> - <rendered object feature, f_p>

at a pose (the search's prediction, or the ground truth so that map quality and pose errors can be
told apart). Inside the TRUE object region, the truth is the dataset's occluder mask brought to the
feature map's resolution; two measures per occlusion level, pooled over the level's images:

* AUROC of the score (occluded cells against visible object cells), as CompositionalNets
  (Kortylewski et al., CVPR 2020) report occluder localisation; threshold-free.
* IoU of NeMo's predicted occluded region (cells of the rendered object whose score is > 0, i.e.
  where clutter wins) with the true occluded region (occluded cells of the true object region).

Resolution: a crop pixel ``(i, j)`` belongs to feature cell ``(i // s, j // s)`` for stride ``s``
(the project's convention, :func:`nemo_jax.geometry.feature_coordinates`); a cell counts as object
(occluded) where at least half of its pixels are object (occluder) pixels.

Pooling: each image contributes a histogram of its scores for occluded and for visible object cells
(:data:`BINS` bins over ``[-2, 2]``, the score's range) and the counts of the IoU; the level's AUROC is
computed from the summed histograms (scores within one bin count as ties, half a pair each), so the
records stay small and the pooled AUROC is exact up to the bin width (0.01).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax.geometry import camera_from_viewpoint
from nemo_jax.inference.objective import clutter_similarity, similarity_table
from nemo_jax.render import RasterSettings, render

#: Histogram bins of the occlusion score over ``[-2, 2]``.
BINS = 400
EDGES = np.linspace(-2.0, 2.0, BINS + 1)


def cell_fraction(mask: np.ndarray, stride: int, shape: tuple[int, int]) -> np.ndarray:
    """``[h, w]`` fraction of each feature cell's pixels set in a crop-pixel ``mask [H, W]``
    (cell ``(r, c)`` covers pixels ``[s r, s r + s - 1] x [s c, s c + s - 1]``; pixels beyond
    ``shape * stride`` are dropped, missing ones count as unset)."""
    h, w = shape
    m = np.zeros((h * stride, w * stride), np.float64)
    src = np.asarray(mask, np.float64) > 0
    hh, ww = min(src.shape[0], h * stride), min(src.shape[1], w * stride)
    m[:hh, :ww] = src[:hh, :ww]
    return m.reshape(h, stride, w, stride).mean(axis=(1, 3))


def _scores(observed, vertex_features, clutter, vertices, faces, focal_px, principal, pose, settings):
    """:func:`occlusion_scores` and the render's overflow ``[]`` int32 (tiles dropped)."""
    table = similarity_table(vertex_features, observed)
    camera = camera_from_viewpoint(
        pose[0], pose[1], pose[2], pose[3], principal[0], principal[1], focal_px, 1.0
    )
    out = render(vertices, faces, camera, settings, pixel_table=table)
    return clutter_similarity(observed, clutter) - out.pixel_values, out.coverage > 0.5, out.overflow


def occlusion_scores(
    observed, vertex_features, clutter, vertices, faces, focal_px, principal, pose, settings: RasterSettings
):
    """``(score [h, w], object [h, w] bool)`` at ``pose`` for ONE image: the occlusion score
    (clutter similarity minus the rendered object's) and the rendered object mask (coverage > 0.5).

    Args:
      observed: ``[h, w, C]`` unit features; vertex_features ``[V, C]``; clutter ``[C]``;
        vertices ``[V, 3]``; faces ``[F, 3]`` int32; focal_px ``[]`` and principal ``[2]`` in
        FEATURE-map pixels (as :class:`nemo_jax.inference.SearchInputs`).
      pose: ``[4]`` azimuth, elevation, theta (RADIANS), distance (CAD units).
      settings: the search's raster settings (``height, width`` = ``h, w``).
    """
    score, mask, _ = _scores(
        observed, vertex_features, clutter, vertices, faces, focal_px, principal, pose, settings
    )
    return score, mask


#: :func:`occlusion_scores` over a batch (mesh shared; per image the rest).
batch_occlusion_scores = jax.jit(
    jax.vmap(occlusion_scores, in_axes=(0, None, 0, None, None, 0, 0, 0, None)), static_argnums=8
)


@functools.partial(jax.jit, static_argnames="settings")
def pose_scores(
    observed, vertex_features, clutter, vertices, faces, focal_px, principal, poses, mesh_index,
    settings: RasterSettings,
):  # fmt: skip
    """:func:`occlusion_scores` of a batch at ``P`` poses per image (the evaluation scores the
    predicted and the true pose, ``P = 2``), each pose with its own mesh of a stack: one render per
    pose, vmapped over images and poses, jitted.

    Args:
      observed: ``[B, h, w, C]`` unit features.
      vertex_features, clutter, vertices, faces: a stack of ``S`` meshes, ``[S, V, C]``, ``[S, C]``,
        ``[S, V, 3]``, ``[S, F, 3]`` int32 (``S = 1`` for one mesh; ``-1`` face rows are padding).
      focal_px, principal: ``[B]``, ``[B, 2]`` in FEATURE-map pixels.
      poses: ``[B, P, 4]`` azimuth, elevation, theta (RADIANS), distance (CAD units).
      mesh_index: ``[B, P]`` int, which mesh of the stack each pose renders.
      settings: static raster settings (``height, width`` = ``h, w``).
    Returns:
      ``(score [B, P, h, w], object [B, P, h, w] bool, overflow [B, P] int32)``.
    """

    def one(obs, focal, centre, pose, s):
        return _scores(
            obs, vertex_features[s], clutter[s], vertices[s], faces[s], focal, centre, pose, settings
        )

    per_pose = jax.vmap(one, in_axes=(None, None, None, 0, 0))
    return jax.vmap(per_pose)(observed, focal_px, principal, poses, mesh_index)


#: Where an evaluation takes the true object region from (:func:`batch_counts`).
REGIONS = ("object_mask", "silhouette")


def batch_counts(batch, score, predicted_object, stride: int, offset=(0, 0)):
    """Per image of an evaluated batch, its contribution to the occluder measures at the predicted
    and at the true pose (host-side); ``None`` when the batch has no ``occluder_mask``.

    The true object region is the example's ``object_mask`` where the dataset has one (the synthetic
    set), else the neural mesh's silhouette rendered at the true pose (``object [:, 1]``;
    OccludedPASCAL3D+ ships the occluder mask only).

    Args:
      batch: ``occluder_mask [B, H, W]`` and optionally ``object_mask [B, H, W]`` (crop pixels).
      score, predicted_object: ``[B, 2, h, w]`` from :func:`pose_scores` at (predicted, true) pose.
      stride: crop pixels per feature cell.
      offset: ``(dy, dx)`` crop pixels where the masks' top-left pixel lies on the image the
        features came from (a crop pasted onto a larger canvas, :mod:`nemo_jax.data.canvas`).
    Returns:
      ``[B]`` dicts ``{"region": one of REGIONS, "predicted_pose": counts, "true_pose": counts}``
      (:func:`image_counts`), or ``None``.
    """
    if "occluder_mask" not in batch:
        return None
    score, obj = np.asarray(score), np.asarray(predicted_object)
    h, w = score.shape[-2:]
    has_object = "object_mask" in batch
    out = []
    for i in range(score.shape[0]):
        occ = cell_fraction(
            _placed(batch["occluder_mask"][i], offset, h * stride, w * stride), stride, (h, w)
        )
        if has_object:
            mask = _placed(batch["object_mask"][i], offset, h * stride, w * stride)
            region = cell_fraction(mask, stride, (h, w))
        else:
            region = obj[i, 1].astype(np.float64)
        out.append(
            {
                "region": REGIONS[0] if has_object else REGIONS[1],
                "predicted_pose": image_counts(score[i, 0], obj[i, 0], region, occ),
                "true_pose": image_counts(score[i, 1], obj[i, 1], region, occ),
            }
        )
    return out


def _placed(mask, offset, height: int, width: int) -> np.ndarray:
    """``mask [H, W]`` with its top-left pixel at ``offset (dy, dx)`` of a zero ``[height, width]``
    map (cropped to it)."""
    mask = np.asarray(mask)
    dy, dx = (int(v) for v in offset)
    if (dy, dx) == (0, 0):
        return mask
    out = np.zeros((height, width), mask.dtype)
    hh, ww = max(0, min(mask.shape[0], height - dy)), max(0, min(mask.shape[1], width - dx))
    out[dy : dy + hh, dx : dx + ww] = mask[:hh, :ww]
    return out


def image_counts(score, predicted_object, true_object_fraction, occluder_fraction) -> dict:
    """One image's contribution to a level's occluder measures (host-side).

    Args:
      score: ``[h, w]`` occlusion score at the pose scored.
      predicted_object: ``[h, w]`` bool, the object rendered at that pose.
      true_object_fraction, occluder_fraction: ``[h, w]`` :func:`cell_fraction` of the true object
        mask and of the occluder mask.
    Returns:
      ``{"occluded": [BINS] counts, "visible": [BINS] counts, "intersection", "union"}`` (lists of
      ints): score histograms of the true object region's occluded and visible cells, and the IoU's
      counts of NeMo's predicted occluded region (``predicted_object & score > 0``) against the true
      occluded region.
    """
    score = np.asarray(score, np.float64)
    region = np.asarray(true_object_fraction) >= 0.5
    occluded = region & (np.asarray(occluder_fraction) >= 0.5)
    visible = region & ~occluded
    predicted = np.asarray(predicted_object, bool) & (score > 0)
    hist = lambda cells: np.histogram(np.clip(score[cells], -2.0, 2.0), EDGES)[0].astype(int).tolist()  # noqa: E731
    return {
        "occluded": hist(occluded),
        "visible": hist(visible),
        "intersection": int(np.sum(predicted & occluded)),
        "union": int(np.sum(predicted | occluded)),
    }


def auroc_from_histograms(positive, negative) -> float | None:
    """AUROC of positives against negatives binned on the same edges: the probability that a random
    positive scores higher than a random negative, ties (same bin) counting half. ``None`` when
    either class is empty."""
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return None
    below = np.cumsum(neg) - neg  # negatives in lower bins
    return float((np.sum(pos * below) + 0.5 * np.sum(pos * neg)) / (n_pos * n_neg))


def summarize(counts) -> dict:
    """Pooled measures of a level from its images' :func:`image_counts`: ``{"auroc", "iou",
    "occluded_cells", "visible_cells", "n"}``; ``auroc`` is ``None`` without both kinds of cell,
    ``iou`` is ``None`` when neither region has a cell."""
    counts = list(counts)
    occluded = np.sum([c["occluded"] for c in counts], axis=0) if counts else np.zeros(BINS)
    visible = np.sum([c["visible"] for c in counts], axis=0) if counts else np.zeros(BINS)
    union = sum(c["union"] for c in counts)
    return {
        "auroc": auroc_from_histograms(occluded, visible),
        "iou": (sum(c["intersection"] for c in counts) / union) if union else None,
        "occluded_cells": int(np.sum(occluded)),
        "visible_cells": int(np.sum(visible)),
        "n": len(counts),
    }


def image_iou(counts: dict) -> float | None:
    """One image's IoU of the predicted and the true occluded region (``None`` if both are empty)."""
    return counts["intersection"] / counts["union"] if counts["union"] else None


def pose_array(azimuth, elevation, theta, distance) -> jnp.ndarray:
    """``[B, 4]`` poses from per-image ``[B]`` fields."""
    return jnp.stack([jnp.asarray(x, jnp.float32) for x in (azimuth, elevation, theta, distance)], -1)


#: The two poses an evaluation scores, as keys of a record's ``occluder`` entry.
POSES = ("predicted_pose", "true_pose")


def level_entry(occluders) -> dict:
    """The per-level summary fields of a group of images' record ``occluder`` entries (as
    :func:`batch_counts` gives them): ``occluder_auroc``, ``occluder_iou`` at the predicted pose and
    ``occluder_auroc_true_pose``, ``occluder_iou_true_pose`` (pooled, :func:`summarize`; ``None``
    where undefined, e.g. the AUROC of an unoccluded level, or from :func:`compact` entries,
    which keep no histograms)."""
    occluders = list(occluders)
    out = {}
    for pose, suffix in zip(POSES, ("", "_true_pose"), strict=True):
        counts = [o[pose] for o in occluders]
        union = sum(c["union"] for c in counts)
        # stored predictions keep no histograms (:func:`compact`): no AUROC from them
        full = all("occluded" in c for c in counts)
        out[f"occluder_auroc{suffix}"] = summarize(counts)["auroc"] if full else None
        out[f"occluder_iou{suffix}"] = sum(c["intersection"] for c in counts) / union if union else None
    return out


def pooled_histograms(occluders) -> dict:
    """What the results JSON keeps of a level's images: per pose the summed histograms and IoU counts
    with the pooled measures (``{pose: {"occluded", "visible", "intersection", "union", "auroc",
    "iou", "occluded_cells", "visible_cells", "n"}}``), and ``region``: the true object region's
    sources (:data:`REGIONS`) among them."""
    occluders = list(occluders)
    out = {"region": sorted({o["region"] for o in occluders})}
    for pose in POSES:
        counts = [o[pose] for o in occluders]
        out[pose] = {
            "occluded": np.sum([c["occluded"] for c in counts], axis=0).astype(int).tolist(),
            "visible": np.sum([c["visible"] for c in counts], axis=0).astype(int).tolist(),
            "intersection": sum(c["intersection"] for c in counts),
            "union": sum(c["union"] for c in counts),
            **summarize(counts),
        }
    return out


def compact(occluder: dict) -> dict:
    """A record's ``occluder`` entry without its histograms (what a stored prediction keeps): per
    pose ``{"intersection", "union", "iou", "occluded_cells", "visible_cells"}``, and ``region``.
    An entry already compact is returned as it is."""
    out = {"region": occluder["region"]}
    for pose in POSES:
        c = occluder[pose]
        out[pose] = {
            "intersection": int(c["intersection"]),
            "union": int(c["union"]),
            "iou": image_iou(c),
            "occluded_cells": int(np.sum(c["occluded"])) if "occluded" in c else c["occluded_cells"],
            "visible_cells": int(np.sum(c["visible"])) if "visible" in c else c["visible_cells"],
        }
    return out
