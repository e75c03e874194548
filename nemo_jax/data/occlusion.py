"""Synthetic occluders pasted onto clean images, with the OccludedPASCAL3D+ occlusion levels.

OccludedPASCAL3D+ (Wang et al., 2020) defines the foreground occlusion level by the fraction of the
object mask covered by occluders: L1 20-40 %, L2 40-60 %, L3 60-80 % (L0: the clean image), and its
FGL{l}_BGL{l} folders also cover 0-20 / 20-40 / 40-60 % of the rest of the image (the background
level, :data:`BACKGROUND_LEVELS`). This module pastes occluders until the covered fraction of a
given object mask falls in the requested level's range. It works on any clean image with an object
mask, e.g. a rendered silhouette of the annotated pose, for users without the occluded release.

Occluder families, chosen by name (:data:`FAMILIES`, :func:`make_family`), so that robustness can be
told from learning the test's occluders:
  * ``objects``: textured, shaded silhouettes of other procedural objects (sprites rendered by
    :mod:`nemo_jax.data.scenes.sprites`, never of the occluded image's category), pasted whole as
    OccludedPASCAL3D+ pastes MS-COCO object segments. The level generator of the generated
    validation and test trees (:mod:`nemo_jax.data.scenes.tree`).
  * ``polygons``: random polygons and ellipses filled with a colour and stripes or uniform noise.
    The synthetic dataset's test levels (:func:`occlude`, foreground only); in the generated trees a
    family that neither training augmentation nor the level generator uses.
  * ``blobs``: natural-texture blobs: irregular smooth outlines (thresholded fractal noise) filled
    with fractal-noise texture in related colours, like foliage, rock or cloth. Also used by
    neither training nor the level generator.
Training-time occluder augmentation uses none of these: it pastes patches of other training images
(the training code's own family), so a test run with ``polygons`` or ``blobs`` measures robustness
to occluders that neither training nor the level generator has shown.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw

from nemo_jax.data import noise

#: Occlusion ratio range ``[low, high)`` of the object mask per level.
LEVELS: dict[int, tuple[float, float]] = {0: (0.0, 0.0), 1: (0.2, 0.4), 2: (0.4, 0.6), 3: (0.6, 0.8)}
#: Occluded fraction ``[low, high)`` of the pixels off the object per level (OccludedPASCAL3D+'s
#: BGL1-3, paired with FGL1-3 in the FGL{l}_BGL{l} folders NeMo evaluates on).
BACKGROUND_LEVELS: dict[int, tuple[float, float]] = {
    0: (0.0, 0.0),
    1: (0.0, 0.2),
    2: (0.2, 0.4),
    3: (0.4, 0.6),
}
#: Occluder family names (see the module docstring).
FAMILIES = ("objects", "polygons", "blobs")


def occlusion_ratio(object_mask: np.ndarray, occluder_mask: np.ndarray) -> float:
    """Fraction of the object mask covered by the occluder mask. ``[H, W], [H, W] -> float``."""
    obj = np.asarray(object_mask) > 0
    area = obj.sum()
    if area == 0:
        raise ValueError("occlusion_ratio: the object mask is empty")
    return float((obj & (np.asarray(occluder_mask) > 0)).sum() / area)


def _random_shape(rng: np.random.Generator, draw: ImageDraw.ImageDraw, centre, scale):
    """Draws one filled random polygon or ellipse (value 255) around ``centre`` with size ~``scale``."""
    cx, cy = centre
    if rng.random() < 0.5:
        rx, ry = scale * rng.uniform(0.4, 1.0, 2)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    else:
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = scale * rng.uniform(0.5, 1.2, n)
        points = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a, r in zip(angles, radii, strict=True)]
        draw.polygon(points, fill=255)


def _occluder_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random occluder appearance ``[H, W, 3]`` float in [0, 1]: a colour with stripes or noise."""
    colour = rng.uniform(0, 1, 3)
    other = rng.uniform(0, 1, 3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if rng.random() < 0.5:
        angle, freq = rng.uniform(0, np.pi), rng.uniform(0.2, 1.0)
        t = 0.5 + 0.5 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))
    else:
        t = rng.uniform(0, 1, (height, width)).astype(np.float32)
    return colour * t[..., None] + other * (1 - t[..., None])


