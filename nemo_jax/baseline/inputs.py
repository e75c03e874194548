"""The baseline's input protocol: every crop resized to one common input size.

NeMo's crops have a size per category (car 256 x 672, chair 544 x 384, ...), so a network trained on
all categories at once (Res50-General) cannot stack them. The refactored NeMo code (wufeim/NeMo,
``config/models/resnet50general.yaml``) resizes NeMo's crop -- centred on the object at NeMo's
distance-normalised scale -- to 256 x 256 without keeping the aspect ratio; this module does the
same with ``config.data.input_size = (H, W)``. An empty ``input_size`` keeps the data's own size
(all examples must then share it, e.g. the synthetic set's 64 x 64).

Training, validation and evaluation use the one resize below (PIL bilinear on uint8, which low-pass
filters when shrinking), so train and test inputs match pixel for pixel.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def input_size(config) -> tuple[int, int] | None:
    """``config.data.input_size`` as ``(H, W)``, or None (keep the data's size)."""
    size = tuple(int(v) for v in (config.data.get("input_size") or ()))
    if not size:
        return None
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"config.data.input_size: expected (H, W) > 0, got {size}")
    return size


def fit_input(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 ``[h, w, 3]`` -> uint8 ``[H, W, 3]`` (bilinear resize; unchanged if already that size
    or ``size`` is None)."""
    image = np.asarray(image)
    if size is None or image.shape[:2] == tuple(size):
        return image
    if image.dtype != np.uint8:
        raise ValueError(f"fit_input: expected a uint8 image, got {image.dtype}")
    resized = Image.fromarray(image).resize((int(size[1]), int(size[0])), Image.BILINEAR)
    return np.asarray(resized)


def fit_batch(images: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 ``[B, h, w, 3]`` -> uint8 ``[B, H, W, 3]`` with :func:`fit_input`."""
    images = np.asarray(images)
    if size is None or images.shape[1:3] == tuple(size):
        return images
    return np.stack([fit_input(x, size) for x in images])


class Resized:
    """Random-access view of ``source`` whose ``image`` is resized to ``size`` (``[H, W, 3]`` uint8);
    the other fields (angles, ids, ...) pass through unchanged."""

    def __init__(self, source, size: tuple[int, int] | None):
        self.source, self.size = source, size

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict:
        example = dict(self.source[i])
        example["image"] = fit_input(example["image"], self.size)
        return example

    def __getitems__(self, indices) -> list[dict]:
        return [self[int(i)] for i in indices]

    @property
    def max_vertices(self) -> int | None:  # kp2d / visible padding in data.batches
        return getattr(self.source, "max_vertices", None)
