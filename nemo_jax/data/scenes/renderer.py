"""The scene renderer: a procedural object, shaded and textured, on a textured background.

Geometry goes through the project's rasterizer (:func:`nemo_jax.render.render`, hard z-buffer, one
jitted and vmapped call per batch of views): per pixel the visible face and its 3D surface point. The
rest is numpy on the host, per image:
  * albedo: each appearance group's texture at the surface point (:mod:`.textures`);
  * light: hemispheric ambient + Lambertian diffuse from the view's light direction + a Blinn-Phong
    highlight, tinted by a random light colour;
  * a soft shadow on the ground: the mesh flattened onto its ground plane along the light,
    rasterized in the same call, blurred, darkening the background (objects that stand on the
    ground only);
  * a background (:mod:`.backgrounds`), then the camera: white balance, exposure, mild blur and
    sensor noise; :func:`encode_jpeg` adds JPEG compression at a random quality.
"""

from __future__ import annotations

import dataclasses
import functools
import io

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageFilter

from nemo_jax.data.scenes import backgrounds, textures
from nemo_jax.data.scenes.primitives import Model
from nemo_jax.data.scenes.views import CANVAS, FOCAL, VIEWPORT, SceneView
from nemo_jax.geometry import camera_from_viewpoint
from nemo_jax.geometry.camera import camera_centre
from nemo_jax.mesh.padding import round_up
from nemo_jax.render import RasterSettings, render

#: Views rasterized per jitted call.
RENDER_BATCH = 8
#: Meshes are padded to multiples of these sizes, so that every procedural model (at most 2,297
#: vertices and 4,386 faces) shares one compiled rasterizer.
PAD_VERTICES, PAD_FACES = 2560, 5120
_LATTICE = 16


@dataclasses.dataclass(frozen=True)
class Rendered:
    """One object rendered without background.

    Attributes:
      rgb: ``[H, W, 3]`` float32 shaded object colour (zeros off the object).
      mask: ``[H, W]`` bool object pixels.
      shadow: ``[H, W]`` float32 in [0, 1], how much the object's ground shadow darkens each pixel.
    """

    rgb: np.ndarray
    mask: np.ndarray
    shadow: np.ndarray


@functools.partial(jax.jit, static_argnames=("settings", "shadow_settings"))
def _rasterize(vertices, faces, shadow_vertices, az, el, th, dist, px, py, settings, shadow_settings):
    """``[B]`` views (radians) of ``[B, V, 3]`` / ``[B, F, 3]`` meshes: surface points
    ``[B, H, W, 3]``, face index ``[B, H, W]``, the shadow mesh's coverage at half resolution
    ``[B, ceil(H / 2), ceil(W / 2)]`` (it is blurred anyway) and overflows ``[B, 2]``."""

    def cameras(scale):
        # pixel centres at integer coordinates: u -> (u + 0.5) * scale - 0.5
        return jax.vmap(lambda *a: camera_from_viewpoint(*a, focal=FOCAL, viewport=VIEWPORT * scale))(
            az, el, th, dist, (px + 0.5) * scale - 0.5, (py + 0.5) * scale - 0.5
        )

    def one(v, f, sv, cam, half_cam):
        out = render(v, f, cam, settings, attributes=v)
        shadow = render(sv, f, half_cam, shadow_settings)
        return out.features, out.face_index, shadow.coverage, jnp.stack([out.overflow, shadow.overflow])

    return jax.vmap(one)(vertices, faces, shadow_vertices, cameras(1.0), cameras(0.5))


def _flattened(model: Model, light: np.ndarray) -> np.ndarray:
    """The model's vertices projected along ``light`` onto its ground plane (its lowest z)."""
    v = model.vertices
    ground = v[:, 2].min() - 1e-3
    lz = max(float(light[2]), 0.25)
    return (v - light[None, :] * ((v[:, 2:3] - ground) / lz)).astype(np.float32)


