"""A common canvas for crops of different sizes: one backbone trained on several PASCAL3D+ categories
batches crops whose sizes differ per category (NeMo's per-category crop sizes). Each crop is pasted
at the centre of one ``[H, W]`` canvas (static shape: one compilation for every category); the
padding is ImageNet's mean colour (zero after normalisation), the principal point moves with the
crop, and ``box`` (where vertices may count as visible) is limited to the crop's own pixels.
"""

from __future__ import annotations

import numpy as np

#: Padding colour (uint8 RGB): ImageNet's mean, i.e. zero input after :func:`nemo_jax.models.preprocess`.
PAD_COLOUR = (124, 116, 104)


def canvas_size(sizes) -> tuple[int, int]:
    """``(H, W)``: the smallest canvas that holds every ``(h, w)`` in ``sizes``."""
    sizes = [tuple(int(v) for v in s) for s in sizes]
    if not sizes:
        raise ValueError("canvas_size: no sizes given")
    return max(h for h, _ in sizes), max(w for _, w in sizes)


def offset(image_hw, canvas_hw) -> tuple[int, int]:
    """``(dy, dx)``: where an ``image_hw`` crop's top-left pixel lands on a centred canvas."""
    (h, w), (ch, cw) = image_hw, canvas_hw
    if h > ch or w > cw:
        raise ValueError(f"pad_to_canvas: a {h}x{w} image does not fit the {ch}x{cw} canvas")
    return (ch - h) // 2, (cw - w) // 2


def pad_to_canvas(example: dict, canvas_hw) -> dict:
    """One example (``image [h, w, 3]`` uint8, ``px``/``py`` principal point in image pixels, optional
    ``box [4]`` x0, y0, x1, y1 pixels) pasted at the centre of a ``canvas_hw`` canvas; an example of
    that size already is returned unchanged. Other fields are kept as they are."""
    image = np.asarray(example["image"])
    h, w = image.shape[:2]
    canvas_hw = tuple(int(v) for v in canvas_hw)
    if (h, w) == canvas_hw:
        return example
    dy, dx = offset((h, w), canvas_hw)
    canvas = np.empty((*canvas_hw, image.shape[2]), image.dtype)
    canvas[...] = np.asarray(PAD_COLOUR[: image.shape[2]], image.dtype)
    canvas[dy : dy + h, dx : dx + w] = image
    out = dict(example, image=canvas)
    out["px"] = np.float32(example["px"]) + dx
    out["py"] = np.float32(example["py"]) + dy
    box = example.get("box")
    box = np.array([-0.5, -0.5, w - 0.5, h - 0.5], np.float32) if box is None else np.asarray(box, np.float32)
    out["box"] = box + np.array([dx, dy, dx, dy], np.float32)
    return out


def pad_batch_to_canvas(batch: dict, canvas_hw) -> dict:
    """:func:`pad_to_canvas` for a batch (``image [B, h, w, 3]``, ``px``/``py`` ``[B]``)."""
    images = np.asarray(batch["image"])
    if tuple(images.shape[1:3]) == tuple(int(v) for v in canvas_hw):
        return batch
    parts = [
        pad_to_canvas({"image": images[i], "px": batch["px"][i], "py": batch["py"][i]}, canvas_hw)
        for i in range(len(images))
    ]
    out = dict(batch)
    for key in ("image", "px", "py", "box"):
        out[key] = np.stack([p[key] for p in parts])
    return out