def make_occluder_mask(
    object_mask: np.ndarray,
    level: int,
    rng: np.random.Generator,
    max_tries: int = 200,
) -> tuple[np.ndarray, float]:
    """An occluder mask whose coverage of ``object_mask`` falls in ``LEVELS[level]``.

    Shapes are added one at a time around random object pixels; a shape that overshoots the range is
    discarded and a smaller one tried. Raises ``RuntimeError`` after ``max_tries`` shapes.

    Args:
      object_mask: ``[H, W]`` object mask (non-zero = object), not empty.
      level: 1, 2 or 3 (0 returns an empty mask).
      rng: numpy generator (the only source of randomness).
    Returns:
      ``(occluder_mask [H, W] uint8 in {0, 1}, ratio)``.
    """
    labels, ratio = occluder_shapes(object_mask, level, rng, max_tries)
    return (labels > 0).astype(np.uint8), ratio


def occluder_shapes(
    object_mask: np.ndarray,
    level: int,
    rng: np.random.Generator,
    max_tries: int = 200,
) -> tuple[np.ndarray, float]:
    """Like :func:`make_occluder_mask`, returning ``(labels [H, W] int32, ratio)``: 0 = free,
    ``k > 0`` = the k-th pasted shape (later shapes on top)."""
    if level not in LEVELS:
        raise ValueError(f"make_occluder_mask: level must be one of {sorted(LEVELS)}, got {level}")
    obj = np.asarray(object_mask) > 0
    if obj.sum() == 0:
        raise ValueError("make_occluder_mask: the object mask is empty")
    h, w = obj.shape
    labels = np.zeros((h, w), np.int32)
    if level == 0:
        return labels, 0.0
    low, high = LEVELS[level]
    target = rng.uniform(low + 0.02, high - 0.02)
    ys, xs = np.nonzero(obj)
    extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    ratio = 0.0
    scale = 0.25 * extent
    for _ in range(max_tries):
        canvas = Image.new("L", (w, h), 0)
        i = int(rng.integers(len(xs)))
        _random_shape(rng, ImageDraw.Draw(canvas), (xs[i], ys[i]), scale * rng.uniform(0.6, 1.4))
        shape = np.asarray(canvas) > 0
        new_ratio = occlusion_ratio(obj, (labels > 0) | shape)
        if new_ratio >= high:
            scale *= 0.8
            continue
        if new_ratio > ratio:
            labels = np.where(shape, labels.max() + 1, labels).astype(np.int32)
            ratio = new_ratio
        if ratio >= target:
            return labels, ratio
    if low <= ratio < high:
        return labels, ratio
    raise RuntimeError(f"make_occluder_mask: could not reach level {level} in {max_tries} shapes")


def occlude(
    image: np.ndarray,
    object_mask: np.ndarray,
    level: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Pastes textured occluders onto a clean image so that ``level``'s ratio range is met.

    Args:
      image: ``[H, W, 3]`` uint8 clean image.
      object_mask: ``[H, W]`` object mask of the image (non-zero = object).
      level: 0..3 (OccludedPASCAL3D+ levels; 0 returns the image unchanged).
      rng: numpy generator.
    Returns:
      ``(image [H, W, 3] uint8, occluder_mask [H, W] uint8 in {0, 1}, ratio float)``.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != np.shape(object_mask):
        raise ValueError(
            f"occlude: image {image.shape} / object_mask {np.shape(object_mask)} must be [H, W, 3] / [H, W]"
        )
    labels, ratio = occluder_shapes(object_mask, level, rng)
    out = image.copy()
    for k in range(1, labels.max() + 1):  # one random texture per pasted shape
        texture = _occluder_texture(rng, *labels.shape)
        out = np.where((labels == k)[..., None], np.round(255 * texture), out).astype(np.uint8)
    return out, (labels > 0).astype(np.uint8), ratio


# ----------------------------------------------------------------------------- occluder families


@dataclasses.dataclass(frozen=True)
class Sprite:
    """An occluder cut-out: ``rgb [h, w, 3]`` uint8, ``mask [h, w]`` bool, and what it shows."""

    rgb: np.ndarray
    mask: np.ndarray
    category: str = ""


@dataclasses.dataclass(frozen=True)
class Patch:
    """One drawn occluder: ``mask [h, w]`` bool and ``rgb [h, w, 3]`` float in [0, 1], its top-left
    pixel at ``(x0, y0)`` of the image (it may run over the image's borders)."""

    x0: int
    y0: int
    mask: np.ndarray
    rgb: np.ndarray


class Family:
    """An occluder family: :meth:`draw` makes one occluder of about ``size`` pixels (its longer
    side) centred near ``centre = (x, y)``."""

    name = ""

    def draw(self, rng: np.random.Generator, centre, size: float) -> Patch:
        raise NotImplementedError


class Polygons(Family):
    """Random polygons and ellipses with stripes or uniform noise (the shapes and textures of
    :func:`occlude`)."""

    name = "polygons"

    def draw(self, rng, centre, size):
        side = int(np.ceil(1.3 * size)) + 2
        canvas = Image.new("L", (side, side), 0)
        _random_shape(rng, ImageDraw.Draw(canvas), (side / 2, side / 2), size / 2)
        mask = np.asarray(canvas) > 0
        rgb = _occluder_texture(rng, side, side)
        return Patch(int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2)), mask, rgb)


