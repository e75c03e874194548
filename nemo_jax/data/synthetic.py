"""The embedded synthetic dataset: procedural categories rendered by the project's rasterizer.

Each example is a crop in NeMo's convention: the object's CAD origin sits on the optical axis at a
fixed distance, the principal point is the image centre, ``focal = 1`` and ``viewport = 3000`` (so the
distance is large, chosen so the object fills ``fill`` of the image). Viewpoints: azimuth uniform in
``[0, 360)`` (or NeMo's seen/unseen halves), elevation and in-plane rotation theta uniform in
configurable ranges. Appearance: per-part procedural textures evaluated at the rendered 3D surface
point, Lambertian shading under a random light, random backgrounds (noise, stripes, blobs).

Splits: ``train``, ``val`` (clean) and the test sets ``test_l0`` (clean) and ``test_l1..3``: the
same images as ``test_l0`` with pasted occluders covering 20-40 / 40-60 / 60-80 % of the object mask.

Everything is deterministic given ``SyntheticOptions.seed``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

from nemo_jax.data import occlusion, shapes, splits
from nemo_jax.geometry import camera_from_viewpoint
from nemo_jax.geometry.camera import camera_centre
from nemo_jax.mesh import single_cuboid
from nemo_jax.mesh.padding import pad_rows, round_up
from nemo_jax.render import RasterSettings, render
from nemo_jax.render.visibility import project_with_visibility

FOCAL, VIEWPORT = 1.0, 3000.0
SPLITS = ("train", "val", *splits.TEST_SPLITS.values())


@dataclasses.dataclass(frozen=True)
class SyntheticOptions:
    """Sizes and sampling ranges of the synthetic dataset (defaults: CPU demo size).

    Attributes:
      categories: names from :data:`nemo_jax.data.shapes.CATEGORIES`.
      height, width: image size in pixels.
      train_per_category, val_per_category, test_per_category: examples per category per split
        (``test_per_category`` for each of the four test levels).
      neural_vertices: target vertex count of each category's SingleCuboid neural mesh.
      coverage: SingleCuboid coverage of the CAD vertices.
      elevation_deg, theta_deg: uniform sampling ranges, DEGREES.
      fill: largest object extent (1 CAD unit) over the smaller image side, sets the distance.
      pose_split: 'all' or 'unseen' (NeMo's unseen-pose protocol: train/val seen azimuth bins,
        test sets unseen bins).
      render_batch: views rendered per jitted call.
      seed: the dataset's seed.
    """

    categories: tuple[str, ...] = ("car", "chair", "aeroplane")
    height: int = 64
    width: int = 64
    train_per_category: int = 800
    val_per_category: int = 20
    test_per_category: int = 20
    neural_vertices: int = 300
    coverage: float = 0.99
    elevation_deg: tuple[float, float] = (-10.0, 40.0)
    theta_deg: tuple[float, float] = (-15.0, 15.0)
    fill: float = 0.6
    pose_split: str = "all"
    render_batch: int = 32
    seed: int = 0

    def __post_init__(self):
        for c in self.categories:
            if c not in shapes.CATEGORIES:
                raise ValueError(
                    f"SyntheticOptions.categories: unknown category {c!r}; known: {shapes.CATEGORIES}"
                )
        if not self.categories:
            raise ValueError("SyntheticOptions.categories: empty")
        for name in ("height", "width", "neural_vertices", "render_batch"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"SyntheticOptions.{name}: must be > 0, got {getattr(self, name)}")
        for name in ("train_per_category", "val_per_category", "test_per_category"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"SyntheticOptions.{name}: must be >= 0, got {getattr(self, name)}")
        if self.pose_split not in splits.POSE_SPLITS:
            raise ValueError(f"SyntheticOptions.pose_split: must be one of {splits.POSE_SPLITS}")

    @property
    def distance(self) -> float:
        """Camera distance (CAD units) at which 1 CAD unit spans ``fill * min(H, W)`` pixels."""
        return FOCAL * VIEWPORT / (self.fill * min(self.height, self.width))

    def count(self, split: str) -> int:
        """Examples per category in ``split``."""
        if split == "train":
            return self.train_per_category
        if split == "val":
            return self.val_per_category
        if split in splits.TEST_SPLITS.values():
            return self.test_per_category
        raise ValueError(f"synthetic: unknown split {split!r}; known: {SPLITS}")


def category_meshes(options: SyntheticOptions) -> dict[str, dict[str, np.ndarray]]:
    """Per category: ``cad_vertices, cad_faces`` (the procedural CAD model) and ``neural_vertices,
    neural_faces`` (its SingleCuboid)."""
    out = {}
    for name in options.categories:
        cat = shapes.make_category(name)
        nv, nf = single_cuboid([cat.vertices], options.coverage, options.neural_vertices)
        out[name] = {
            "cad_vertices": cat.vertices,
            "cad_faces": cat.faces,
            "neural_vertices": nv,
            "neural_faces": nf,
        }
    return out


@functools.partial(jax.jit, static_argnames=("settings",))
def _render_views(obj_v, obj_f, neu_v, neu_f, az, el, th, dist, px, py, settings):
    """Renders ``[B]`` views (radians): surface points ``[B,H,W,3]``, face index, coverage, depth,
    neural-mesh kp2d ``[B,V,2]``, visibility ``[B,V]`` and the total tile overflow."""
    cams = jax.vmap(lambda *a: camera_from_viewpoint(*a, focal=FOCAL, viewport=VIEWPORT))(
        az, el, th, dist, px, py
    )

    def one(cam):
        out = render(obj_v, obj_f, cam, settings, attributes=obj_v)
        kp, vis, ovf = project_with_visibility(neu_v, neu_f, cam, settings)
        return out.features, out.face_index, out.coverage, kp, vis, out.overflow + ovf

    points, face_index, coverage, kp, vis, overflow = jax.vmap(one)(cams)
    return points, face_index, coverage, kp, vis, jnp.sum(overflow)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random background ``[H, W, 3]`` float in [0, 1]: smooth noise, stripes or blobs."""
    kind = rng.integers(3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == 0:
        cells = rng.uniform(0, 1, (max(2, height // 8), max(2, width // 8), 3))
        img = np.asarray(
            Image.fromarray((cells * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
        )
        img = img / 255.0
    elif kind == 1:
        a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        angle, freq = rng.uniform(0, np.pi), rng.uniform(0.1, 0.6)
        t = 0.5 + 0.5 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 6.3))
        img = a * t[..., None] + b * (1 - t[..., None])
    else:
        canvas = Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(4, 12))):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            rx, ry = rng.uniform(2, width / 3), rng.uniform(2, height / 3)
            draw.ellipse(
                [cx - rx, cy - ry, cx + rx, cy + ry], fill=tuple(int(c) for c in rng.integers(0, 256, 3))
            )
        img = np.asarray(canvas) / 255.0
    return (img + rng.normal(0, 0.03, img.shape)).clip(0, 1).astype(np.float32)


def _sample_view(rng: np.random.Generator, options: SyntheticOptions, subset: str) -> dict[str, float]:
    """One viewpoint in DEGREES and the scene's light."""
    return {
        "azimuth": splits.sample_azimuth(rng, subset),
        "elevation": float(rng.uniform(*options.elevation_deg)),
        "theta": float(rng.uniform(*options.theta_deg)),
        "light_az": float(rng.uniform(-60, 60)),
        "light_el": float(rng.uniform(-20, 50)),
        "ambient": float(rng.uniform(0.3, 0.55)),
        "diffuse": float(rng.uniform(0.45, 0.75)),
    }


def _example_rng(options: SyntheticOptions, split: str, cat_index: int, index: int) -> np.random.Generator:
    base = "test_l0" if split in splits.TEST_SPLITS.values() else split  # all levels share the clean views
    return np.random.default_rng([options.seed, SPLITS.index(base), cat_index, index])


def generate(options: SyntheticOptions, split: str) -> Iterator[dict]:
    """Yields the examples of ``split`` (numpy fields, image as an array; see ``nemo_jax.data``).

    Raises ``RuntimeError`` if a render overflows its tile budget (the annotation would be wrong).
    """
    count = options.count(split)
    level = next((k for k, v in splits.TEST_SPLITS.items() if v == split), 0)
    subset = splits.azimuth_subset(split, options.pose_split)
    h, w = options.height, options.width
    settings = RasterSettings(height=h, width=w, cull_backfaces=True, tile_height=8, tile_width=8)
    px, py = (w - 1) / 2.0, (h - 1) / 2.0
    meshes = category_meshes(options)
    # One static shape for every category (one compile): pad vertices with zeros, faces with -1.
    sizes = {k: round_up(max(len(m[k]) for m in meshes.values()), 64) for k in next(iter(meshes.values()))}
    for ci, name in enumerate(options.categories):
        cat = shapes.make_category(name)
        tex = shapes.texture_arrays(cat)
        normals = np.asarray(shapes.trimesh.Trimesh(cat.vertices, cat.faces, process=False).face_normals)
        mesh = meshes[name]
        num_neural = len(mesh["neural_vertices"])
        for start in range(0, count, options.render_batch):
            idx = list(range(start, min(count, start + options.render_batch)))
            rngs = [_example_rng(options, split, ci, i) for i in idx]
            views = [_sample_view(r, options, subset) for r in rngs]
            pad = options.render_batch - len(idx)  # static batch shape: pad with the last view
            arr = {k: np.array([v[k] for v in views] + [views[-1][k]] * pad, np.float32) for k in views[0]}
            n = len(arr["azimuth"])
            points, face_index, coverage, kp, vis, overflow = jax.device_get(
                _render_views(
                    *(
                        jnp.asarray(pad_rows(mesh[k], sizes[k]))
                        for k in ("cad_vertices", "cad_faces", "neural_vertices", "neural_faces")
                    ),
                    jnp.deg2rad(arr["azimuth"]),
                    jnp.deg2rad(arr["elevation"]),
                    jnp.deg2rad(arr["theta"]),
                    jnp.full(n, options.distance, jnp.float32),
                    jnp.full(n, px, jnp.float32),
                    jnp.full(n, py, jnp.float32),
                    settings,
                )
            )
            if int(overflow) != 0:
                raise RuntimeError(
                    f"synthetic {name}: rasterizer tile budget overflow ({int(overflow)} tiles)"
                )
            for b, (i, r, v) in enumerate(zip(idx, rngs, views, strict=True)):
                mask = coverage[b] > 0
                fidx = np.maximum(face_index[b], 0)
                albedo = shapes.shade_texture(points[b], cat.face_part[fidx], tex)
                light = np.asarray(
                    camera_centre(
                        jnp.deg2rad(v["azimuth"] + v["light_az"]),
                        jnp.deg2rad(v["light_el"]),
                        jnp.float32(1.0),
                    )
                )
                lambert = np.clip(normals[fidx] @ light, 0.0, 1.0)
                tint = r.uniform(0.85, 1.0, 3)
                shaded = albedo * (v["ambient"] + v["diffuse"] * lambert)[..., None] * tint
                img = np.where(mask[..., None], shaded, background(r, h, w))
                img = (img + r.normal(0, 0.01, img.shape)).clip(0, 1)
                image = np.round(img * 255).astype(np.uint8)
                object_mask = mask.astype(np.uint8)
                occ_rng = np.random.default_rng([options.seed, 100 + level, ci, i])
                if object_mask.sum() == 0:
                    raise RuntimeError(f"synthetic {name} example {i}: the object is not in the image")
                image, occluder_mask, _ = occlusion.occlude(image, object_mask, level, occ_rng)
                yield {
                    "id": f"{name}_{split}_{i:05d}",
                    "image": image,
                    "azimuth": np.float32(np.deg2rad(v["azimuth"])),
                    "elevation": np.float32(np.deg2rad(v["elevation"])),
                    "theta": np.float32(np.deg2rad(v["theta"])),
                    "distance": np.float32(options.distance),
                    "px": np.float32(px),
                    "py": np.float32(py),
                    "focal": np.float32(FOCAL),
                    "viewport": np.float32(VIEWPORT),
                    "category": name,
                    "cad_index": np.int32(1),
                    "kp2d": kp[b, :num_neural].astype(np.float32),
                    "visible": vis[b, :num_neural].astype(bool),
                    "object_mask": object_mask,
                    "occluder_mask": occluder_mask,
                    "occlusion_level": np.int32(level),
                }
