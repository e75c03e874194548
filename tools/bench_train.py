"""Benchmark the jitted train step (images/s) on random images with the config's shapes.

    python tools/bench_train.py --config configs/synthetic_cpu.py --json
    python tools/bench_train.py --config configs/nemo_pascal3d.py:car --config.train.batch_size=32 --json

Prints one JSON object per line: name 'train_step', median_ms, images_per_s, device, jax_version,
backbone, shapes (batch, image, features, vertices), dtype, steps timed. The neural mesh is a
cuboid (~config.mesh.target_vertices vertices) spanning ~70% of the image width; no data files.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from nemo_jax import mesh as mesh_lib  # noqa: E402
from nemo_jax.train import parallel, run  # noqa: E402
from nemo_jax.train.state import create_train_state, make_optimizer  # noqa: E402
from nemo_jax.train.step import StepConfig, jit_step, make_train_step  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py[:arg]).")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
_JSON = flags.DEFINE_bool("json", False, "Print JSON lines only.")
flags.mark_flags_as_required(["config"])


def bench(config, steps: int, warmup: int) -> dict:
    t = config.train
    height, width = (int(s) for s in config.data.image_size)
    lower, upper = mesh_lib.symmetric_bounds(config.mesh.lower, config.mesh.upper)
    extent = float(np.max(upper - lower))
    distance, viewport = float(config.data.distance), 3000.0
    scale = 0.7 * width * distance / (viewport * extent)
    vertices, faces = mesh_lib.cuboid_mesh(lower * scale, upper * scale, int(config.mesh.target_vertices))
    perm = mesh_lib.mirror_permutation(vertices)
    model, preprocess = run.build_model(config)
    tx = make_optimizer(t)
    step_cfg = StepConfig.from_config(config)
    key = jax.random.PRNGKey(0)
    dim = int(config.model.feature_dim)
    neural = mesh_lib.init_neural_mesh(key, vertices, faces, dim, int(t.clutter_size))
    state = create_train_state(key, model, neural, tx, (height, width))
    replicated, split = parallel.shardings(parallel.data_mesh())
    state = jax.device_put(state, replicated)
    fn = jit_step(make_train_step(model, tx, step_cfg, preprocess, perm), replicated, split)
    b = int(t.batch_size)
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 256, (b, height, width, 3), dtype=np.uint8),
        "azimuth": rng.uniform(0, 2 * np.pi, b).astype(np.float32),
        "elevation": rng.uniform(-0.2, 0.6, b).astype(np.float32),
        "theta": rng.uniform(-0.2, 0.2, b).astype(np.float32),
        "distance": np.full(b, distance, np.float32),
        "px": np.full(b, (width - 1) / 2, np.float32),
        "py": np.full(b, (height - 1) / 2, np.float32),
        "focal": np.ones(b, np.float32),
        "viewport": np.full(b, viewport, np.float32),
    }
    batch = parallel.shard_batch(batch, split)
    t0 = time.perf_counter()
    state, metrics = fn(state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    overflow = int(metrics["render_overflow"])
    for _ in range(warmup):
        state, metrics = fn(state, batch)
    jax.block_until_ready(state)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, metrics = fn(state, batch)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - t0)
    median = float(np.median(times))
    dev = jax.devices()[0]
    return {
        "name": "train_step",
        "median_ms": 1e3 * median,
        "images_per_s": b / median,
        "device": f"{dev.platform}:{dev.device_kind} x{jax.device_count()}",
        "jax_version": jax.__version__,
        "backbone": f"{config.model.name} width={config.model.width} dim={config.model.feature_dim}",
        "dtype": config.model.dtype,
        "shapes": {
            "batch": b,
            "image": [height, width],
            "features": [height // step_cfg.feature_stride, width // step_cfg.feature_stride],
            "vertices": int(len(vertices)),
            "faces": int(len(faces)),
            "clutter": int(t.clutter_size),
        },
        "grad_accum": int(t.grad_accum),
        "render_stride": step_cfg.render_stride,
        "render_overflow": overflow,
        "loss_finite": bool(metrics["finite"]),
        "compile_s": compile_s,
        "steps_timed": steps,
    }


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    result = bench(_CONFIG.value, _STEPS.value, _WARMUP.value)
    if _JSON.value:
        print(json.dumps(result))
    else:
        print(
            f"train_step: {result['median_ms']:.1f} ms/step, {result['images_per_s']:.1f} images/s on "
            f"{result['device']} ({result['backbone']}, batch {result['shapes']['batch']}, "
            f"image {result['shapes']['image']}, {result['shapes']['vertices']} vertices)"
        )
        print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
