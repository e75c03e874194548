#!/usr/bin/env python
"""Benchmarks the rasterizer on NeMo's car setting; prints what it measured.

Defaults: a car-sized SingleCuboid (~1,000 vertices, ~2,000 faces; box 0.4 x 1.0 x 0.34 CAD units),
feature map 32 x 84 (NeMo's 256 x 672 car crop at stride 8), 128-d unit features, render distance 5,
focal 3000 / 8 = 375 px, NeMo's objective (1 - mean ReLU(object - clutter similarity)) evaluated through
the per-image similarity table S = vertex_features @ observed^T (exact; see nemo_jax.inference.objective).

Benchmarks (median of --repeats runs after one warm-up; compile time reported separately):
  render_fwd        NeMo loss of one pose
  render_fwd_bwd    loss and gradient w.r.t. (azimuth, elevation, theta, distance) of one pose
  render_fwd_bwd_feat   the same, interpolating the 128-d features instead of S (for the ratio)
  grid144_fwd       loss of NeMo's 144-pose initial grid (12 az x 4 el x 3 theta), one image
  refine_step       one optax Adam step (loss, gradient, update) for --images x --starts poses

With --json, one JSON object per line. The tile budget is sized from the benchmark's own poses (the
grid plus the random refine poses) with a 20% margin unless --tile_budget is given; overflow_max
reports how many tiles were dropped (0 = every render exact).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nemo_jax.apps.bench import add_car_setting_args, car_mesh, environment
from nemo_jax.geometry import camera_from_viewpoint
from nemo_jax.inference import SearchConfig, clutter_similarity, nemo_loss, pose_grid, similarity_table
from nemo_jax.render import RasterSettings, render, tiles_needed


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_car_setting_args(p)
    p.add_argument("--tile_budget", type=int, default=0, help="0: size from the benchmark poses")
    p.add_argument("--images", type=int, default=64, help="refine_step images")
    p.add_argument("--starts", type=int, default=4, help="refine_step starts per image")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--only", default="", help="comma-separated subset of benchmark names")
    return p.parse_args(argv)


def timed(fn, *args, repeats: int):
    """(compile_s, median_ms, all_ms) of a jitted fn; blocks on every output."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(max(repeats, 5)):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append((time.perf_counter() - t0) * 1e3)
    return compile_s, float(np.median(times)), times


