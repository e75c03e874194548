"""Renders a mesh at a PASCAL3D+ viewpoint: mask PNG, depth .npy and a shaded overlay PNG.

Example (a car-sized cuboid made by the tool itself when --mesh is 'cuboid'):
  nemo-jax-render-mesh --mesh cuboid --azimuth 30 --elevation 15 --theta 0 --distance 5 \
      --px 336 --py 128 --width 672 --height 256 --out out/car
  python tools/render_mesh.py ...   (the same)

Angles in DEGREES as in the annotation files. ``--px/--py`` are in the output image's 0-based pixel
frame (pixel (row i, col j) has its centre at (j, i)); PASCAL3D+ annotations are 1-based. The focal
length in image pixels is ``--focal * --viewport`` (PASCAL3D+: 1 x 3000).
Writes PREFIX_mask.png (object 255, background 0), PREFIX_depth.npy (float32 [H, W], camera-frame
depth, 0 on background) and PREFIX_overlay.png (the shaded mesh over --image, or a checkerboard).
"""

from __future__ import annotations

import os

from absl import flags

from nemo_jax.apps.cli import no_positional, run

_MESH = flags.DEFINE_string("mesh", None, "An .off file, or 'cuboid' for a car-sized SingleCuboid.")
_AZIMUTH = flags.DEFINE_float("azimuth", None, "Degrees.")
_ELEVATION = flags.DEFINE_float("elevation", None, "Degrees.")
_THETA = flags.DEFINE_float("theta", None, "In-plane rotation, degrees.")
_DISTANCE = flags.DEFINE_float("distance", None, "CAD units, > 0.")
_PX = flags.DEFINE_float("px", None, "Principal point x, 0-based image pixels.")
_PY = flags.DEFINE_float("py", None, "Principal point y, 0-based image pixels.")
_WIDTH = flags.DEFINE_integer("width", None, "Output width, pixels.")
_HEIGHT = flags.DEFINE_integer("height", None, "Output height, pixels.")
_FOCAL = flags.DEFINE_float("focal", 1.0, "PASCAL3D+ focal (focal length in pixels = focal * viewport).")
_VIEWPORT = flags.DEFINE_float("viewport", 3000.0, "PASCAL3D+ viewport, image pixels.")
_VARIANT = flags.DEFINE_string(
    "variant", "hard", "Rasterizer variant: any registered name (hard, soft, pytorch3d, gaussian, ...)."
)
_IMAGE = flags.DEFINE_string("image", None, "Optional [H, W] image to overlay the mesh on.")
_OUT = flags.DEFINE_string("out", None, "Output prefix (directories are created).")
flags.mark_flags_as_required(
    ["mesh", "azimuth", "elevation", "theta", "distance", "px", "py", "width", "height", "out"]
)


def _main(argv) -> int:
    no_positional(argv)
    import numpy as np
    from PIL import Image

    from nemo_jax.apps.render_mesh import load_mesh, read_image, render_views

    try:
        vertices, faces = load_mesh(_MESH.value)
        views = render_views(
            vertices,
            faces,
            _AZIMUTH.value,
            _ELEVATION.value,
            _THETA.value,
            _DISTANCE.value,
            _PX.value,
            _PY.value,
            _HEIGHT.value,
            _WIDTH.value,
            focal=_FOCAL.value,
            viewport=_VIEWPORT.value,
            variant=_VARIANT.value,
            image=read_image(_IMAGE.value) if _IMAGE.value else None,
        )
    except (ValueError, FileNotFoundError, MemoryError) as err:
        prefix = f"{_IMAGE.value}: " if "image size" in str(err) else ""  # mesh errors name the file
        raise SystemExit(f"render_mesh: {prefix}{err}") from err
    out = _OUT.value
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    Image.fromarray((views["mask"] * 255).astype(np.uint8)).save(out + "_mask.png")
    np.save(out + "_depth.npy", views["depth"])
    Image.fromarray(views["overlay"]).save(out + "_overlay.png")
    print(
        f"{_MESH.value}: {len(vertices)} vertices, {len(faces)} faces -> {out}_mask.png "
        f"({int(views['mask'].sum())} object pixels), {out}_depth.npy, {out}_overlay.png"
    )
    return 0


def main():
    """Console entry point (``[project.scripts]``); ``tools/*.py`` call it too."""
    run(__name__, _main)
