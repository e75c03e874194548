"""Benchmarks on NeMo's car setting: the pose search (``tools/bench_pose.py``), the train step
(``tools/bench_train.py``), and what the benchmarks share (the car setting's flags and raster
settings, timing, the environment record every benchmark line carries: device, versions, date).
``tools/bench_render.py`` uses the same car setting."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax.apps import cost as cost_lib
from nemo_jax.mesh import cuboid_mesh
from nemo_jax.render import RasterSettings

# A car-sized SingleCuboid, CAD units (0.4 x 1.0 x 0.34).
CAR_LOWER = (-0.2, -0.5, -0.17)
CAR_UPPER = (0.2, 0.5, 0.17)

#: NeMo's car setting: 32 x 84 feature map (256 x 672 crop at stride 8), 128-d features,
#: ~1,000-vertex cuboid, render distance 5, focal 3000 / 8 = 375 px OF THE FEATURE MAP (NeMo's
#: focal 1 x viewport 3000 image pixels at stride 8), hard variant, 4 x 4 tiles.
#: ``(flag, type, default, help)``; ``tile`` is two ints (tile height, tile width).
CAR_SETTING = (
    ("json", bool, False, "one JSON object per line"),
    ("height", int, 32, "feature-map height"),
    ("width", int, 84, "feature-map width"),
    ("feature_dim", int, 128, "feature channels"),
    ("vertices", int, 1000, "target SingleCuboid vertex count"),
    ("distance", float, 5.0, "render distance, CAD units"),
    ("focal", float, 375.0, "focal length in pixels of the feature map (3000 / 8)"),
    (
        "variant",
        str,
        "hard",
        "rasterizer variant: any registered name (hard, soft, pytorch3d, gaussian, ...)",
    ),
    ("tile", list, (4, 4), "tile height and width"),
    ("no_cull", bool, False, "do not cull back faces (exact either way)"),
)


def add_car_setting_args(parser: argparse.ArgumentParser) -> None:
    """The :data:`CAR_SETTING` flags on an argparse parser (``--tile TH TW``)."""
    for name, kind, default, help_text in CAR_SETTING:
        if kind is bool:
            parser.add_argument(f"--{name}", action="store_true", help=help_text)
        elif kind is list:
            parser.add_argument(f"--{name}", type=int, nargs=2, default=default, metavar=("TH", "TW"))
        else:
            parser.add_argument(f"--{name}", type=kind, default=default, help=help_text)


def define_car_setting_flags() -> None:
    """The :data:`CAR_SETTING` flags as absl flags (``--tile=TH,TW``)."""
    from absl import flags

    for name, kind, default, help_text in CAR_SETTING:
        if kind is bool:
            flags.DEFINE_bool(name, default, help_text)
        elif kind is list:
            flags.DEFINE_list(name, [str(v) for v in default], help_text + " (TH,TW)")
        elif kind is str:
            flags.DEFINE_string(name, default, help_text)
        elif kind is int:
            flags.DEFINE_integer(name, default, help_text)
        else:
            flags.DEFINE_float(name, default, help_text)


def car_mesh(target_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """The car-sized cuboid ``(vertices [V, 3], faces [F, 3])``."""
    return cuboid_mesh(list(CAR_LOWER), list(CAR_UPPER), target_vertices)


def car_raster_settings(height: int, width: int, variant: str, tile, cull: bool) -> RasterSettings:
    """Raster settings of a ``[height, width]`` feature map, ``tile = (tile height, tile width)``,
    back faces culled when ``cull``; the tile budget is left to the caller."""
    return RasterSettings(
        height=height,
        width=width,
        variant=variant,
        tile_height=int(tile[0]),
        tile_width=int(tile[1]),
        cull_backfaces=cull,
    )


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


def bench_pose(
    images: int = 8,
    starts: int = 1,
    steps: int = 300,
    repeats: int = 3,
    backbone: str = "resnet50",
    only=(),
    height: int = 32,
    width: int = 84,
    feature_dim: int = 128,
    vertices: int = 1000,
    distance: float = 5.0,
    focal: float = 375.0,
    variant: str = "hard",
    tile=(4, 4),
    cull: bool = True,
    log=print,
    cost: bool = False,
    xla_bytes: bool = True,
):
    """NeMo's full pose search on the car setting: yields ``common`` (the setting and environment,
    a dict) first, then one record per benchmark (``pose_search``: the search for a batch of
    ``images`` from precomputed feature maps; ``pose_search_e2e``: ``backbone`` + search from uint8
    images). ``focal`` in pixels of the feature map. With several devices the image batch is
    sharded over them (data parallel). ``log`` receives a JSON-able note when a benchmark is skipped.
    ``xla_bytes``: the ``pose_search`` record also holds ``xla_bytes_per_image``, the bytes XLA's cost
    analysis counts for the whole search per image (two more compilations, at 0 and 1 steps).

    ``cost=True``: nothing is timed; each record holds XLA's cost analysis of the compiled program
    per image (FLOPs, bytes accessed; the refinement loop counted ``steps`` times, see
    :mod:`nemo_jax.apps.cost`) and the roofline bound it implies on an H100 SXM.
    """
    from nemo_jax.inference import SearchConfig, SearchInputs, size_tile_budget

    h, w, c, b = height, width, feature_dim, images
    v_np, f_np = car_mesh(vertices)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)

    def unit(x):
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    vertex_features = unit(jax.random.normal(keys[0], (v_np.shape[0], c)))
    observed = unit(jax.random.normal(keys[1], (b, h, w, c)))
    clutter = unit(jax.random.normal(keys[2], (b, c)))
    principal = jnp.tile(jnp.array([w / 2, h / 2], jnp.float32), (b, 1))
    focal_px = jnp.full((b,), focal, jnp.float32)
    dist = jnp.full((b,), distance, jnp.float32)
    config = SearchConfig(
        raster=car_raster_settings(h, w, variant, tile, cull), num_starts=starts, steps=steps
    )
    config = size_tile_budget(v_np, f_np, focal, np.array([w / 2, h / 2]), distance, config)
    verts, faces = jnp.asarray(v_np), jnp.asarray(f_np)

    common = {
        **environment(),
        "images": b,
        "height": h,
        "width": w,
        "feature_dim": c,
        "vertices": int(v_np.shape[0]),
        "faces": int(f_np.shape[0]),
        "grid": config.grid_size,
        "starts": starts,
        "steps": steps,
        "variant": variant,
        "tile": [int(t) for t in tile],
        "cull_backfaces": cull,
        "tile_budget": config.raster.tile_budget,
    }
    if len(jax.devices()) > 1:  # data parallel over the devices (e.g. CPU cores split by XLA_FLAGS)
        if b % len(jax.devices()):
            raise ValueError(f"--images {b} must be a multiple of the {len(jax.devices())} devices")
        mesh = jax.sharding.Mesh(np.array(jax.devices()), ("batch",))
        shard = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
        observed, clutter, focal_px, principal, dist = (
            jax.device_put(x, shard) for x in (observed, clutter, focal_px, principal, dist)
        )
    common["devices"] = len(jax.devices())

    shared = SearchInputs(observed, vertex_features, clutter, verts, faces, focal_px, principal, dist)
    only = [s for s in only if s]
    benches = _pose_benches(shared, config, only, backbone, keys[3], log)
    yield common
    with_steps = None

    def per_image_cost(name, fn_args):
        nonlocal with_steps
        if with_steps is None:  # compiled at 0 and 1 steps: XLA counts a loop body once
            with_steps = [
                _pose_benches(shared, dataclasses.replace(config, steps=k), only, backbone, keys[3], log)
                for k in (0, 1)
            ]
        at = [cost_lib.compiled_cost(w[name][0], *fn_args) for w in with_steps]
        return cost_lib.with_loop(at[0], at[1], steps).per(b)

    if cost:
        for name, (_, fn_args, extra) in benches.items():
            if only and name not in only:
                continue
            yield {"name": f"{name}_cost", **cost_record(per_image_cost(name, fn_args)), **extra, **common}
        return
    for name, (fn, fn_args, extra) in benches.items():
        if only and name not in only:
            continue
        compile_s, median_ms, cpu_ms = timed(fn, *fn_args, repeats=repeats)
        result = fn(*fn_args)
        if xla_bytes and name == "pose_search":
            extra = {**extra, "xla_bytes_per_image": per_image_cost(name, fn_args).bytes_accessed}
        yield {
            "name": name,
            "ms_per_image": round(median_ms / b, 3),
            "images_per_s": round(1e3 * b / median_ms, 3),
            "median_ms": round(median_ms, 3),
            "cpu_ms_per_image": round(cpu_ms / b, 3),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "compile_s": round(compile_s, 3),
            "repeats": repeats,
            "overflow_max": int(np.max(np.asarray(result.overflow))),
            "finite": bool(np.all(np.isfinite(np.asarray(result.azimuth)))),
            **extra,
            **common,
        }


def cost_record(per_image) -> dict:
    """JSON fields of a per-image :class:`nemo_jax.apps.cost.Cost` and its H100 SXM roofline (ms)."""
    bound = cost_lib.roofline(per_image)
    return {
        "flops_per_image": per_image.flops,
        "bytes_per_image": per_image.bytes_accessed,
        "transcendentals_per_image": per_image.transcendentals,
        "flops_per_byte": per_image.flops / max(per_image.bytes_accessed, 1.0),
        "h100_ms_per_image": {k.removesuffix("_s"): 1e3 * v for k, v in bound.items()},
        "h100_peaks": cost_lib.H100_SXM,
    }


def _pose_benches(shared, config, only, backbone, key, log) -> dict:
    """``{name: (jitted fn, args, extra record fields)}`` of the pose-search benchmarks."""
    from nemo_jax.inference import search_batch_unchecked

    observed, clutter = shared.observed, shared.clutter
    b, h, w, c = observed.shape

    def search(observed, clutter):
        return search_batch_unchecked(shared.replace(observed=observed, clutter=clutter), config=config)

    benches = {"pose_search": (jax.jit(search), (observed, clutter), {})}
    if not only or "pose_search_e2e" in only:
        try:
            from nemo_jax.models import STRIDE, build_backbone, default_config, preprocess
        except ImportError as e:  # another part of the project; skip with a note
            log({"name": "pose_search_e2e", "skipped": f"nemo_jax.models unavailable: {e}"})
        else:
            cfg = default_config()
            cfg.name = backbone
            cfg.feature_dim = c
            model = build_backbone(cfg)
            stride = STRIDE
            image_batch = jax.random.randint(key, (b, h * stride, w * stride, 3), 0, 256).astype(jnp.uint8)
            variables = jax.jit(lambda x: model.init(jax.random.PRNGKey(1), x, train=False))(
                preprocess(image_batch[:1])
            )

            def e2e(image_batch, clutter):
                feats = model.apply(variables, preprocess(image_batch), train=False)
                return search(feats.astype(jnp.float32), clutter)

            benches["pose_search_e2e"] = (
                jax.jit(e2e),
                (image_batch, clutter),
                {"backbone": backbone, "image_shape": [h * stride, w * stride]},
            )
    return benches


def bench_train(config, steps: int = 10, warmup: int = 2, cost: bool = False) -> dict:
    """The jitted train step of ``config`` (a training ConfigDict) on random images of its shapes:
    ``steps`` timed steps after compilation and ``warmup`` untimed ones. The neural mesh is a cuboid
    (~``config.mesh.target_vertices`` vertices) spanning ~70% of the image width; no data files.
    Returns one record (median_ms, images_per_s, device, shapes, ...). ``cost=True``: nothing runs;
    the record holds XLA's cost analysis of the compiled step per image and its H100 roofline."""
    from nemo_jax import mesh as mesh_lib
    from nemo_jax.train import parallel, run
    from nemo_jax.train.state import create_train_state, make_optimizer
    from nemo_jax.train.step import StepConfig, jit_step, make_train_step

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
    shapes = {
        "batch": b,
        "image": [height, width],
        "features": [height // step_cfg.feature_stride, width // step_cfg.feature_stride],
        "vertices": int(len(vertices)),
        "faces": int(len(faces)),
        "clutter": int(t.clutter_size),
    }
    backbone = f"{config.model.name} width={config.model.width} dim={config.model.feature_dim}"
    if cost:
        per_image = cost_lib.compiled_cost(fn, state, batch).per(b)
        return {
            "name": "train_step_cost",
            **cost_record(per_image),
            "backbone": backbone,
            "dtype": config.model.dtype,
            "shapes": shapes,
            **environment(),
        }
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
        "backbone": backbone,
        "dtype": config.model.dtype,
        "shapes": shapes,
        "grad_accum": int(t.grad_accum),
        "render_stride": step_cfg.render_stride,
        "render_overflow": overflow,
        "loss_finite": bool(metrics["finite"]),
        "compile_s": compile_s,
        "steps_timed": steps,
    }
