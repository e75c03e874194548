"""On a CUDA GPU (``pytest -m gpu``; tools/gpu_check.sh runs these): the pose search gives the CPU's
poses, and the bfloat16 train step stays finite and close to float32."""

import os

import jax
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
pytestmark = pytest.mark.gpu


def _gpu():
    try:
        return jax.devices("gpu")[0]
    except RuntimeError:
        pytest.skip("no GPU visible to JAX")


def test_search_on_gpu_matches_cpu():
    from nemo_jax import mesh as mesh_lib
    from nemo_jax.inference import search
    from nemo_jax.render import RasterSettings

    gpu, cpu = _gpu(), jax.devices("cpu")[0]
    rng = np.random.default_rng(0)
    v, f = mesh_lib.cuboid_mesh([-1, -0.6, -0.4], [1, 0.6, 0.4], 200)
    unit = lambda x: (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
    obs, feats, clutter = (
        unit(rng.normal(size=(4, 32, 84, 32))),
        unit(rng.normal(size=(len(v), 32))),
        unit(rng.normal(size=32)),
    )
    cfg = search.SearchConfig(
        raster=RasterSettings(height=32, width=84, tile_height=4, tile_width=4, cull_backfaces=True), steps=50
    )
    cfg = search.size_tile_budget(v, f, 375.0, np.array([41.5, 15.5]), 5.0, cfg)
    poses = {}
    for name, dev in (("gpu", gpu), ("cpu", cpu)):
        with jax.default_device(dev):
            put = lambda x, dtype=np.float32, dev=dev: jax.device_put(np.asarray(x, dtype), dev)
            inputs = search.SearchInputs(
                observed=put(obs), vertex_features=put(feats), clutter=put(np.tile(clutter, (4, 1))),
                vertices=put(v), faces=put(f, np.int32), focal_px=put([375.0] * 4),
                principal=put([[41.5, 15.5]] * 4), distance=put([5.0] * 4),
            )  # fmt: skip
            r = search.search_batch(inputs, config=cfg)
        poses[name] = np.stack([r.azimuth, r.elevation, r.theta, r.loss], 1)
    np.testing.assert_allclose(poses["gpu"], poses["cpu"], rtol=1e-3, atol=1e-3)


def test_bfloat16_train_step_on_gpu_is_finite_and_close_to_float32(random_batch):
    gpu = _gpu()

    from configs import smoke
    from nemo_jax import mesh as mesh_lib
    from nemo_jax.train import loop, state, step

    losses = {}
    for dtype in ("float32", "bfloat16"):
        config = smoke.get_config()
        config.model.dtype = dtype
        model, preprocess = loop.build_model(config)
        v, f = loop.build_geometry(config)
        tx = state.make_optimizer(config.train)
        with jax.default_device(gpu):
            neural = mesh_lib.init_neural_mesh(jax.random.PRNGKey(0), v, f, 16, 32)
            s = state.create_train_state(jax.random.PRNGKey(1), model, neural, tx, (64, 64))
            fn = jax.jit(
                step.make_train_step(model, tx, step.StepConfig.from_config(config), preprocess, None)
            )
            batch = jax.device_put(random_batch(8, 64), gpu)
            out = []
            for _ in range(3):
                s, metrics = fn(s, batch)
                out.append(float(metrics["loss"]))
        assert all(np.isfinite(out)), (dtype, out)
        losses[dtype] = out
    np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.05)
