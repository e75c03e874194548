"""What tools/bench_render.py and tools/bench_pose.py share: NeMo's car setting and the environment
record every benchmark line carries (device, versions, date)."""

from __future__ import annotations

import argparse
import datetime
import os
import platform

import jax
import numpy as np

from nemo_jax.mesh import cuboid_mesh

# A car-sized SingleCuboid, CAD units (0.4 x 1.0 x 0.34).
CAR_LOWER = (-0.2, -0.5, -0.17)
CAR_UPPER = (0.2, 0.5, 0.17)


def add_car_setting_args(parser: argparse.ArgumentParser) -> None:
    """Flags of NeMo's car setting: 32 x 84 feature map (256 x 672 crop at stride 8), 128-d features,
    ~1,000-vertex cuboid, render distance 5, focal 3000 / 8 = 375 px, hard variant, 4 x 4 tiles."""
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--height", type=int, default=32)
    parser.add_argument("--width", type=int, default=84)
    parser.add_argument("--feature_dim", type=int, default=128)
    parser.add_argument("--vertices", type=int, default=1000, help="target SingleCuboid vertex count")
    parser.add_argument("--distance", type=float, default=5.0)
    parser.add_argument("--focal", type=float, default=375.0, help="pixels at feature resolution (3000 / 8)")
    parser.add_argument("--variant", default="hard", help="rasterizer variant (any registered name)")
    parser.add_argument("--tile", type=int, nargs=2, default=(4, 4), metavar=("TH", "TW"))
    parser.add_argument("--no_cull", action="store_true", help="do not cull back faces (exact either way)")


def car_mesh(target_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """The car-sized cuboid ``(vertices [V, 3], faces [F, 3])``."""
    return cuboid_mesh(list(CAR_LOWER), list(CAR_UPPER), target_vertices)


def environment() -> dict:
    """Device, platform, versions, core count and date, for every JSON line a benchmark prints."""
    return {
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.default_backend(),
        "jax_version": jax.__version__,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
    }
