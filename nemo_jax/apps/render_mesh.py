"""A mesh rendered at a PASCAL3D+ viewpoint: object mask, depth and a shaded overlay (for
``nemo-jax-render-mesh``)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from PIL import Image

from nemo_jax.apps.bench import car_mesh
from nemo_jax.geometry import camera_from_viewpoint, check_viewpoint
from nemo_jax.mesh import load_off
from nemo_jax.render import RasterSettings, render_exact, validate_mesh
from nemo_jax.render.memory import check_render_fits
from nemo_jax.viz import checkerboard, face_normals_camera, overlay, shade


def load_mesh(path: str) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices [V, 3], faces [F, 3])`` of an ``.off`` file, or of a car-sized SingleCuboid
    (~1,000 vertices) for ``path == "cuboid"``; checked by :func:`nemo_jax.render.validate_mesh`."""
    if path == "cuboid":
        vertices, faces = car_mesh(1000)
    else:
        vertices, faces = load_off(path)
    validate_mesh(vertices, faces, path)
    return vertices, faces


def render_views(
    vertices,
    faces,
    azimuth_deg: float,
    elevation_deg: float,
    theta_deg: float,
    distance: float,
    px: float,
    py: float,
    height: int,
    width: int,
    focal: float = 1.0,
    viewport: float = 3000.0,
    variant: str = "hard",
    image: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Renders the mesh at a PASCAL3D+ viewpoint.

    Angles in DEGREES as in the annotation files; ``distance`` in CAD units (> 0); ``(px, py)``
    the principal point in the output image's 0-based pixel frame; ``focal * viewport`` is the
    focal length in IMAGE pixels (PASCAL3D+: ``focal = 1``, ``viewport = 3000``). ``image``:
    ``[height, width, 3]`` uint8 to draw the overlay on (default: a checkerboard).

    Returns ``{"mask": [H, W] bool, "depth": [H, W] float32 camera-frame depth (0 on background),
    "overlay": [H, W, 3] uint8}``.

    Raises ``ValueError`` naming a non-finite or non-positive camera value (``--azimuth nan``,
    ``--focal 0`` would otherwise draw an empty mask), and ``MemoryError`` when the render's
    estimated peak memory (:func:`nemo_jax.render.memory.check_render_fits`, before compiling)
    exceeds what the device has.
    """
    for name, value in (("width", width), ("height", height)):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    check_viewpoint(
        prefix="--",
        azimuth=azimuth_deg,
        elevation=elevation_deg,
        theta=theta_deg,
        distance=distance,
        px=px,
        py=py,
        focal=focal,
        viewport=viewport,
    )
    camera = camera_from_viewpoint(
        *(jnp.deg2rad(jnp.float32(a)) for a in (azimuth_deg, elevation_deg, theta_deg)),
        distance=distance,
        px=px,
        py=py,
        focal=focal,
        viewport=viewport,
    )
    settings = RasterSettings(height=height, width=width, variant=variant, tile_height=16, tile_width=16)
    check_render_fits(len(vertices), len(faces), settings, camera)
    out, _ = render_exact(vertices, faces, camera, settings)
    mask = np.asarray(out.coverage) > 0.5
    if image is None:
        image = checkerboard(height, width)
    elif image.shape[:2] != (height, width):
        raise ValueError(f"image size {image.shape[1]}x{image.shape[0]} != width x height {width}x{height}")
    intensity = shade(out.face_index, face_normals_camera(vertices, faces, camera.rotation))
    return {
        "mask": mask,
        "depth": np.asarray(out.depth, np.float32),
        "overlay": overlay(image, intensity, mask),
    }


def read_image(path: str) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB of an image file."""
    return np.asarray(Image.open(path).convert("RGB"))