def rasterize(models: list[Model], views: list[SceneView], shadows: list[bool], canvas=CANVAS) -> list[dict]:
    """Rasterizes ``models[i]`` at ``views[i]`` on a ``canvas (H, W)``, in batches of
    :data:`RENDER_BATCH`. Returns per view ``points [h, w, 3]`` (CAD frame), ``face_index [h, w]``
    (-1 off the object) and ``shadow [h, w]`` coverage, cut to the view's image size.

    Raises ``RuntimeError`` if the object overflows the tile budget even at 16 times the default.
    """
    n = len(views)
    nv = round_up(max(len(m.vertices) for m in models), PAD_VERTICES)
    nf = round_up(max(len(m.faces) for m in models), PAD_FACES)
    out = []
    for start in range(0, n, RENDER_BATCH):
        idx = list(range(start, min(n, start + RENDER_BATCH)))
        idx_padded = idx + [idx[-1]] * (RENDER_BATCH - len(idx))  # static batch shape
        verts = np.zeros((RENDER_BATCH, nv, 3), np.float32)
        flat = np.zeros((RENDER_BATCH, nv, 3), np.float32)
        faces = np.full((RENDER_BATCH, nf, 3), -1, np.int32)
        for b, i in enumerate(idx_padded):
            m = models[i]
            verts[b, : len(m.vertices)] = m.vertices
            faces[b, : len(m.faces)] = m.faces
            if shadows[i]:
                flat[b, : len(m.vertices)] = _flattened(m, views[i].light)
        angles = [
            np.deg2rad(np.array([getattr(views[i], k) for i in idx_padded], np.float32))
            for k in ("azimuth", "elevation", "theta")
        ]
        scalars = [
            np.array([getattr(views[i], k) for i in idx_padded], np.float32) for k in ("distance", "px", "py")
        ]
        budget = None
        for _ in range(3):
            settings = RasterSettings(
                height=canvas[0], width=canvas[1], cull_backfaces=True, tile_budget=budget
            )
            shadow_settings = RasterSettings(height=(canvas[0] + 1) // 2, width=(canvas[1] + 1) // 2)
            points, face_index, shadow, overflow = jax.device_get(
                _rasterize(verts, faces, flat, *angles, *scalars, settings, shadow_settings)
            )
            if int(overflow[:, 0].sum()) == 0:
                break
            budget = 4 * settings.budget(nf)
        else:
            raise RuntimeError(f"scene renderer: tile budget overflow at canvas {canvas}")
        for b, i in enumerate(idx):
            h, w = views[i].height, views[i].width
            cover = np.zeros((h, w), np.float32)
            if shadows[i] and overflow[b, 1] == 0:  # a shadow that did not fit is left out (no annotation)
                half = Image.fromarray(shadow[b].astype(np.float32), mode="F")
                cover = np.asarray(half.resize((2 * half.width, 2 * half.height), Image.BILINEAR))[:h, :w]
            out.append({"points": points[b, :h, :w], "face_index": face_index[b, :h, :w], "shadow": cover})
    return out


@jax.jit
def _eye(azimuth, elevation, distance):
    """The camera centre (CAD frame) of a view; angles in DEGREES."""
    return camera_centre(jnp.deg2rad(azimuth), jnp.deg2rad(elevation), distance)


def sample_appearances(model: Model, rng: np.random.Generator) -> list[textures.Appearance]:
    """One appearance per group of ``model``; a material ``"=group"`` shares that group's."""
    apps: dict[str, textures.Appearance] = {}
    for group, material in zip(model.groups, model.materials, strict=True):
        if not material.startswith("="):
            apps[group] = textures.sample_appearance(material, rng)
    return [
        apps[m[1:]] if m.startswith("=") else apps[g]
        for g, m in zip(model.groups, model.materials, strict=True)
    ]


def shade(model: Model, view: SceneView, raster: dict, rng: np.random.Generator) -> Rendered:
    """Colours the object pixels of one rasterized view (see the module docstring)."""
    face_index = raster["face_index"]
    mask = face_index >= 0
    rgb = np.zeros((*mask.shape, 3), np.float32)
    apps = sample_appearances(model, rng)
    lattice = rng.uniform(0, 1, (_LATTICE,) * 3).astype(np.float32)
    ambient, diffuse = rng.uniform(0.25, 0.5), rng.uniform(0.55, 0.85)
    light_colour = np.clip(1 + rng.normal(0, 0.05, 3), 0.85, 1.15).astype(np.float32)
    if mask.any():
        f = face_index[mask]
        p = raster["points"][mask]
        group = model.face_group[f]
        normal = model.face_normals[f]
        eye = np.asarray(_eye(*(np.float32(a) for a in (view.azimuth, view.elevation, view.distance))))
        to_eye = eye[None, :] - p
        to_eye /= np.maximum(np.linalg.norm(to_eye, axis=-1, keepdims=True), 1e-9)
        normal = np.where((np.sum(normal * to_eye, -1) < 0)[:, None], -normal, normal)
        lambert = np.clip(normal @ view.light, 0, 1)
        half = view.light[None, :] + to_eye
        half /= np.maximum(np.linalg.norm(half, axis=-1, keepdims=True), 1e-9)
        n_dot_h = np.clip(np.sum(normal * half, -1), 0, 1)
        colour = np.zeros((len(p), 3), np.float32)
        for g in np.unique(group):
            sel = group == g
            app = apps[g]
            base = textures.albedo(app, p[sel], lattice)
            sky = ambient * (0.75 + 0.25 * normal[sel, 2])
            lit = base * (sky + diffuse * lambert[sel])[:, None] + app.emissive * base
            highlight = app.specular * diffuse * n_dot_h[sel] ** app.shininess * (lambert[sel] > 0)
            colour[sel] = lit + highlight[:, None]
        rgb[mask] = colour * light_colour
    shadow = raster["shadow"].astype(np.float32)
    if shadow.any():
        img = Image.fromarray(np.round(shadow * 255).astype(np.uint8))
        radius = rng.uniform(1.5, 6.0)
        shadow = (
            np.asarray(img.filter(ImageFilter.GaussianBlur(radius)), np.float32) / 255 * rng.uniform(0.3, 0.6)
        )
    return Rendered(rgb=rgb, mask=mask, shadow=shadow * ~mask)


def composite(rendered: Rendered, background: np.ndarray) -> np.ndarray:
    """The object over ``background [H, W, 3]`` (float in [0, 1]), its shadow darkening the ground."""
    ground = background * (1 - rendered.shadow[..., None])
    return np.where(rendered.mask[..., None], rendered.rgb, ground)


def camera_effects(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White balance, exposure, mild blur and sensor noise: float ``[H, W, 3]`` -> uint8."""
    img = np.clip(image * rng.uniform(0.94, 1.06, 3), 0, 1) ** rng.uniform(0.85, 1.15)
    pil = Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
    if rng.random() < 0.7:
        pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    img = np.asarray(pil, np.float32) / 255
    img = img + rng.uniform(0.003, 0.02) * rng.standard_normal(img.shape, dtype=np.float32)
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray, rng: np.random.Generator, quality=(75, 95)) -> bytes:
    """``image [H, W, 3]`` uint8 as JPEG bytes at a random quality (deterministic bytes)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(rng.integers(quality[0], quality[1] + 1)))
    return buf.getvalue()


def photograph(
    model: Model, view: SceneView, raster: dict, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One finished photograph: ``(image [H, W, 3] uint8, object_mask [H, W] bool)``."""
    rendered = shade(model, view, raster, rng)
    image = composite(rendered, backgrounds.background(rng, view.height, view.width))
    return camera_effects(image, rng), rendered.mask
