#!/usr/bin/env python
"""Renders a mesh at a PASCAL3D+ viewpoint: mask PNG, depth .npy and a shaded overlay PNG.

Example (a cuboid written by the tool itself when --mesh is 'cuboid'):
  python tools/render_mesh.py --mesh cuboid --azimuth 30 --elevation 15 --theta 0 --distance 5 \
      --px 336 --py 128 --width 672 --height 256 --out out/car

Angles in DEGREES as in the annotation files. ``--px/--py`` are in the output image's 0-based pixel
frame (pixel (row i, col j) has its centre at (j, i)); PASCAL3D+ annotations are 1-based.
Writes PREFIX_mask.png (object 255, background 0), PREFIX_depth.npy (float32 [H, W], camera-frame
depth, 0 on background) and PREFIX_overlay.png (the shaded mesh over --image, or a checkerboard).
"""

from __future__ import annotations

import argparse
import os
import sys

import jax.numpy as jnp
import numpy as np
from PIL import Image

from nemo_jax.geometry import camera_from_viewpoint
from nemo_jax.mesh import cuboid_mesh, load_off
from nemo_jax.render import RasterSettings, render_exact, validate_mesh
from nemo_jax.viz import checkerboard, face_normals_camera, overlay, shade


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mesh", required=True, help="an .off file, or 'cuboid' for a car-sized SingleCuboid")
    p.add_argument("--azimuth", type=float, required=True, help="degrees")
    p.add_argument("--elevation", type=float, required=True, help="degrees")
    p.add_argument("--theta", type=float, required=True, help="in-plane rotation, degrees")
    p.add_argument("--distance", type=float, required=True, help="CAD units, > 0")
    p.add_argument("--px", type=float, required=True, help="principal point x, 0-based pixels")
    p.add_argument("--py", type=float, required=True, help="principal point y, 0-based pixels")
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--focal", type=float, default=1.0)
    p.add_argument("--viewport", type=float, default=3000.0)
    p.add_argument("--variant", default="hard", help="rasterizer variant (any registered name)")
    p.add_argument("--image", default=None, help="optional [H, W] image to overlay the mesh on")
    p.add_argument("--out", required=True, help="output prefix (directories are created)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.mesh == "cuboid":
        vertices, faces = cuboid_mesh([-0.2, -0.5, -0.17], [0.2, 0.5, 0.17], 1000)
    else:
        vertices, faces = load_off(args.mesh)
    validate_mesh(vertices, faces, args.mesh)
    for name in ("width", "height"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"--{name} must be positive, got {getattr(args, name)}")
    if not args.distance > 0:
        raise SystemExit(f"--distance must be > 0, got {args.distance}")

    camera = camera_from_viewpoint(
        *(jnp.deg2rad(jnp.float32(a)) for a in (args.azimuth, args.elevation, args.theta)),
        distance=args.distance,
        px=args.px,
        py=args.py,
        focal=args.focal,
        viewport=args.viewport,
    )
    settings = RasterSettings(
        height=args.height, width=args.width, variant=args.variant, tile_height=16, tile_width=16
    )
    out, _ = render_exact(vertices, faces, camera, settings)

    mask = np.asarray(out.coverage) > 0.5
    if args.image:
        image = np.asarray(Image.open(args.image).convert("RGB"))
        if image.shape[:2] != (args.height, args.width):
            raise SystemExit(f"{args.image}: size {image.shape[1]}x{image.shape[0]} != --width x --height")
    else:
        image = checkerboard(args.height, args.width)
    intensity = shade(out.face_index, face_normals_camera(vertices, faces, camera.rotation))

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    Image.fromarray((mask * 255).astype(np.uint8)).save(args.out + "_mask.png")
    np.save(args.out + "_depth.npy", np.asarray(out.depth, np.float32))
    Image.fromarray(overlay(image, intensity, mask)).save(args.out + "_overlay.png")
    print(
        f"{args.mesh}: {len(vertices)} vertices, {len(faces)} faces -> {args.out}_mask.png "
        f"({int(mask.sum())} object pixels), {args.out}_depth.npy, {args.out}_overlay.png"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