class Blobs(Family):
    """Irregular smooth blobs (fractal noise minus a radial falloff, thresholded) filled with
    fractal-noise texture in related colours."""

    name = "blobs"

    def draw(self, rng, centre, size):
        side = max(8, int(np.ceil(size)))
        yy, xx = (np.mgrid[0:side, 0:side].astype(np.float32) + 0.5) / side * 2 - 1
        field = noise.fractal_noise(rng, side, side, base_cells=rng.uniform(2, 4), octaves=4)
        field = field - 0.9 * (xx**2 + yy**2) ** rng.uniform(0.7, 1.3)
        mask = field > np.quantile(field, rng.uniform(0.45, 0.65))
        texture = noise.fractal_noise(rng, side, side, base_cells=rng.uniform(4, 16), octaves=5)
        rgb = noise.colour_ramp(texture, noise.palette(rng, int(rng.integers(2, 4))))
        return Patch(int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2)), mask, rgb)


class Objects(Family):
    """Silhouettes of rendered objects (:class:`Sprite`), scaled to ``size``, mirrored at random."""

    name = "objects"

    def __init__(self, sprites):
        self.sprites = tuple(sprites)
        if not self.sprites:
            raise ValueError("occlusion family 'objects': no sprites given")

    def draw(self, rng, centre, size):
        sprite = self.sprites[int(rng.integers(len(self.sprites)))]
        h, w = sprite.mask.shape
        scale = size / max(h, w)
        nh, nw = max(2, int(round(h * scale))), max(2, int(round(w * scale)))
        rgb = np.asarray(Image.fromarray(sprite.rgb).resize((nw, nh), Image.BILINEAR), np.float32) / 255
        mask_img = Image.fromarray(sprite.mask.astype(np.uint8) * 255).resize((nw, nh), Image.BILINEAR)
        mask = np.asarray(mask_img) > 127
        if rng.random() < 0.5:
            rgb, mask = rgb[:, ::-1], mask[:, ::-1]
        return Patch(int(round(centre[0] - nw / 2)), int(round(centre[1] - nh / 2)), mask, rgb)


def make_family(name: str, sprites=()) -> Family:
    """The occluder family ``name`` (:data:`FAMILIES`); ``objects`` needs ``sprites``."""
    if name == "objects":
        return Objects(sprites)
    if name == "polygons":
        return Polygons()
    if name == "blobs":
        return Blobs()
    raise ValueError(f"occluder family {name!r} is unknown; known: {', '.join(FAMILIES)}")


@dataclasses.dataclass(frozen=True)
class Occluded:
    """An image with pasted occluders.

    Attributes:
      image: ``[H, W, 3]`` uint8.
      occluder_mask: ``[H, W]`` bool, the pixels any occluder covers.
      ratio: occluded fraction of the object mask (the foreground level's measure).
      background_ratio: occluded fraction of the pixels off the object.
      boxes: ``[K, 6]`` int32 per occluder ``(y0, y1, x0, x1, H, W)`` (exclusive ends, clipped to
        the image; OccludedPASCAL3D+'s ``occluder_box`` layout).
    """

    image: np.ndarray
    occluder_mask: np.ndarray
    ratio: float
    background_ratio: float
    boxes: np.ndarray


