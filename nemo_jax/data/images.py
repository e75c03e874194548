"""Image files read as their owners see them, and a pixel-level check for crops with nothing in them.

:func:`read_image` is the one reader of image files (dataset builders, the fixture reader, pose
estimation, mesh rendering): it returns ``uint8 [H, W, 3]`` RGB

* upright: the EXIF orientation tag (0x0112) is applied first (Pillow's ``ImageOps.exif_transpose``),
  so boxes and crops refer to the image as a viewer shows it. Where coordinates come from annotation
  files made on the stored pixels, ``orientation='refuse'`` refuses an image whose tag turns it (see
  :func:`read_image`);
* in 8 bits: 16-bit and 32-bit integer greys (Pillow modes ``I;16``, ``I;16B``, ``I;16L``, ``I;16N``,
  ``I``) and float greys (``F``) are stretched from their own minimum..maximum to 0..255 (a 16-bit PNG
  is not clipped to white); 16-bit colour PNGs are read by Pillow at 8 bits already;
* in RGB: bilevel, grey, palette, CMYK, YCbCr and HSV images are converted by Pillow; images with
  alpha (``LA``, ``PA``, ``RGBA``, palette with a transparent colour) are composited over black, the
  colour of the zeros outside an image in every crop.

Colour profiles (ICC) are not applied: pixel values are used as stored, as NeMo's reader does. Anything
else (e.g. ``LAB``, whose Pillow conversion is not a colour conversion) is refused naming the file and
the mode; a missing or unreadable file is named too.

:func:`pixel_spread` measures how much a crop's pixels vary; below :data:`UNIFORM_PIXEL_SPREAD` a crop
is :data:`UNIFORM_IMAGE` (white, grey, dark or all-zero: nothing for a pose to be fitted to).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageOps

#: The EXIF tag holding the orientation (1 = as stored; 2..8 flip and / or turn the stored pixels).
ORIENTATION_TAG = 0x0112
#: What each EXIF orientation does to the stored pixels to show them upright.
ORIENTATIONS = {
    2: "mirrored left-right",
    3: "turned 180 degrees",
    4: "mirrored top-bottom",
    5: "mirrored and turned 90 degrees",
    6: "turned 90 degrees clockwise",
    7: "mirrored and turned 90 degrees",
    8: "turned 90 degrees counter-clockwise",
}
# Pillow modes converted to RGB by Pillow itself.
_PILLOW_RGB_MODES = ("1", "L", "P", "CMYK", "YCbCr", "HSV", "RGBX")
# Modes with straight (not premultiplied) alpha: composited over black.
_ALPHA_MODES = ("LA", "PA", "RGBA")
# Integer and float grey modes: stretched from their own value range to 0..255.
_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
# The value a deep mode's full scale is when the image is constant (no range to stretch).
_FULL_SCALE = {"F": 1.0}
_INT_FULL_SCALE = 65535.0

#: Below this :func:`pixel_spread` (8-bit levels) a crop counts as uniform.
UNIFORM_PIXEL_SPREAD = 2.0
#: The flag of a crop whose pixels are uniform.
UNIFORM_IMAGE = "uniform image"
#: Side (pixels) of the blocks averaged by :func:`pixel_spread` before measuring their spread.
SPREAD_BLOCK = 4


def exif_orientation(image: Image.Image) -> int:
    """The image's EXIF orientation (1..8; 1 when absent or not a valid value)."""
    value = image.getexif().get(ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and value in range(1, 9) else 1


def to_rgb8(image: Image.Image, source: str = "image") -> np.ndarray:
    """``image`` (any supported Pillow mode, see the module docstring) as ``uint8 [H, W, 3]`` RGB.

    Raises ValueError naming ``source`` and the mode for a mode it cannot convert, or a float image
    holding NaN or infinite values.
    """
    mode = image.mode
    if mode == "RGB":
        return np.array(image, np.uint8)
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _PILLOW_RGB_MODES:
        return np.array(image.convert("RGB"), np.uint8)
    if mode in _ALPHA_MODES:
        rgba = np.asarray(image.convert("RGBA"), np.float32)
        rgb = rgba[..., :3] * (rgba[..., 3:] / 255.0)
        return np.round(rgb).astype(np.uint8)
    if mode in _DEEP_MODES:
        values = np.asarray(image).astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError(f"{source}: image mode {mode} holds NaN or infinite values")
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if hi > lo:
            grey = (values - lo) * (255.0 / (hi - lo))
        else:  # constant: its value on the mode's full scale (16-bit integers, floats in 0..1)
            grey = values * (255.0 / _FULL_SCALE.get(mode, _INT_FULL_SCALE))
        grey = np.round(np.clip(grey, 0.0, 255.0)).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    supported = ", ".join(("RGB",) + _PILLOW_RGB_MODES + _ALPHA_MODES + _DEEP_MODES)
    raise ValueError(f"{source}: image mode {mode} cannot be read as 8-bit RGB (readable modes: {supported})")


def read_image(path: str | os.PathLike, *, orientation: str = "apply") -> np.ndarray:
    """Reads an image file as its owner sees it: ``uint8 [H, W, 3]`` RGB, upright.

    Args:
      path: any image file Pillow reads (JPEG, PNG, TIFF, ...); the first frame of an animation.
      orientation: ``'apply'`` turns and mirrors the pixels as the EXIF orientation tag says (what a
        viewer shows, and what boxes drawn on it refer to). ``'refuse'`` is for images whose pixel
        coordinates come from annotation files: the PASCAL3D+, OccludedPASCAL3D+ and ObjectNet3D
        annotations were made on the pixels as stored (their MATLAB toolkit's ``imread`` ignores the
        tag, and the releases' JPEGs carry none), so a tag that turns the image makes it ambiguous
        which frame an annotation means: the file is refused (ValueError naming it and the tag)
        instead of boxes silently landing on the wrong pixels. Orientation 1 (or none) reads as is.

    Returns:
      ``uint8 [H, W, 3]``, rows top to bottom as displayed.

    Raises:
      FileNotFoundError naming a missing file; ValueError naming the file for one Pillow cannot
      decode (truncated, not an image, too many pixels), an unsupported mode (naming it), a
      refused orientation.
    """
    path = os.fspath(path)
    if orientation not in ("apply", "refuse"):
        raise ValueError(f"orientation must be 'apply' or 'refuse', not {orientation!r}")
    if not os.path.isfile(path):
        what = "is a directory, not an image" if os.path.isdir(path) else "missing image"
        raise FileNotFoundError(f"{path}: {what}")
    try:
        img = Image.open(path)
    except Exception as err:  # noqa: BLE001 (Pillow raises many kinds for a bad file)
        raise ValueError(f"{path}: unreadable image ({type(err).__name__}: {err})") from err
    with img:
        try:
            img.load()  # decode now: a truncated file fails here, inside the message naming it
            tag = exif_orientation(img)
            upright = ImageOps.exif_transpose(img) if orientation == "apply" else img
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{path}: unreadable image ({type(err).__name__}: {err})") from err
        if orientation == "refuse" and tag != 1:
            raise ValueError(
                f"{path}: EXIF orientation {tag} ({ORIENTATIONS[tag]}) but its annotations refer to the "
                "pixels as stored; remove the tag if they were made on the stored pixels (exiftool "
                "-Orientation= FILE), or save the image upright and annotate that"
            )
        return to_rgb8(upright, path)


def pixel_spread(pixels, valid=None) -> jax.Array:
    """How much a crop's pixels vary, in 8-bit levels (jit- and vmap-able; static shapes).

    The pixels are averaged over :data:`SPREAD_BLOCK` x :data:`SPREAD_BLOCK` blocks (which quiets
    sensor and JPEG noise, pixel by pixel, by that factor while an object's shading and edges, tens of
    pixels wide, stay) and the spread is the largest over the channels of the standard deviation of
    the block means, each block weighted by its valid pixels. A constant crop (white, grey, dark,
    all-zero, or a JPEG of one) measures about 0; a real object, even a dim or low-contrast one, several
    levels (compare with :data:`UNIFORM_PIXEL_SPREAD`).

    Args:
      pixels: ``[H, W, C]`` (or ``[H, W]``) pixel values on the 0..255 scale, any dtype.
      valid: optional ``[H, W]`` bool, the pixels that come from the image: leave out the zeros
        padded around an image that does not fill its crop (or measure the box's region of the
        image itself), else a uniform image beside its black padding counts as varied. None: all.

    Returns:
      float32 ``[]``; 0 when no pixel is valid.
    """
    x = jnp.asarray(pixels, jnp.float32)
    if x.ndim == 2:
        x = x[..., None]
    h, w, c = x.shape
    m = jnp.ones((h, w), jnp.float32) if valid is None else jnp.asarray(valid, jnp.float32)
    b = SPREAD_BLOCK
    pad = ((0, -h % b), (0, -w % b))
    x = jnp.pad(x * m[..., None], pad + ((0, 0),))
    m = jnp.pad(m, pad)
    hb, wb = x.shape[0] // b, x.shape[1] // b
    sums = x.reshape(hb, b, wb, b, c).sum((1, 3))  # [hb, wb, C]
    counts = m.reshape(hb, b, wb, b).sum((1, 3))[..., None]  # [hb, wb, 1]
    means = sums / jnp.maximum(counts, 1.0)
    total = jnp.maximum(counts.sum(), 1.0)
    centre = (means * counts).sum((0, 1)) / total  # [C]
    variance = (jnp.square(means - centre) * counts).sum((0, 1)) / total
    return jnp.sqrt(jnp.max(variance))


def is_uniform(pixels, valid=None) -> jax.Array:
    """bool ``[]``: :func:`pixel_spread` below :data:`UNIFORM_PIXEL_SPREAD` (flag :data:`UNIFORM_IMAGE`)."""
    return pixel_spread(pixels, valid) < UNIFORM_PIXEL_SPREAD
