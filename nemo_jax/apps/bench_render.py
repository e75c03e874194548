"""The rasterizer benchmark behind ``tools/bench_render.py``: NeMo's car setting, one variant at a time.

Every benchmark evaluates NeMo's objective through the per-image similarity table (see
:mod:`nemo_jax.inference.objective`); ``refine_step`` is the pose search's own step
(:func:`nemo_jax.inference.refine_step`), vmapped over images x starts.
"""

from __future__ import annotations

import ast
import dataclasses
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from nemo_jax.apps.bench import car_mesh, environment
from nemo_jax.geometry import camera_from_viewpoint
from nemo_jax.inference import (
    SearchConfig,
    clutter_similarity,
    nemo_loss,
    pose_grid,
    refine_optimizer,
    refine_step,
    similarity_table,
)
from nemo_jax.render import RasterSettings, registered_variants, render, tiles_needed

ENVIRONMENT_KEYS = ("device", "platform", "jax_version", "cpu_count", "python", "date")
BENCHMARKS = ("render_fwd", "render_fwd_bwd", "render_fwd_bwd_feat", "grid144_fwd", "refine_step")


def default_config() -> ml_collections.ConfigDict:
    """NeMo's car setting: 32 x 84 feature map (256 x 672 crop at stride 8), 128-d features,
    ~1,000-vertex cuboid, render distance 5, focal 3000 / 8 = 375 px, 4 x 4 tiles, back faces
    culled (exact for the closed cuboid)."""
    return ml_collections.ConfigDict(
        {
            "height": 32,
            "width": 84,
            "feature_dim": 128,
            "vertices": 1000,
            "distance": 5.0,
            "focal": 375.0,
            "tile_height": 4,
            "tile_width": 4,
            "cull_backfaces": True,
            "tile_budget": 0,  # 0: sized from the benchmark's poses
            "images": 64,  # refine_step images
            "starts": 4,  # refine_step starts per image
            "repeats": 10,
        }
    )


def variant_list(spec: str) -> list[str]:
    """``"all"`` -> every registered variant; else a comma list of names (checked)."""
    names = list(registered_variants()) if spec == "all" else [s for s in spec.split(",") if s]
    for name in names:
        RasterSettings(height=1, width=1, variant=name)  # raises listing the registered names
    return names


def parse_params(items) -> dict:
    """``["max_kernels=50", "blur_radius=None"]`` -> ``{"max_kernels": 50, "blur_radius": None}``
    (Python literals; anything else stays a string)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--param {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def timed(fn, *args, repeats: int):
    """``(compile_s, median_ms, output of the warm-up call)`` of a jitted ``fn``; blocks on every
    output; at least 3 timed runs."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(max(repeats, 3)):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append((time.perf_counter() - t0) * 1e3)
    return compile_s, float(np.median(times)), out


