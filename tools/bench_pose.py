#!/usr/bin/env python
"""Benchmarks NeMo's full pose search on NeMo's car setting; prints what it measured.

Defaults: a car-sized SingleCuboid (~1,000 vertices; box [-0.2,-0.5,-0.17]..[0.2,0.5,0.17]), feature
map 32 x 84 (NeMo's 256 x 672 car crop at stride 8), 128-d unit features, render distance 5, focal
3000 / 8 = 375 px, the NeMo search: 144-pose grid (12 az x 4 el x 3 theta), K=1 start refined with
Adam for 300 steps (nemo_jax.inference.search_pose), vmapped over --images images.

Benchmarks (median of --repeats runs after one warm-up; compile time reported separately):
  pose_search      the search for a batch of images, from precomputed feature maps (backbone excluded)
  pose_search_e2e  backbone (nemo_jax.models.build_backbone, --backbone) + search, from uint8 images
                   of 256 x 672; skipped with a note if nemo_jax.models is unavailable

With --json, one JSON object per line (conventions of tools/bench_render.py). The tile budget is sized
from the grid poses with a 1.2x margin (nemo_jax.inference.size_tile_budget); overflow_max reports
dropped tiles (0 = every render exact).

With several devices the image batch is sharded over them (data parallel). On a CPU, split the cores
into devices with ``XLA_FLAGS=--xla_force_host_platform_device_count=2 python tools/bench_pose.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax.apps.bench import add_car_setting_args, car_mesh, environment
from nemo_jax.inference import SearchConfig, size_tile_budget
from nemo_jax.inference.search import search_batch
from nemo_jax.render import RasterSettings


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_car_setting_args(p)
    p.add_argument("--images", type=int, default=8, help="images per batch")
    p.add_argument("--starts", type=int, default=1, help="K refined starts per image (NeMo: 1)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backbone", default="resnet50", help="nemo_jax.models backbone name for pose_search_e2e")
    p.add_argument("--only", default="", help="comma-separated subset of benchmark names")
    return p.parse_args(argv)


def timed(fn, *args, repeats: int):
    """(compile_s, median wall ms, median process CPU ms) of a jitted fn; blocks on every output.

    The CPU time (all threads of this process) shows how much of a shared machine the run had:
    wall ~= cpu / cores when it had the cores to itself."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(max(repeats, 1)):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return compile_s, float(np.median(times)), float(np.median(cpu))


def main(argv=None) -> int:
    args = parse_args(argv)
    h, w, c, b = args.height, args.width, args.feature_dim, args.images
    v_np, f_np = car_mesh(args.vertices)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)

    def unit(x):
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    vertex_features = unit(jax.random.normal(keys[0], (v_np.shape[0], c)))
    observed = unit(jax.random.normal(keys[1], (b, h, w, c)))
    clutter = unit(jax.random.normal(keys[2], (b, c)))
    principal = jnp.tile(jnp.array([w / 2, h / 2], jnp.float32), (b, 1))
    focal = jnp.full((b,), args.focal, jnp.float32)
    distance = jnp.full((b,), args.distance, jnp.float32)
    raster = RasterSettings(
        height=h,
        width=w,
        variant=args.variant,
        tile_height=args.tile[0],
        tile_width=args.tile[1],
        cull_backfaces=not args.no_cull,
    )
    config = SearchConfig(raster=raster, num_starts=args.starts, steps=args.steps)
    config = size_tile_budget(v_np, f_np, args.focal, np.array([w / 2, h / 2]), args.distance, config)
    verts, faces = jnp.asarray(v_np), jnp.asarray(f_np)

    def search(observed, clutter):
        return search_batch(
            observed, vertex_features, clutter, verts, faces, focal, principal, distance, config=config
        )

    common = {
        **environment(),
        "images": b,
        "height": h,
        "width": w,
        "feature_dim": c,
        "vertices": int(v_np.shape[0]),
        "faces": int(f_np.shape[0]),
        "grid": config.grid_size,
        "starts": args.starts,
        "steps": args.steps,
        "variant": args.variant,
        "tile": list(args.tile),
        "cull_backfaces": not args.no_cull,
        "tile_budget": config.raster.tile_budget,
    }
    if len(jax.devices()) > 1:  # data parallel over the devices (e.g. CPU cores split by XLA_FLAGS)
        if b % len(jax.devices()):
            raise ValueError(f"--images {b} must be a multiple of the {len(jax.devices())} devices")
        mesh = jax.sharding.Mesh(np.array(jax.devices()), ("batch",))
        shard = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
        observed, clutter, focal, principal, distance = (
            jax.device_put(x, shard) for x in (observed, clutter, focal, principal, distance)
        )
    common["devices"] = len(jax.devices())
    benches = {"pose_search": (jax.jit(search), (observed, clutter), {})}

    only = [s for s in args.only.split(",") if s]
    if not only or "pose_search_e2e" in only:
        try:
            from nemo_jax.models import STRIDE, build_backbone, default_config, preprocess
        except ImportError as e:  # another part of the project; skip with a note
            print(json.dumps({"name": "pose_search_e2e", "skipped": f"nemo_jax.models unavailable: {e}"}))
        else:
            cfg = default_config()
            cfg.name = args.backbone
            cfg.feature_dim = c
            model = build_backbone(cfg)
            stride = STRIDE
            images = jax.random.randint(keys[3], (b, h * stride, w * stride, 3), 0, 256).astype(jnp.uint8)
            variables = jax.jit(lambda x: model.init(jax.random.PRNGKey(1), x, train=False))(
                preprocess(images[:1])
            )

            def e2e(images, clutter):
                feats = model.apply(variables, preprocess(images), train=False)
                return search(feats.astype(jnp.float32), clutter)

            benches["pose_search_e2e"] = (
                jax.jit(e2e),
                (images, clutter),
                {"backbone": args.backbone, "image_shape": [h * stride, w * stride]},
            )

    if not args.json:
        print(json.dumps(common))
        print(
            f"{'name':<18}{'median_ms':>12}{'ms/image':>11}{'images/s':>10}{'compile_s':>11}{'overflow':>10}"
        )
    for name, (fn, fn_args, extra) in benches.items():
        if only and name not in only:
            continue
        compile_s, median_ms, cpu_ms = timed(fn, *fn_args, repeats=args.repeats)
        result = fn(*fn_args)
        overflow = int(np.max(np.asarray(result.overflow)))
        record = {
            "name": name,
            "ms_per_image": round(median_ms / b, 3),
            "images_per_s": round(1e3 * b / median_ms, 3),
            "median_ms": round(median_ms, 3),
            "cpu_ms_per_image": round(cpu_ms / b, 3),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "compile_s": round(compile_s, 3),
            "repeats": args.repeats,
            "overflow_max": overflow,
            "finite": bool(np.all(np.isfinite(np.asarray(result.azimuth)))),
            **extra,
            **common,
        }
        if args.json:
            print(json.dumps(record), flush=True)
        else:
            print(
                f"{name:<18}{median_ms:>12.1f}{median_ms / b:>11.1f}{1e3 * b / median_ms:>10.2f}"
                f"{compile_s:>11.2f}{overflow:>10}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
