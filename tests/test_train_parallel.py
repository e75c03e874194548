"""Data-parallel step (Mesh + NamedSharding over 4 forced host devices) == single-device step, both
with XLA's all-reduces and with the fixed-order reductions under shard_map."""

import os
import subprocess
import sys

import numpy as np
import pytest
import random_inputs  # run in a subprocess: the helper module, not the fixture


def _run(out_path: str) -> None:
    """Runs in a subprocess with 4 host devices: two train steps sharded and unsharded."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import ml_collections

    from nemo_jax import mesh
    from nemo_jax.models import layers
    from nemo_jax.train import parallel, state, step

    assert jax.device_count() == 4, jax.devices()

    class StandIn(nn.Module):  # stride-8 unit features with batch norm (batch statistics matter)
        @nn.compact
        def __call__(self, x, train=False):
            x = nn.Conv(8, (8, 8), strides=(8, 8), use_bias=False)(x)  # no bias before BN: its zero
            # gradient is rounding noise that Adam would amplify into different updates
            x = layers.batch_norm(train)(x)  # statistics over all devices in the ordered step too
            x = nn.Conv(8, (1, 1))(nn.relu(x))
            return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    model = StandIn()
    v, f = mesh.cuboid_mesh([-1, -0.6, -0.4], [1, 0.6, 0.4], 40)
    perm = mesh.mirror_permutation(v)
    batch = random_inputs.random_train_batch(8, 32)
    tc = ml_collections.ConfigDict(
        dict(
            lr=1e-2,
            schedule="constant",
            warmup_steps=0,
            steps=10,
            grad_accum=1,
            weight_decay=1e-4,
            optimizer="adamw",
            grad_accum_phase="end",
        )
    )
    tx = state.make_optimizer(tc)
    nm = jax.device_get(mesh.init_neural_mesh(jax.random.PRNGKey(0), v, f, 8, 32))  # host: never donated
    # shift/scale on: its draws must be the global batch's on every device too
    cfg = step.StepConfig(
        image_size=(32, 32), distance_thr=4.0, clutter_per_image=2, brightness=0.2, shift_px=4.0,
        scale_range=(0.9, 1.1),
    )  # fmt: skip
    fn = step.make_train_step(model, tx, cfg, lambda im: im / 255.0 - 0.5, perm)
    init = lambda: state.create_train_state(jax.random.PRNGKey(1), model, nm, tx, (32, 32))

    single = jax.jit(fn)
    s1 = init()
    for _ in range(2):
        s1, _ = single(s1, batch)
    dm = parallel.data_mesh()
    rep, split = parallel.shardings(dm)
    sharded = step.jit_step(fn, rep, split)
    s4 = jax.device_put(init(), rep)
    for _ in range(2):
        s4, m4 = sharded(s4, parallel.shard_batch(batch, split))
    assert len(s4.mesh.features.sharding.device_set) == 4
    ordered = step.jit_step(
        step.make_train_step(model, tx, cfg, lambda im: im / 255.0 - 0.5, perm, dm), rep, split
    )
    so = jax.device_put(init(), rep)
    for _ in range(2):
        so, mo = ordered(so, parallel.shard_batch(batch, split))
    for k in ("loss", "loss_main", "loss_reg", "grad_norm", "visible_per_image", "render_overflow"):
        np.testing.assert_allclose(np.asarray(mo[k]), np.asarray(m4[k]), rtol=1e-5, err_msg=k)
    leaves = [jax.tree.leaves(jax.device_get(s)) for s in (s1, s4, so)]
    np.savez(out_path, *[np.asarray(a, np.float64) for flat in leaves for a in flat])


@pytest.mark.slow  # ~35-70 s on 2 shared CPU cores (two step compilations in a subprocess)
def test_sharded_step_equals_single_device(tmp_path):
    out = str(tmp_path / "states.npz")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    code = f"import test_train_parallel as t; t._run({out!r})"  # tests/ is on PYTHONPATH (conftest)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    arrays = np.load(out)
    n = len(arrays.files) // 3
    assert n > 5
    for i in range(n):
        a = arrays[f"arr_{i}"]
        for j, name in ((1, "XLA all-reduce"), (2, "ordered sums")):
            b = arrays[f"arr_{i + j * n}"]
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=f"leaf {i}, {name}")
