"""The example schema shared by every dataset (tfds FeaturesDict) and PNG encoding."""

from __future__ import annotations

import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image


def example_features(
    categories,
    image_shape=(None, None, 3),
    object_mask: bool = False,
    occluder_mask: bool = False,
    box: bool = False,
) -> tfds.features.FeaturesDict:
    """The FeaturesDict of an example (see ``nemo_jax.data`` for the field meanings).

    Args:
      categories: category names (the ``category`` ClassLabel).
      image_shape: ``(H, W, 3)``; ``None`` for sizes that vary (PASCAL3D+ crop sizes per category).
      object_mask, occluder_mask: whether the dataset carries these ``[H, W]`` uint8 masks.
      box: whether the dataset carries ``box [4]`` float32 ``(x0, y0, x1, y1)``, the crop-pixel
        region where a vertex may count as visible: the object's box within the image (NeMo), so
        never the crop's zero padding. Without it the whole crop is that region.
    """
    h, w, _ = image_shape
    scalar = lambda: tfds.features.Scalar(np.float32)
    spec = {
        "id": tfds.features.Text(),
        "image": tfds.features.Image(shape=tuple(image_shape), dtype=np.uint8, encoding_format="png"),
        "azimuth": scalar(),
        "elevation": scalar(),
        "theta": scalar(),
        "distance": scalar(),
        "px": scalar(),
        "py": scalar(),
        "focal": scalar(),
        "viewport": scalar(),
        "category": tfds.features.ClassLabel(names=list(categories)),
        "cad_index": tfds.features.Scalar(np.int32),
        "kp2d": tfds.features.Tensor(shape=(None, 2), dtype=np.float32),
        "visible": tfds.features.Tensor(shape=(None,), dtype=np.bool_),
        "occlusion_level": tfds.features.Scalar(np.int32),
    }
    if box:
        spec["box"] = tfds.features.Tensor(shape=(4,), dtype=np.float32)
    if object_mask:
        spec["object_mask"] = tfds.features.Tensor(shape=(h, w), dtype=np.uint8, encoding="zlib")
    if occluder_mask:
        spec["occluder_mask"] = tfds.features.Tensor(shape=(h, w), dtype=np.uint8, encoding="zlib")
    return tfds.features.FeaturesDict(spec)


def png_bytes(image: np.ndarray) -> bytes:
    """``[H, W, 3]`` uint8 -> PNG bytes (tfds encodes arrays with TensorFlow, which is not needed)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode(example: dict, keys) -> dict:
    """Keeps the schema's ``keys`` and PNG-encodes the image."""
    out = {k: example[k] for k in keys}
    out["image"] = png_bytes(example["image"])
    return out