def occlude_to_level(
    image: np.ndarray,
    object_mask: np.ndarray,
    level: int,
    family: Family,
    rng: np.random.Generator,
    background: bool = True,
    max_tries: int = 400,
) -> Occluded:
    """Pastes occluders of ``family`` onto ``image`` until the object's covered fraction lies in
    ``LEVELS[level]`` and (``background``) the rest's in ``BACKGROUND_LEVELS[level]``.

    Occluders go first over random object pixels (about a third of the object's larger box side),
    then over random pixels off the object (about a quarter of the image's larger side); one that
    would overshoot a range is dropped and the next is drawn smaller.

    Args:
      image: ``[H, W, 3]`` uint8 clean image.
      object_mask: ``[H, W]`` object mask (non-zero = object), not empty.
      level: 0..3 (0 returns the image unchanged).
      family: a :class:`Family` (:func:`make_family`).
      rng: numpy generator (the only source of randomness).
    Raises:
      ValueError on bad shapes, an empty mask or an unknown level; RuntimeError when the ranges
      are not reached in ``max_tries`` occluders.
    """
    image = np.asarray(image)
    obj = np.asarray(object_mask) > 0
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != obj.shape:
        raise ValueError(
            f"occlude_to_level: image {image.shape} / object_mask {obj.shape} must be [H, W, 3] / [H, W]"
        )
    if level not in LEVELS:
        raise ValueError(f"occlude_to_level: level must be one of {sorted(LEVELS)}, got {level}")
    area = int(obj.sum())
    if area == 0:
        raise ValueError("occlude_to_level: the object mask is empty")
    h, w = obj.shape
    rest = h * w - area
    occ = np.zeros((h, w), bool)
    out = image.astype(np.float32) / 255
    if level == 0:
        return Occluded(image.copy(), occ, 0.0, 0.0, np.zeros((0, 6), np.int32))
    fg_range, bg_range = LEVELS[level], BACKGROUND_LEVELS[level] if background else (0.0, 1.0)
    # The last occluder overshoots its target by a few points on average: aiming a little low
    # centres the measured ratios in their ranges (OccludedPASCAL3D+ aims at 0.3 / 0.5 / 0.7).
    fg_target = rng.uniform(fg_range[0] + 0.005, fg_range[1] - 0.1)
    bg_target = rng.uniform(bg_range[0] + 0.02, bg_range[1] - 0.03) if background else 0.0
    ys, xs = np.nonzero(obj)
    extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    fg = bg = 0
    boxes = []
    sizes = {"fg": 0.6 * extent, "bg": 0.5 * max(h, w)}
    for _ in range(max_tries):
        phase = "fg" if fg / area < fg_target else ("bg" if rest and bg / rest < bg_target else None)
        if phase is None:
            break
        if phase == "fg":
            i = int(rng.integers(len(xs)))
            centre = (xs[i], ys[i])
        else:
            centre = (rng.uniform(0, w), rng.uniform(0, h))
            if obj[min(int(centre[1]), h - 1), min(int(centre[0]), w - 1)]:
                continue
        patch = family.draw(rng, centre, sizes[phase] * rng.uniform(0.6, 1.4))
        ph, pw = patch.mask.shape
        y0, x0 = max(patch.y0, 0), max(patch.x0, 0)
        y1, x1 = min(patch.y0 + ph, h), min(patch.x0 + pw, w)
        if y1 <= y0 or x1 <= x0:
            continue
        local = patch.mask[y0 - patch.y0 : y1 - patch.y0, x0 - patch.x0 : x1 - patch.x0]
        new = local & ~occ[y0:y1, x0:x1]
        if not new.any():
            continue
        new_fg = fg + int((new & obj[y0:y1, x0:x1]).sum())
        new_bg = bg + int((new & ~obj[y0:y1, x0:x1]).sum())
        if new_fg / area >= fg_range[1] or (rest and new_bg / rest >= bg_range[1]):
            sizes[phase] *= 0.85
            continue
        gain = (new_fg - fg) / area if phase == "fg" else ((new_bg - bg) / rest if rest else 0.0)
        fg, bg = new_fg, new_bg
        gap = (fg_target - fg / area) if phase == "fg" else (bg_target - (bg / rest if rest else 0.0))
        if 0 < gap < gain:  # close to the target: the next occluders are smaller, so it is not overshot
            sizes[phase] *= float(np.clip(np.sqrt(gap / gain), 0.35, 1.0))
        occ[y0:y1, x0:x1] |= local
        rgb = patch.rgb[y0 - patch.y0 : y1 - patch.y0, x0 - patch.x0 : x1 - patch.x0]
        out[y0:y1, x0:x1] = np.where(local[..., None], rgb, out[y0:y1, x0:x1])
        boxes.append((y0, y1, x0, x1, h, w))
    ratio, bg_ratio = fg / area, (bg / rest if rest else 0.0)
    if not fg_range[0] <= ratio < fg_range[1] or (
        background and rest and not bg_range[0] <= bg_ratio < bg_range[1]
    ):
        raise RuntimeError(
            f"occlude_to_level: level {level} not reached in {max_tries} occluders "
            f"(object {ratio:.2f}, background {bg_ratio:.2f})"
        )
    return Occluded(
        image=np.round(np.clip(out, 0, 1) * 255).astype(np.uint8),
        occluder_mask=occ,
        ratio=float(ratio),
        background_ratio=float(bg_ratio),
        boxes=np.asarray(boxes, np.int32).reshape(-1, 6),
    )