def main(argv=None) -> int:
    args = parse_args(argv)
    h, w, c = args.height, args.width, args.feature_dim
    v_np, f_np = car_mesh(args.vertices)
    verts, faces = jnp.asarray(v_np), jnp.asarray(f_np)
    num_v = verts.shape[0]
    keys = jax.random.split(jax.random.PRNGKey(0), 4)

    def unit(x):
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    vertex_features = unit(jax.random.normal(keys[0], (num_v, c)))
    observed = unit(jax.random.normal(keys[1], (h, w, c)))
    clutter = unit(jax.random.normal(keys[2], (c,)))

    n_refine = args.images * args.starts
    rng = np.random.default_rng(0)
    refine = np.stack(
        [
            rng.uniform(0, 2 * np.pi, n_refine),
            rng.uniform(-0.5, 1.1, n_refine),
            rng.uniform(-0.5, 0.5, n_refine),
            rng.uniform(0.9, 1.1, n_refine) * args.distance,
        ],
        -1,
    ).astype(np.float32)
    refine = jnp.asarray(refine).reshape(args.images, args.starts, 4)

    def camera(pose):
        return camera_from_viewpoint(pose[0], pose[1], pose[2], pose[3], w / 2, h / 2, 1.0, args.focal)

    base = RasterSettings(
        height=h,
        width=w,
        variant=args.variant,
        tile_height=args.tile[0],
        tile_width=args.tile[1],
        cull_backfaces=not args.no_cull,
    )
    nemo = pose_grid(SearchConfig(raster=base))  # NeMo's 144 initial poses, as the search uses them
    grid = jnp.concatenate([nemo, jnp.full((len(nemo), 1), args.distance)], axis=1)
    all_poses = jnp.concatenate([grid, refine.reshape(-1, 4)])
    needed = np.asarray(tiles_needed(verts, faces, jax.vmap(camera)(all_poses), base))
    budget = args.tile_budget or int(np.ceil(1.2 * needed.max()))
    settings = RasterSettings(**{**base.__dict__, "tile_budget": budget})

    def loss_table(pose, table, clutter_sim):
        out = render(verts, faces, camera(pose), settings, pixel_table=table)
        return nemo_loss(out.pixel_values, clutter_sim), out.overflow

    def loss_features(pose, observed, clutter_sim):
        out = render(verts, faces, camera(pose), settings, attributes=vertex_features)
        return nemo_loss(jnp.sum(out.features * observed, -1), clutter_sim), out.overflow

    table = similarity_table(vertex_features, observed)
    clutter_sim = clutter_similarity(observed, clutter)
    pose0 = grid[17]
    optimizer = optax.adam(0.05, b1=0.4, b2=0.6)

    def refine_step(poses, opt_state, tables, clutter_sims):
        def total(poses):
            per_image = jax.vmap(lambda p, t, s: jax.vmap(lambda q: loss_table(q, t, s))(p))
            losses, overflow = per_image(poses, tables, clutter_sims)
            return jnp.sum(losses), jnp.max(overflow)

        (loss, overflow), grads = jax.value_and_grad(total, has_aux=True)(poses)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(poses, updates), opt_state, loss, overflow

    benches = {
        "render_fwd": (jax.jit(loss_table), (pose0, table, clutter_sim), 1),
        "render_fwd_bwd": (
            jax.jit(jax.value_and_grad(loss_table, has_aux=True)),
            (pose0, table, clutter_sim),
            1,
        ),
        "render_fwd_bwd_feat": (
            jax.jit(jax.value_and_grad(loss_features, has_aux=True)),
            (pose0, observed, clutter_sim),
            1,
        ),
        "grid144_fwd": (
            jax.jit(jax.vmap(loss_table, in_axes=(0, None, None))),
            (grid, table, clutter_sim),
            144,
        ),
    }
    if args.images > 0 and args.starts > 0:
        tables = jnp.broadcast_to(table, (args.images,) + table.shape)
        clutter_sims = jnp.broadcast_to(clutter_sim, (args.images,) + clutter_sim.shape)
        benches["refine_step"] = (
            jax.jit(refine_step),
            (refine, optimizer.init(refine), tables, clutter_sims),
            n_refine,
        )
    only = [s for s in args.only.split(",") if s]

    common = {
        **environment(),
        "height": h,
        "width": w,
        "feature_dim": c,
        "vertices": int(num_v),
        "faces": int(faces.shape[0]),
        "variant": args.variant,
        "tile": list(args.tile),
        "cull_backfaces": not args.no_cull,
        "tile_budget": budget,
        "tiles_needed_max": int(needed.max()),
    }
    if not args.json:
        print(json.dumps(common))
        print(f"{'name':<22}{'median_ms':>12}{'ms/pose':>10}{'compile_s':>11}{'overflow':>10}")
    for name, (fn, fn_args, poses) in benches.items():
        if only and name not in only:
            continue
        compile_s, median_ms, _ = timed(fn, *fn_args, repeats=args.repeats)
        result = jax.tree.leaves(fn(*fn_args))
        overflow = int(np.max(np.asarray(result[-1] if name == "refine_step" else result[1])))
        record = {
            "name": name,
            "median_ms": round(median_ms, 4),
            "ms_per_pose": round(median_ms / poses, 4),
            "compile_s": round(compile_s, 3),
            "poses": poses,
            "overflow_max": overflow,
            **({"images": args.images, "starts": args.starts} if name == "refine_step" else {}),
            **common,
        }
        if args.json:
            print(json.dumps(record), flush=True)
        else:
            print(f"{name:<22}{median_ms:>12.3f}{median_ms / poses:>10.4f}{compile_s:>11.2f}{overflow:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
