"""Readers for PASCAL3D+ release1.1, OccludedPASCAL3D+ and ObjectNet3D, in NeMo's crop protocol.

NeMo's protocol (``CreatePascal3DNeMo.py``): the ImageNet subset, the first object of the category in
each image, the whole image rescaled by ``resize_rate = 200 * distance / 1000 = distance / 5`` for
EVERY category, so each object looks as if at distance 5 with a 3000-px focal (``focal * viewport``),
and a fixed per-category crop (``kp_list.top_50_size_dict``) centred on the ground-truth principal
point, zero-padded outside the image. The viewpoint moves with the crop: angles and focal are
unchanged, ``distance`` becomes :data:`CROP_DISTANCE` (times ``shrink``), ``(px, py)`` becomes the
principal point in the crop (0-based; the annotation's MATLAB 1-based ``px, py`` minus 1, scaled,
minus the crop corner).

Camera convention of the built data: every crop's camera is the annotation's (``focal * viewport`` =
3000 px) at distance ``CROP_DISTANCE * shrink``, which is the distance the pose search starts from
(the example's ``distance`` field). NeMo's per-category ``distance_render`` (:data:`RENDER_DISTANCES`)
belongs to its fov-12 degree square render camera, whose pixel focal is
``(max(H, W) / 2) / tan(6 deg)``, not to the data: :func:`nemo_render_distance` converts it to this
project's 3000-px camera (the size NeMo's initial grid renders the object at).

Pixel convention: 0-based pixel centres, pixel ``(row i, col j)`` at ``(x, y) = (j, i)``. Rescaling
maps ``x -> scale * x``; the crop's top-left pixel is ``(x0, y0)``, so ``x_crop = scale * x - x0``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import zlib

import jax
import numpy as np
import scipy.io
from PIL import Image

from nemo_jax.data import builders, occlusion, splits
from nemo_jax.data import meshes as meshes_lib
from nemo_jax.data.images import read_image
from nemo_jax.geometry import camera_from_viewpoint
from nemo_jax.mesh import load_off, single_cuboid
from nemo_jax.mesh.padding import pad_to_common, round_up
from nemo_jax.render import RasterSettings, render
from nemo_jax.render.visibility import project_with_visibility

#: NeMo's crop size ``(H, W)`` per PASCAL3D+ category (``kp_list.top_50_size_dict``, multiples of 32).
CROP_SIZES = {
    "car": (256, 672), "bus": (320, 800), "motorbike": (512, 512), "boat": (480, 1120),
    "bicycle": (608, 608), "aeroplane": (320, 1024), "sofa": (352, 736), "tvmonitor": (480, 480),
    "chair": (544, 384), "diningtable": (320, 800), "bottle": (512, 736), "train": (256, 608),
}  # fmt: skip
#: NeMo's ``distance_render`` per PASCAL3D+ category (``MeshPoseSolveAll.py``; CAD units): the
#: initial distance of its pose search in its fov-12 degree render camera (see :func:`nemo_render_distance`).
RENDER_DISTANCES = {
    "car": 5.0, "bus": 5.2, "motorbike": 4.5, "bottle": 5.75, "boat": 8.0, "bicycle": 5.2, "aeroplane": 7.0,
    "sofa": 5.4, "tvmonitor": 5.5, "chair": 4.0, "diningtable": 7.0, "train": 3.75,
}  # fmt: skip
#: The distance (CAD units) every object is rescaled to: NeMo's ``resize_rate = distance / 5``.
CROP_DISTANCE = 5.0
#: The focal length in pixels of the annotation camera (``focal * viewport`` = 1 * 3000).
DATA_FOCAL_PX = 3000.0
#: NeMo's render camera: ``OpenGLPerspectiveCameras(fov=12.0)`` on a square of side ``max(H, W)``.
NEMO_RENDER_FOV_DEG = 12.0
PASCAL_CATEGORIES = tuple(CROP_SIZES)
#: The 18 ObjectNet3D categories of NeMo's ObjectNet3D experiments (VoGE and NeMo-6D follow them),
#: in the order of the authors' refactor: github wufeim/NeMo, ``nemo/utils/objectnet3d_utils.py``
#: ``CATEGORIES`` (lines 1-20). ObjectNet3D's own class name ``cabinet``, not ``filing_cabinet``.
OBJECTNET3D_CATEGORIES = (
    "bed", "bookshelf", "calculator", "cellphone", "computer", "cabinet", "guitar", "iron", "knife",
    "microwave", "pen", "pot", "rifle", "slipper", "stove", "toilet", "tub", "wheelchair",
)  # fmt: skip
#: NeMo's ObjectNet3D crop ``(H, W)``, the same for every category: the refactor's data preparation
#: (github wufeim/NeMo, ``config/datasets/objectnet3d.py`` lines 24-42, ``image_sizes``: 640 x 800
#: for each of the 18, read as (height, width) by ``data/prepare_objectnet3d.py``'s ``worker``).
OBJECTNET3D_CROP_SIZES = dict.fromkeys(OBJECTNET3D_CATEGORIES, (640, 800))
VIEWPOINT_FIELDS = ("azimuth", "elevation", "theta", "distance", "focal", "px", "py", "viewport")
PASCAL_ROOT, OCCLUDED_ROOT, OBJECTNET_ROOT = "PASCAL3D+_release1.1", "OccludedPASCAL3D+", "ObjectNet3D"


@dataclasses.dataclass(frozen=True)
class Pascal3DOptions:
    """Options of the PASCAL3D+-family builders.

    Attributes:
      manual_dir: folder holding ``PASCAL3D+_release1.1/`` (and ``OccludedPASCAL3D+/``) or ``ObjectNet3D/``.
      categories: categories to build (empty: the dataset's default list).
      neural_vertices: SingleCuboid vertex target (NeMo: 1000).
      coverage: SingleCuboid coverage of the CAD vertices.
      pose_split: 'all' or 'unseen' (train/val keep NeMo's seen azimuth bins, test sets the others;
        'unseen' also writes ``test_l0``, the val images of unseen azimuths: its L0).
      default_crop: crop ``(H, W)`` for every category that is not a PASCAL3D+ one, in place of
        NeMo's ObjectNet3D size (:data:`OBJECTNET3D_CROP_SIZES`); ``()`` (default): NeMo's size.
      shrink: integer factor dividing every crop size and multiplying the crop distance (the focal
        stays 3000 px): the same framing with ``shrink`` times fewer pixels per side (1 = NeMo;
        4-8 for CPU runs).
      crop_multiple: crop sides are rounded UP to a multiple of this (a little more context around
        the same framing), so shrunk crops fit the backbones' stride-32 trunks: car 672 / 8 = 84
        -> 96. NeMo's own sizes are multiples of 32 already; 1 keeps the plain division.
      synthetic_occlusion: ``pascal3d`` only: also write ``test_l0..test_l3``, the val images with
        pasted occluders (OccludedPASCAL3D+ ratio ranges of the object mask, the CAD silhouette
        rendered at the annotated pose), and give every example an ``object_mask``; for users
        without the OccludedPASCAL3D+ release.
      seed: seed of the synthetic occluders.
    """

    manual_dir: str = ""
    categories: tuple[str, ...] = ()
    neural_vertices: int = 1000
    coverage: float = 0.99
    pose_split: str = "all"
    default_crop: tuple[int, ...] = ()
    shrink: int = 1
    crop_multiple: int = 32
    synthetic_occlusion: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.pose_split not in splits.POSE_SPLITS:
            raise ValueError(f"Pascal3DOptions.pose_split: must be one of {splits.POSE_SPLITS}")
        if int(self.shrink) < 1:
            raise ValueError(f"Pascal3DOptions.shrink: must be >= 1, got {self.shrink}")
        if int(self.crop_multiple) < 1:
            raise ValueError(f"Pascal3DOptions.crop_multiple: must be >= 1, got {self.crop_multiple}")
        try:  # --option default_crop=H,W arrives as strings
            crop = tuple(int(v) for v in (self.default_crop or ()))
        except (TypeError, ValueError):
            crop = (0,)
        if crop != () and (len(crop) != 2 or min(crop) < 1):
            raise ValueError(
                f"Pascal3DOptions.default_crop: expected (H, W) >= 1 or (), got {self.default_crop}"
            )
        object.__setattr__(self, "default_crop", crop)

    def crop_size(self, category: str) -> tuple[int, int]:
        """Crop ``(H, W)`` in pixels: NeMo's size (PASCAL3D+'s :data:`CROP_SIZES`, else
        ``default_crop`` if given, else ObjectNet3D's :data:`OBJECTNET3D_CROP_SIZES`) over
        ``shrink``, rounded up to ``crop_multiple``."""
        m = int(self.crop_multiple)
        if category in CROP_SIZES:
            h, w = CROP_SIZES[category]
        elif self.default_crop:
            h, w = self.default_crop
        elif category in OBJECTNET3D_CROP_SIZES:
            h, w = OBJECTNET3D_CROP_SIZES[category]
        else:
            raise ValueError(f"Pascal3DOptions: no crop size for category {category!r} (set default_crop)")
        return tuple(round_up(max(1, round(s / self.shrink)), m) for s in (h, w))

    def crop_distance(self) -> float:
        """The distance (CAD units) every object is rescaled to: NeMo's 5, times ``shrink``."""
        return CROP_DISTANCE * self.shrink


def nemo_render_distance(category: str, crop_size: tuple[int, int] | None = None) -> float:
    """NeMo's ``distance_render`` of ``category`` expressed in this project's data camera.

    NeMo renders a square of side ``max(H, W)`` with a 12-degree field of view, i.e. a pixel focal
    ``f = (max(H, W) / 2) / tan(6 deg)`` (car, 256 x 672: 3197 px), at ``distance_render``. The same
    projected size with the data's ``focal * viewport = 3000`` px needs the distance
    ``distance_render * 3000 / f`` (car: 4.69). ``crop_size``: ``(H, W)`` (default: NeMo's size of
    the category); a crop shrunk by ``s`` gives ``s`` times the distance, as the crop distance does.
    """
    if category not in RENDER_DISTANCES:
        raise ValueError(f"nemo_render_distance: no distance_render for {category!r}")
    h, w = crop_size if crop_size is not None else CROP_SIZES[category]
    focal = (max(h, w) / 2.0) / np.tan(np.deg2rad(NEMO_RENDER_FOV_DEG / 2.0))
    return float(RENDER_DISTANCES[category] * DATA_FOCAL_PX / focal)


class Skip(Exception):
    """An example to leave out, with the reason counted in the build summary."""


def _require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: missing {what} folder")
    return path


def load_record(path: str):
    """``record`` of a PASCAL3D+/ObjectNet3D annotation .mat (``ValueError`` naming an unreadable file)."""
    if not os.path.isfile(path):
        raise Skip("missing annotation .mat")
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as err:  # scipy raises several types for corrupt files
        raise ValueError(f"{path}: corrupt annotation .mat ({type(err).__name__}: {err})") from err
    if "record" not in mat:
        raise ValueError(f"{path}: field 'record' missing")
    return mat["record"]


def first_object(record, category: str, path: str) -> dict:
    """The first object of ``category`` in a record (NeMo: ``objects[0]`` of the category's
    annotation), as a dict: viewpoint in DEGREES (annotation values), ``bbox [4]`` (x1, y1, x2, y2,
    MATLAB 1-based), ``cad_index``. The ``truncated`` / ``occluded`` / ``difficult`` flags are not
    filtered on (NeMo keeps every such object). Anything that makes the object unusable (no
    viewpoint, a missing or non-finite field, distance <= 0, no or a degenerate box) raises
    :class:`Skip` with the reason, counted in the build summary."""
    for obj in record_objects(record):
        if str(getattr(obj, "class", "")).strip() == category:
            return object_view(obj)
    raise Skip(f"no '{category}' object")


def record_objects(record) -> list:
    """``record.objects`` as a list (:class:`Skip` when the record has none)."""
    objects = getattr(record, "objects", None)
    if objects is None or (isinstance(objects, np.ndarray) and objects.size == 0):
        raise Skip("record has no objects")
    return list(np.atleast_1d(objects))


def _number(vp, name: str) -> np.ndarray:
    try:
        return np.asarray(getattr(vp, name, np.array([])), np.float64).ravel()
    except (TypeError, ValueError):
        raise Skip(f"viewpoint.{name} not a number") from None


def object_view(obj, coarse_fallback: bool = False) -> dict:
    """One annotated object as :func:`first_object` returns it (:class:`Skip` naming what makes it
    unusable). ``coarse_fallback``: an empty or absent ``azimuth`` / ``elevation`` is read from
    ``azimuth_coarse`` / ``elevation_coarse`` (ObjectNet3D, whose annotation tool writes the coarse
    angles and whose toolbox and NeMo's refactor read them when the fine ones are empty)."""
    vp = getattr(obj, "viewpoint", None)
    if vp is None or isinstance(vp, np.ndarray):
        raise Skip("object has no viewpoint")
    view = {}
    for name in VIEWPOINT_FIELDS:
        value = _number(vp, name)
        if value.size == 0 and coarse_fallback and name in ("azimuth", "elevation"):
            value = _number(vp, f"{name}_coarse")
        if value.size != 1 or not np.isfinite(value[0]):
            raise Skip(f"viewpoint.{name} missing")
        view[name] = float(value[0])
    if view["distance"] <= 0:
        raise Skip("viewpoint.distance is 0")
    if view["focal"] <= 0 or view["viewport"] <= 0:
        raise Skip("viewpoint.focal or viewport is 0")
    try:
        bbox = np.asarray(getattr(obj, "bbox", []), np.float64).ravel()
    except (TypeError, ValueError):
        bbox = np.array([])
    if bbox.size != 4 or not np.all(np.isfinite(bbox)):
        raise Skip("objects.bbox missing")
    if bbox[2] <= bbox[0] or bbox[3] <= bbox[1]:
        raise Skip("zero-size bbox")
    try:
        cad = np.asarray(getattr(obj, "cad_index", 1), np.float64).ravel()
    except (TypeError, ValueError):
        cad = np.array([])
    cad_index = int(cad[0]) if cad.size and np.isfinite(cad[0]) else 1
    return {**view, "bbox": bbox, "cad_index": cad_index}


IMAGE_SUFFIXES = (".JPEG", ".jpg", ".jpeg", ".JPG", ".png")


def image_path(folder: str, name: str) -> str:
    """The image file of ``name`` in ``folder`` (``.JPEG`` as in the releases, else ``.jpg`` /
    ``.jpeg`` / ``.png``); the ``.JPEG`` path when none exists (for the error message)."""
    for suffix in IMAGE_SUFFIXES:
        path = os.path.join(folder, name + suffix)
        if os.path.isfile(path):
            return path
    return os.path.join(folder, name + ".JPEG")


def load_image(path: str) -> Image.Image:
    """An RGB PIL image read by :func:`nemo_jax.data.images.read_image` (16-bit, float, grey, palette,
    CMYK and alpha images converted to 8-bit RGB; ``FileNotFoundError``/``ValueError`` naming the file).

    The annotations of PASCAL3D+, OccludedPASCAL3D+ and ObjectNet3D refer to the pixels as stored (the
    releases' JPEGs carry no EXIF orientation), so an image whose EXIF orientation turns or mirrors it
    is refused naming the file and the tag (the build stops there) rather than cropped around boxes
    that may mean the other frame."""
    return Image.fromarray(read_image(path, orientation="refuse"))


def crop_transform(px0: float, py0: float, scale: float, size: tuple[int, int]) -> tuple[int, int]:
    """Top-left pixel ``(x0, y0)`` of the ``size = (H, W)`` crop of the image rescaled by ``scale``,
    centred on the rescaled 0-based principal point ``(px0, py0)``."""
    h, w = size
    return int(round(px0 * scale - w / 2.0)), int(round(py0 * scale - h / 2.0))


def crop(image: Image.Image, x0: int, y0: int, scale: float, size, resample=Image.BILINEAR) -> np.ndarray:
    """Rescales by ``scale`` and crops ``size = (H, W)`` at ``(x0, y0)`` in one resampling; zeros
    outside the image. Output pixel ``(i, j)`` samples input ``((j + x0) / s, (i + y0) / s)``."""
    h, w = size
    # PIL's affine maps output continuous coords (pixel centre at j + 0.5) to input continuous coords.
    c = (x0 - 0.5) / scale + 0.5
    f = (y0 - 0.5) / scale + 0.5
    out = image.transform((w, h), Image.AFFINE, (1 / scale, 0, c, 0, 1 / scale, f), resample=resample)
    return np.asarray(out)


def crop_viewpoint(view: dict, category: str, options: Pascal3DOptions):
    """Crop geometry: ``(x0, y0, scale)`` and the crop's viewpoint (angles DEGREES, 0-based px, py)."""
    scale = view["distance"] / options.crop_distance()  # NeMo: resize_rate = distance / 5
    px0, py0 = view["px"] - 1.0, view["py"] - 1.0  # MATLAB 1-based -> 0-based
    size = options.crop_size(category)
    x0, y0 = crop_transform(px0, py0, scale, size)
    new = dict(view, distance=options.crop_distance(), px=px0 * scale - x0, py=py0 * scale - y0)
    return x0, y0, scale, new


def crop_box(view: dict, image_size: tuple[int, int], x0: int, y0: int, scale: float) -> np.ndarray:
    """``[4]`` float32 ``(x0, y0, x1, y1)`` in crop pixels: the object's annotated box (``bbox``,
    MATLAB 1-based inclusive pixel indices) intersected with the image (``image_size = (h, w)``),
    both as pixel extents (pixel ``j`` spans ``[j - 0.5, j + 0.5]``) mapped into the crop. NeMo
    counts a vertex visible only inside the box (its ``MeshConverter.get_one``); the intersection
    also keeps vertices off the crop's zero padding."""
    h, w = image_size
    bx0, by0, bx1, by1 = (float(v) - 1.0 for v in view["bbox"])  # 0-based pixel indices
    lo_x, hi_x = max(bx0, 0.0) - 0.5, min(bx1, w - 1.0) + 0.5
    lo_y, hi_y = max(by0, 0.0) - 0.5, min(by1, h - 1.0) + 0.5
    if hi_x <= lo_x or hi_y <= lo_y:
        raise Skip("bbox outside the image")
    return np.array([lo_x * scale - x0, lo_y * scale - y0, hi_x * scale - x0, hi_y * scale - y0], np.float32)


def inside_box(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``[V]`` bool: ``points [V, 2]`` (x, y) lie in ``box = (x0, y0, x1, y1)`` (closed)."""
    x, y = points[:, 0], points[:, 1]
    return (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])


def _camera_args(view: dict) -> list[np.float32]:
    """``camera_from_viewpoint`` arguments of a view (angles DEGREES -> radians)."""
    angles = [np.float32(np.deg2rad(view[k])) for k in ("azimuth", "elevation", "theta")]
    return angles + [np.float32(view[k]) for k in ("distance", "px", "py", "focal", "viewport")]


@functools.partial(jax.jit, static_argnames=("settings",))
def _project(vertices, faces, az, el, th, dist, px, py, focal, viewport, settings):
    cam = camera_from_viewpoint(az, el, th, dist, px, py, focal, viewport)
    return project_with_visibility(vertices, faces, cam, settings)


def neural_keypoints(mesh: tuple[np.ndarray, np.ndarray], view: dict, size) -> tuple[np.ndarray, np.ndarray]:
    """kp2d ``[V, 2]`` and visible ``[V]`` of the neural mesh in a crop (view angles in DEGREES)."""
    settings = RasterSettings(
        height=size[0], width=size[1], tile_height=16, tile_width=16, cull_backfaces=True
    )
    kp, vis, overflow = jax.device_get(_project(mesh[0], mesh[1], *_camera_args(view), settings))
    if int(overflow) != 0:
        raise RuntimeError(f"rasterizer tile budget overflow ({int(overflow)}) for crop size {size}")
    return kp.astype(np.float32), vis.astype(bool)


@functools.partial(jax.jit, static_argnames=("settings",))
def _silhouette(vertices, faces, az, el, th, dist, px, py, focal, viewport, settings):
    cam = camera_from_viewpoint(az, el, th, dist, px, py, focal, viewport)
    out = render(vertices, faces, cam, settings)
    return out.coverage > 0, out.overflow


def cad_silhouette(mesh: tuple[np.ndarray, np.ndarray], view: dict, size) -> np.ndarray:
    """``[H, W]`` uint8 object mask: the CAD mesh rendered (hard, no culling: CAD models are not
    always closed) at ``view`` (angles DEGREES, 0-based px, py). Faces may be padded with -1."""
    budget = None
    for _ in range(4):
        settings = RasterSettings(
            height=size[0], width=size[1], tile_height=16, tile_width=16, tile_budget=budget
        )
        mask, overflow = jax.device_get(_silhouette(mesh[0], mesh[1], *_camera_args(view), settings))
        if int(overflow) == 0:
            return mask.astype(np.uint8)
        budget = 4 * settings.budget(len(mesh[1]))
    raise RuntimeError(f"rasterizer tile budget overflow for a CAD silhouette of crop size {size}")


def make_example(
    image, view, category, options, mesh, example_id, level=0, occluder=None, cad=None, rng=None
) -> dict:
    """Crops ``image`` (PIL) around the viewpoint and assembles an example dict (angles RADIANS).

    ``occluder``: ``[h, w]`` occluder mask of the full image (OccludedPASCAL3D+). ``cad``: the
    (padded) CAD mesh, to add ``object_mask``; with ``level > 0`` and ``rng``, synthetic occluders
    are pasted so that ``LEVELS[level]`` of the object mask is covered.
    """
    x0, y0, scale, new = crop_viewpoint(view, category, options)
    size = options.crop_size(category)
    box = crop_box(view, (image.height, image.width), x0, y0, scale)
    kp2d, visible = neural_keypoints(mesh, new, size)
    visible &= inside_box(kp2d, box)
    if not visible.any():
        raise Skip("no visible vertex in the crop")
    example = {
        "id": example_id,
        "image": crop(image, x0, y0, scale, size),
        **{k: np.float32(np.deg2rad(new[k])) for k in ("azimuth", "elevation", "theta")},
        **{k: np.float32(new[k]) for k in ("distance", "px", "py", "focal", "viewport")},
        "category": category,
        "cad_index": np.int32(view["cad_index"]),
        "kp2d": kp2d,
        "visible": visible,
        "box": box,
        "occlusion_level": np.int32(level),
    }
    if occluder is not None:
        mask_img = Image.fromarray((np.asarray(occluder) > 0).astype(np.uint8) * 255)
        example["occluder_mask"] = (crop(mask_img, x0, y0, scale, size, Image.NEAREST) > 127).astype(np.uint8)
    if cad is not None:
        object_mask = cad_silhouette(cad, new, size)
        if not object_mask.any():
            raise Skip("object outside the crop")
        example["object_mask"] = object_mask
        example["image"], example["occluder_mask"], _ = occlusion.occlude(
            example["image"], object_mask, level, rng
        )
    return example


def load_cad_mat(path: str, category: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The CAD models of a PASCAL3D+ ``CAD/{category}.mat``: a struct array named ``category`` with
    ``vertices [N, 3]`` and ``faces [M, 3]`` (MATLAB 1-based) per sub-type. ``ValueError`` naming
    the file and field otherwise."""
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as err:
        raise ValueError(f"{path}: unreadable CAD .mat ({type(err).__name__}: {err})") from err
    if category not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: field {category!r} missing (has {keys})")
    meshes = []
    for i, model in enumerate(np.atleast_1d(mat[category])):
        try:
            vertices = np.asarray(model.vertices, np.float32).reshape(-1, 3)
            faces = np.asarray(model.faces, np.int64).reshape(-1, 3) - 1
        except (AttributeError, ValueError) as err:
            raise ValueError(f"{path}: field '{category}({i + 1}).vertices/faces' unusable ({err})") from err
        if len(vertices) == 0 or len(faces) == 0 or faces.min() < 0 or faces.max() >= len(vertices):
            raise ValueError(f"{path}: field '{category}({i + 1}).faces' indexes outside its vertices")
        meshes.append((vertices, faces.astype(np.int32)))
    return meshes


def read_list(path: str) -> list[str]:
    """Image names of a list file: the first token per line, without an image suffix (the
    OccludedPASCAL3D+ release lists ``name.JPEG``, PASCAL3D+'s Image_sets bare names); blank lines
    and VOC-style negative entries (``name -1``) are left out; duplicates are kept once (first
    occurrence)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing image-set list")
    names = []
    with open(path) as fh:
        for line in fh:
            tokens = line.split()
            if tokens and not (len(tokens) > 1 and tokens[1] == "-1"):
                names.append(strip_image_suffix(tokens[0]))
    return list(dict.fromkeys(names))


def strip_image_suffix(name: str) -> str:
    """``name`` without a trailing image suffix of :data:`IMAGE_SUFFIXES` (``a.JPEG`` -> ``a``)."""
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


class _Pascal3DFamily(builders.NemoBuilder, skip_registration=True):
    """Shared machinery: categories, CAD meshes, per-example skips."""

    DEFAULT_CATEGORIES = PASCAL_CATEGORIES
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Place PASCAL3D+_release1.1/ (and OccludedPASCAL3D+/) in manual_dir."
    has_box = True

    def __init__(self, *, options: Pascal3DOptions | None = None, **kwargs):
        options = options or Pascal3DOptions()
        if not options.categories:
            options = dataclasses.replace(options, categories=self.DEFAULT_CATEGORIES)
        for c in options.categories:
            if c not in self.DEFAULT_CATEGORIES:
                raise ValueError(
                    f"{self.name}: unknown category {c!r}; known: {', '.join(self.DEFAULT_CATEGORIES)}"
                )
        if options.synthetic_occlusion:
            if self.name != "pascal3d":
                raise ValueError(f"{self.name}: option synthetic_occlusion is for pascal3d only")
            self.has_object_mask = self.has_occluder_mask = True
        super().__init__(options=options, **kwargs)
        self._meshes = {}
        self._cads = {}

    def categories(self):
        return self.options.categories

    def image_shape(self):
        sizes = {self.options.crop_size(c) for c in self.options.categories}
        return (*sizes.pop(), 3) if len(sizes) == 1 else (None, None, 3)

    def root(self, sub: str) -> str:
        manual = self.options.manual_dir
        if not manual or not os.path.isdir(manual):
            raise FileNotFoundError(f"{manual or '<empty>'}: manual_dir does not exist (--manual_dir)")
        return _require_dir(os.path.join(manual, sub), sub)

    def cad_folder(self, category: str) -> str:
        return os.path.join(self.root(PASCAL_ROOT), "CAD", category)

    REQUIRED_ROOTS = (PASCAL_ROOT,)

    def _split_generators(self, dl_manager):
        for sub in self.REQUIRED_ROOTS:  # fail before anything is written
            self.root(sub)
        return super()._split_generators(dl_manager)

    def load_cads(self, category: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """The category's CAD models, in ``cad_index`` order: ``CAD/{cat}/NN.off`` (NeMo's
        converted meshes), else the release's ``CAD/{cat}.mat``."""
        folder = self.cad_folder(category)
        if os.path.isdir(folder):
            names = sorted(n for n in os.listdir(folder) if n.endswith(".off") and n[:-4].isdigit())
            if names:
                return [load_off(os.path.join(folder, n)) for n in names]
        mat = folder + ".mat"
        if os.path.isfile(mat):
            return load_cad_mat(mat, category)
        raise FileNotFoundError(f"{folder}: no NN.off CAD files (and no {os.path.basename(mat)})")

    def write_meshes(self, dataset_dir):
        for cat in self.options.categories:
            cad = self.load_cads(cat)
            neural = single_cuboid([v for v, _ in cad], self.options.coverage, self.options.neural_vertices)
            self._meshes[cat] = neural
            self._cads[cat] = pad_to_common(cad)  # one compile for all CAD models
            meshes_lib.write_meshes(dataset_dir, cat, cad, neural)

    def _keep_azimuth(self, split, view) -> bool:
        subset = splits.azimuth_subset(split, self.options.pose_split)
        if subset == "all":
            return True
        return bool(splits.in_seen_bins(view["azimuth"]) == (subset == "seen"))

    def guarded(self, split, fn, *args):
        """Runs ``fn(*args)``; a :class:`Skip` is counted, anything else propagates (the build fails)."""
        try:
            return fn(*args)
        except Skip as skip:
            self.stats.skip(split, str(skip))
            return None


class Pascal3D(_Pascal3DFamily, skip_registration=True):
    """PASCAL3D+ release1.1, ImageNet subset, NeMo crops (splits: train, val)."""

    name = "pascal3d"

    def split_names(self):
        if self.options.synthetic_occlusion:
            return ("train", "val", *splits.TEST_SPLITS.values())
        if self.options.pose_split == "unseen":  # L0 on the unseen azimuths of the val images
            return ("train", "val", splits.TEST_SPLITS[0])
        return ("train", "val")

    def examples(self, split):
        root = self.root(PASCAL_ROOT)
        for cat in self.options.categories:
            listed = "val" if split.startswith("test_") else split  # synthetic occlusion of val
            names = read_list(os.path.join(root, "Image_sets", f"{cat}_imagenet_{listed}.txt"))
            ann_dir = _require_dir(
                os.path.join(root, "Annotations", f"{cat}_imagenet"), f"Annotations/{cat}_imagenet"
            )
            img_dir = _require_dir(os.path.join(root, "Images", f"{cat}_imagenet"), f"Images/{cat}_imagenet")
            for name in names:
                ex = self.guarded(split, self._one, split, cat, name, ann_dir, img_dir)
                if ex is not None:
                    yield ex

    def _one(self, split, cat, name, ann_dir, img_dir):
        path = os.path.join(ann_dir, name + ".mat")
        view = first_object(load_record(path), cat, path)
        if not self._keep_azimuth(split, view):
            raise Skip("azimuth outside the pose split")
        image = load_image(image_path(img_dir, name))
        if not self.options.synthetic_occlusion:
            return make_example(image, view, cat, self.options, self._meshes[cat], f"{cat}/{name}")
        cads = self._cads[cat]
        if not 1 <= view["cad_index"] <= len(cads):
            raise ValueError(
                f"{path}: field 'objects.cad_index' = {view['cad_index']}, CAD/{cat} has {len(cads)}"
            )
        level = next((k for k, v in splits.TEST_SPLITS.items() if v == split), 0)
        rng = np.random.default_rng([self.options.seed, level, zlib.crc32(name.encode())])
        return make_example(
            image, view, cat, self.options, self._meshes[cat], f"{cat}/{name}", level,
            cad=cads[view["cad_index"] - 1], rng=rng,
        )  # fmt: skip


class OccludedPascal3D(_Pascal3DFamily, skip_registration=True):
    """OccludedPASCAL3D+ levels L1-L3 (FGL{l}_BGL{l}); viewpoints joined from PASCAL3D+ by image name."""

    name = "occluded_pascal3d"
    has_occluder_mask = True
    REQUIRED_ROOTS = (PASCAL_ROOT, OCCLUDED_ROOT)

    def split_names(self):
        return tuple(splits.TEST_SPLITS[level] for level in (1, 2, 3))

    def examples(self, split):
        level = next(k for k, v in splits.TEST_SPLITS.items() if v == split)
        root = self.root(OCCLUDED_ROOT)
        pascal = self.root(PASCAL_ROOT)
        for cat in self.options.categories:
            folder = f"{cat}FGL{level}_BGL{level}"
            ann_dir = _require_dir(os.path.join(root, "annotations", folder), f"annotations/{folder}")
            img_dir = _require_dir(os.path.join(root, "images", folder), f"images/{folder}")
            list_path = os.path.join(root, "lists", folder + ".txt")
            if os.path.isfile(list_path):
                names = read_list(list_path)
            else:
                names = sorted(n[:-4] for n in os.listdir(ann_dir) if n.endswith(".npz"))
            for name in names:
                ex = self.guarded(split, self._one, split, cat, name, level, ann_dir, img_dir, pascal)
                if ex is not None:
                    yield ex

    def _one(self, split, cat, name, level, ann_dir, img_dir, pascal):
        npz_path = os.path.join(ann_dir, name + ".npz")
        if not os.path.isfile(npz_path):
            raise Skip("missing annotation .npz")
        # Only the two fields used are read, and never through pickle: an .npz field holding a
        # pickled object could run code on load. A pickled 'source' falls back to the file's name.
        ann = {}
        try:
            with np.load(npz_path, allow_pickle=False) as npz:
                for key in ("occluder_mask", "source"):
                    if key in npz.files:
                        try:
                            ann[key] = npz[key]
                        except ValueError as err:  # an object array: needs pickle, never read
                            if key == "occluder_mask":
                                raise ValueError(f"field 'occluder_mask' is a pickled object: {err}") from err
        except Exception as err:
            raise ValueError(f"{npz_path}: corrupt annotation .npz ({type(err).__name__}: {err})") from err
        if "occluder_mask" not in ann:
            raise ValueError(f"{npz_path}: field 'occluder_mask' missing")
        source = str(ann.get("source", name))
        clean = os.path.splitext(os.path.basename(source))[0] if source else name
        mat = os.path.join(pascal, "Annotations", f"{cat}_imagenet", clean + ".mat")
        if not os.path.isfile(mat):
            raise Skip("no PASCAL3D+ annotation for the image")
        view = first_object(load_record(mat), cat, mat)
        if not self._keep_azimuth(split, view):
            raise Skip("azimuth outside the pose split")
        image = load_image(image_path(img_dir, name))
        occluder = np.asarray(ann["occluder_mask"])
        if occluder.shape != (image.height, image.width):
            raise Skip("occluder_mask shape differs from the image")
        return make_example(
            image, view, cat, self.options, self._meshes[cat], f"{cat}/{name}", level, occluder
        )


def load_objectnet_cads(path: str, category: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The CAD models of ``category`` in ObjectNet3D's ``CAD/cads.mat`` (its toolbox's
    ``show_pose_annotations.m``: ``cads`` a cell array with one struct array of ``vertices [N, 3]``
    and ``faces [M, 3]`` (MATLAB 1-based) per class, in the order of ``class_names``). ``ValueError``
    naming the file and field otherwise."""
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as err:
        raise ValueError(f"{path}: unreadable CAD .mat ({type(err).__name__}: {err})") from err
    for field in ("cads", "class_names"):
        if field not in mat:
            raise ValueError(f"{path}: field {field!r} missing")
    names = [str(n).strip() for n in np.atleast_1d(mat["class_names"])]
    cads = np.atleast_1d(mat["cads"])
    if len(cads) != len(names):
        raise ValueError(f"{path}: field 'cads' has {len(cads)} entries, 'class_names' {len(names)}")
    if category not in names:
        raise ValueError(f"{path}: field 'class_names' has no {category!r}")
    meshes = []
    for i, model in enumerate(np.atleast_1d(cads[names.index(category)])):
        where = f"cads{{{names.index(category) + 1}}}({i + 1})"
        try:
            vertices = np.asarray(model.vertices, np.float32).reshape(-1, 3)
            faces = np.asarray(model.faces, np.int64).reshape(-1, 3) - 1
        except (AttributeError, ValueError) as err:
            raise ValueError(f"{path}: field '{where}.vertices/faces' unusable ({err})") from err
        if len(vertices) == 0 or len(faces) == 0 or faces.min() < 0 or faces.max() >= len(vertices):
            raise ValueError(f"{path}: field '{where}.faces' indexes outside its vertices")
        meshes.append((vertices, faces.astype(np.int32)))
    return meshes


class ObjectNet3D(_Pascal3DFamily, skip_registration=True):
    """ObjectNet3D as NeMo's experiments use it (splits: train, val), in the release's layout:
    ``Images/{id}.JPEG``, ``Annotations/{id}.mat`` (``record.objects``: ``class``, ``bbox``,
    ``cad_index``, ``viewpoint`` with ``azimuth`` / ``elevation`` or their ``_coarse`` forms,
    ``theta``, ``distance``, ``focal``, ``px``, ``py``, ``viewport``), ``CAD/off/{cat}/NN.off`` or
    ``CAD/cads.mat``, ``Image_sets/{train,val,test}.txt``.

    NeMo's protocol (its refactor, github wufeim/NeMo ``data/prepare_objectnet3d.py`` with
    ``prepare_mode: first``, ``nemo/utils/data_preparation.py``): the 18 categories of
    :data:`OBJECTNET3D_CATEGORIES`, an image counts for a category only when its FIRST annotated
    object is of that category (and usable), one 640 x 800 crop for every category
    (:data:`OBJECTNET3D_CROP_SIZES`) made as PASCAL3D+'s (rescaled to distance 5, centred on the
    principal point). The image lists: NeMo's per-category ``lists/{cat}_imagenet_{split}.txt``
    (the refactor's ``ObjectNet3D_lists.zip``, not part of the release) when the tree has them,
    else the release's ``Image_sets/{split}.txt``, each image going to its first object's class.
    """

    name = "objectnet3d"
    DEFAULT_CATEGORIES = OBJECTNET3D_CATEGORIES
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Place ObjectNet3D/ in manual_dir."
    REQUIRED_ROOTS = (OBJECTNET_ROOT,)

    def split_names(self):
        if self.options.pose_split == "unseen":  # L0 on the unseen azimuths of the val images
            return ("train", "val", splits.TEST_SPLITS[0])
        return ("train", "val")

    def cad_folder(self, category):
        return os.path.join(self.root(OBJECTNET_ROOT), "CAD", "off", category)

    def load_cads(self, category: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """``CAD/off/{cat}/NN.off`` (what NeMo's refactor reads), else the release's ``CAD/cads.mat``."""
        folder = self.cad_folder(category)
        if os.path.isdir(folder):
            names = sorted(n for n in os.listdir(folder) if n.endswith(".off") and n[:-4].isdigit())
            if names:
                return [load_off(os.path.join(folder, n)) for n in names]
        mat = os.path.join(self.root(OBJECTNET_ROOT), "CAD", "cads.mat")
        if os.path.isfile(mat):
            return load_objectnet_cads(mat, category)
        raise FileNotFoundError(f"{folder}: no NN.off CAD files (and no {mat})")

    def examples(self, split):
        root = self.root(OBJECTNET_ROOT)
        listed = "val" if split.startswith("test_") else split
        ann_dir = _require_dir(os.path.join(root, "Annotations"), "Annotations")
        img_dir = _require_dir(os.path.join(root, "Images"), "Images")
        lists = os.path.join(root, "lists")
        if os.path.isdir(lists):  # NeMo's per-category lists
            for cat in self.options.categories:
                for name in read_list(os.path.join(lists, f"{cat}_imagenet_{listed}.txt")):
                    ex = self.guarded(split, self._listed, split, cat, name, ann_dir, img_dir)
                    if ex is not None:
                        yield ex
            return
        for name in read_list(os.path.join(root, "Image_sets", f"{listed}.txt")):
            path = os.path.join(ann_dir, name + ".mat")
            record = self.guarded(split, load_record, path)
            if record is None:
                continue
            objects = self.guarded(split, record_objects, record)
            cat = str(getattr(objects[0], "class", "")).strip() if objects else ""
            if cat in self.options.categories:  # the image belongs to its first object's class
                ex = self.guarded(split, self._one, split, cat, objects[0], name, img_dir)
                if ex is not None:
                    yield ex

    def _listed(self, split, cat, name, ann_dir, img_dir):
        objects = record_objects(load_record(os.path.join(ann_dir, name + ".mat")))
        if str(getattr(objects[0], "class", "")).strip() != cat:
            raise Skip(f"first object is not a '{cat}'")
        return self._one(split, cat, objects[0], name, img_dir)

    def _one(self, split, cat, obj, name, img_dir):
        view = object_view(obj, coarse_fallback=True)
        if not self._keep_azimuth(split, view):
            raise Skip("azimuth outside the pose split")
        image = load_image(image_path(img_dir, name))
        return make_example(image, view, cat, self.options, self._meshes[cat], f"{cat}/{name}")
