"""A run's crop protocol: how large and where its training objects sit in their crops.

NeMo's crops put each object at distance 5 (PASCAL3D+: rescaled by distance / 5) centred on its
principal point. An unlabeled image has neither a distance nor a principal point, only an object
box, so a crop "like the training crops" is made from statistics of the training set, stored with
the run (``<workdir>/crop_protocol.json``, written by training):

* ``box_diagonal_ratio``: median over training examples of ``hypot(bw, bh) / hypot(W, H)``, the
  object box's diagonal over the crop's (the diagonal varies less with the viewpoint than a side);
* ``principal_offset``: median of ``((px - cx) / bw, (py - cy) / bh)``, where the principal point
  (the object's projected 3D centre) sits relative to the box centre, in box sizes.

Boxes come from the examples' ``box`` field (PASCAL3D+ family: the annotated box within the image),
else from the bounding box of ``object_mask`` (synthetic). Coordinates: 0-based pixel centres,
pixel ``(row i, col j)`` at ``(x, y) = (j, i)``; a box ``(x0, y0, x1, y1)`` gives pixel EDGES, so
the whole crop is ``(-0.5, -0.5, W - 0.5, H - 0.5)``. Crops made here put the principal point at
``(W / 2, H / 2)``, as the builders' crops do (their corner is rounded: within half a pixel).
"""

from __future__ import annotations

import json
import os

import numpy as np

FILENAME = "crop_protocol.json"


def example_box(example: dict) -> np.ndarray | None:
    """``[4]`` ``(x0, y0, x1, y1)`` object box of an example in crop pixels (edges), or None."""
    if "box" in example:
        return np.asarray(example["box"], np.float64)
    mask = example.get("object_mask")
    if mask is not None and np.asarray(mask).any():
        rows, cols = np.nonzero(np.asarray(mask))
        return np.array([cols.min() - 0.5, rows.min() - 0.5, cols.max() + 0.5, rows.max() + 0.5])
    return None


def box_statistics(source, indices=None, max_examples: int = 1000) -> dict | None:
    """The crop protocol of ``source`` (random access, examples with ``image``, ``px``, ``py`` and a
    box, see :func:`example_box`) over ``indices`` (default: all; at most ``max_examples``, evenly
    spaced). None when the examples carry no box."""
    indices = np.arange(len(source)) if indices is None else np.asarray(indices)
    if len(indices) > max_examples:
        indices = indices[np.linspace(0, len(indices) - 1, max_examples).round().astype(int)]
    ratios, offsets, size = [], [], None
    for i in indices:
        ex = source[int(i)]
        box = example_box(ex)
        if box is None:
            return None
        h, w = np.asarray(ex["image"]).shape[:2]
        size = size or (h, w)
        bw, bh = box[2] - box[0], box[3] - box[1]
        if bw <= 0 or bh <= 0:
            continue
        ratios.append(np.hypot(bw, bh) / np.hypot(w, h))
        centre = (box[:2] + box[2:]) / 2
        offsets.append(((float(ex["px"]) - centre[0]) / bw, (float(ex["py"]) - centre[1]) / bh))
    if not ratios:
        return None
    return {
        "image_size": [int(size[0]), int(size[1])],
        "box_diagonal_ratio": float(np.median(ratios)),
        "principal_offset": [float(v) for v in np.median(np.asarray(offsets), axis=0)],
        "examples": len(ratios),
    }


def write(workdir: str, stats: dict) -> str:
    path = os.path.join(workdir, FILENAME)
    with open(path, "w") as fh:
        json.dump(stats, fh, indent=1)
    return path


def read(workdir: str) -> dict | None:
    """The run's stored crop protocol, or None if it has none (``ValueError`` if malformed)."""
    path = os.path.join(workdir, FILENAME)
    if not os.path.isfile(path):
        return None
    with open(path) as fh:
        stats = json.load(fh)
    for key in ("image_size", "box_diagonal_ratio", "principal_offset"):
        if key not in stats:
            raise ValueError(f"{path}: field {key!r} missing")
    if not stats["box_diagonal_ratio"] > 0:
        raise ValueError(f"{path}: field 'box_diagonal_ratio' must be > 0")
    return stats


def crop_for_box(box, size: tuple[int, int], stats: dict) -> tuple[float, float, float]:
    """``(scale, x0, y0)`` of the crop of ``size = (H, W)`` for an object box ``(x0, y0, x1, y1)``
    (pixel edges of the full image), with the principal point at ``(W / 2, H / 2)``.

    A stored protocol (:func:`box_statistics`): the box diagonal spans the training median, the
    principal point sits at the training median offset from the box centre. ``{"fill": f}``
    (:func:`fill_protocol`): the box's longer side spans ``f`` of the crop's shorter side, centred.
    Pass the result to ``pascal3d.crop``: output pixel ``(i, j)`` samples input
    ``((j + x0) / scale, (i + y0) / scale)``.
    """
    bx0, by0, bx1, by1 = (float(v) for v in box)
    if not (bx1 > bx0 and by1 > by0):
        raise ValueError(f"box {list(box)}: needs x1 > x0 and y1 > y0")
    h, w = size
    bw, bh = bx1 - bx0, by1 - by0
    if "fill" in stats:
        scale, ox, oy = float(stats["fill"]) * min(h, w) / max(bw, bh), 0.0, 0.0
    else:
        scale = float(stats["box_diagonal_ratio"]) * np.hypot(w, h) / np.hypot(bw, bh)
        ox, oy = (float(v) for v in stats["principal_offset"])
    # The box centre in pixel-centre coordinates is the mean of its edges.
    cx, cy = (bx0 + bx1) / 2 + ox * bw, (by0 + by1) / 2 + oy * bh
    return scale, scale * cx - w / 2, scale * cy - h / 2


def fill_protocol(fill: float) -> dict:
    """The protocol of runs without stored statistics: the box's longer side spans ``fill`` of the
    crop's shorter side, centred on the box (the synthetic set's framing is ``fill = 0.6``)."""
    if not 0 < float(fill) <= 4:
        raise ValueError(f"fill must be in (0, 4], got {fill}")
    return {"fill": float(fill)}