def run(config: ml_collections.ConfigDict, variant: str, params=None, only=()):
    """Runs the benchmarks for one variant; yields one record (dict) per benchmark.

    Args:
      config: :func:`default_config`'s fields.
      variant: a registered variant name; ``params``: its parameters (mapping) or None (defaults).
      only: subset of :data:`BENCHMARKS` (empty: all).
    """
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        raise ValueError(f"bench_render: unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    if isinstance(params, (list, tuple)):
        params = parse_params(params)
    h, w, c = config.height, config.width, config.feature_dim
    v_np, f_np = car_mesh(config.vertices)
    verts, faces = jnp.asarray(v_np), jnp.asarray(f_np)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)

    def unit(x):
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    vertex_features = unit(jax.random.normal(keys[0], (verts.shape[0], c)))
    observed = unit(jax.random.normal(keys[1], (h, w, c)))
    clutter = unit(jax.random.normal(keys[2], (c,)))

    n_refine = config.images * config.starts
    rng = np.random.default_rng(0)
    refine = np.stack(
        [
            rng.uniform(0, 2 * np.pi, n_refine),
            rng.uniform(-0.5, 1.1, n_refine),
            rng.uniform(-0.5, 0.5, n_refine),
            rng.uniform(0.9, 1.1, n_refine) * config.distance,
        ],
        -1,
    ).astype(np.float32)
    refine = jnp.asarray(refine).reshape(config.images, config.starts, 4)

    def camera(pose):
        return camera_from_viewpoint(pose[0], pose[1], pose[2], pose[3], w / 2, h / 2, 1.0, config.focal)

    base = RasterSettings(
        height=h,
        width=w,
        variant=variant,
        params=params,
        tile_height=config.tile_height,
        tile_width=config.tile_width,
        cull_backfaces=config.cull_backfaces,
    )
    search = SearchConfig(raster=base)
    nemo = pose_grid(search)  # NeMo's 144 initial poses, as the search uses them
    grid = jnp.concatenate([nemo, jnp.full((len(nemo), 1), config.distance)], axis=1)
    all_poses = jnp.concatenate([grid, refine.reshape(-1, 4)])
    needed = np.asarray(tiles_needed(verts, faces, jax.vmap(camera)(all_poses), base))
    budget = config.tile_budget or int(np.ceil(1.2 * needed.max()))
    settings = dataclasses.replace(base, tile_budget=budget)
    search = dataclasses.replace(search, raster=settings)

    def loss_table(pose, table, clutter_sim):
        out = render(verts, faces, camera(pose), settings, pixel_table=table)
        return nemo_loss(out.pixel_values, clutter_sim), out.overflow

    def loss_features(pose, observed, clutter_sim):
        out = render(verts, faces, camera(pose), settings, attributes=vertex_features)
        return nemo_loss(jnp.sum(out.features * observed, -1), clutter_sim), out.overflow

    table = similarity_table(vertex_features, observed)
    clutter_sim = clutter_similarity(observed, clutter)
    pose0 = grid[17]
    optimizer = refine_optimizer(search)

    def refine_images(poses, opt_state, tables, clutter_sims):
        def one_image(p, s, t, cs):
            return refine_step(lambda q: loss_table(q, t, cs), optimizer, search, p, s)

        new_poses, new_state, _, overflow, _ = jax.vmap(one_image)(poses, opt_state, tables, clutter_sims)
        return new_poses, new_state, jnp.max(overflow)

    benches = {
        "render_fwd": (jax.jit(loss_table), (pose0, table, clutter_sim), 1, 1),
        "render_fwd_bwd": (
            jax.jit(jax.value_and_grad(loss_table, has_aux=True)),
            (pose0, table, clutter_sim),
            1,
            1,
        ),
        "render_fwd_bwd_feat": (
            jax.jit(jax.value_and_grad(loss_features, has_aux=True)),
            (pose0, observed, clutter_sim),
            1,
            1,
        ),
        "grid144_fwd": (
            jax.jit(jax.vmap(loss_table, in_axes=(0, None, None))),
            (grid, table, clutter_sim),
            len(grid),
            1,
        ),
    }
    if n_refine > 0:
        tables = jnp.broadcast_to(table, (config.images,) + table.shape)
        clutter_sims = jnp.broadcast_to(clutter_sim, (config.images,) + clutter_sim.shape)
        state = jax.vmap(optimizer.init)(refine)
        benches["refine_step"] = (jax.jit(refine_images), (refine, state, tables, clutter_sims), n_refine, -1)

    common = {
        **environment(),
        "height": h,
        "width": w,
        "feature_dim": c,
        "vertices": int(verts.shape[0]),
        "faces": int(faces.shape[0]),
        "variant": variant,
        "params": dataclasses.asdict(settings.params),
        "tile": [config.tile_height, config.tile_width],
        "cull_backfaces": bool(config.cull_backfaces),
        "tile_budget": budget,
        "tiles_needed_max": int(needed.max()),
    }
    for name, (fn, fn_args, poses, overflow_at) in benches.items():
        if only and name not in only:
            continue
        compile_s, median_ms, out = timed(fn, *fn_args, repeats=config.repeats)
        leaves = jax.tree.leaves(out)
        overflow = int(np.max(np.asarray(leaves[overflow_at])))
        yield {
            "name": name,
            "median_ms": round(median_ms, 4),
            "ms_per_pose": round(median_ms / poses, 4),
            "compile_s": round(compile_s, 3),
            "poses": poses,
            "overflow_max": overflow,
            **({"images": config.images, "starts": config.starts} if name == "refine_step" else {}),
            **common,
        }
