"""End-to-end training through tools/train.py on configs/smoke.py: learning, SIGKILL + resume
identity, clear errors on bad input; plus the non-finite guard of the train step."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "train.py")
SMOKE = os.path.join(ROOT, "configs", "smoke.py")


def _env(cache_dir):
    # a shared persistent compilation cache: the 2nd and 3rd runs skip XLA compilation
    return dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(cache_dir),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )


def _tool(workdir, env, *overrides, wait=True):
    cmd = [sys.executable, TOOL, f"--config={SMOKE}", f"--workdir={workdir}", *overrides]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _final_params(workdir):
    import jax
    import orbax.checkpoint as ocp

    ckpt = os.path.join(workdir, "checkpoints")
    step = max(int(n) for n in os.listdir(ckpt) if n.isdigit())
    tree = ocp.StandardCheckpointer().restore(os.path.join(ckpt, str(step), "default"))
    return step, [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.mark.slow
def test_tool_learns_and_resume_after_sigkill_is_exact(tmp_path):
    env = _env(tmp_path / "cache")
    overrides = ["--config.train.steps=160", "--config.train.checkpoint_every=40"]
    full = tmp_path / "full"
    proc = _tool(full, env, *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = [json.loads(line) for line in open(full / "metrics.jsonl")]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert train_rows[-1]["loss"] < train_rows[0]["loss"] - 0.5, train_rows
    # learned vertex features localise vertices on held-out images far above chance
    assert result["vertex_accuracy"] > 6 * result["vertex_chance"], result
    assert result["near_accuracy"] > 2 * result["near_chance"], result
    assert "nearest-vertex accuracy" in proc.stdout
    assert os.listdir(full / "tb") and (full / "config.json").exists()
    from nemo_jax.train import load_run

    config, model, variables, neural = load_run(str(full))
    assert neural.features.shape == (int(json.load(open(full / "mesh.json"))["num_vertices"]), 16)
    assert config.train.steps == 160 and "params" in variables

    killed = tmp_path / "killed"
    run = _tool(killed, env, *overrides, wait=False)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "40").exists():
        assert run.poll() is None, run.stdout.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert not (killed / "checkpoints" / "160").exists()
    proc = _tool(killed, env, *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stdout + proc.stderr
    step_a, params_a = _final_params(full)
    step_b, params_b = _final_params(killed)
    assert step_a == step_b == 160
    for a, b in zip(params_a, params_b, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unknown_config_key_is_an_error(tmp_path):
    proc = _tool(tmp_path / "w", dict(os.environ, JAX_PLATFORMS="cpu"), "--config.train.no_such_key=1")
    assert proc.returncode != 0
    assert "no_such_key" in proc.stderr
    assert not (tmp_path / "w").exists()


def _small_state():
    return {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "bank": np.ones((5, 4), np.float32)}


def test_incompatible_config_or_mesh_refused_nothing_overwritten(tmp_path):
    from nemo_jax.train.checkpoint import Checkpointer

    cfg = {"model": {"name": "tiny", "feature_dim": 4}, "train": {"steps": 10, "lr": 1e-3}}
    mesh_info = {"num_vertices": 5, "feature_dim": 4}
    ck = Checkpointer(str(tmp_path), cfg, mesh_info, every=1)
    ck.save(1, _small_state())
    ck.close()
    before = {p: os.path.getmtime(os.path.join(d, p)) for d, _, files in os.walk(tmp_path) for p in files}
    config_text = (tmp_path / "config.json").read_text()

    with pytest.raises(RuntimeError, match=r"incompatible config[\s\S]*model.feature_dim: 4 -> 8"):
        Checkpointer(str(tmp_path), {**cfg, "model": {"name": "tiny", "feature_dim": 8}}, mesh_info, every=1)
    with pytest.raises(RuntimeError, match="num_vertices=5 but the current neural mesh has num_vertices=7"):
        Checkpointer(str(tmp_path), cfg, {"num_vertices": 7, "feature_dim": 4}, every=1)
    after = {p: os.path.getmtime(os.path.join(d, p)) for d, _, files in os.walk(tmp_path) for p in files}
    assert before == after and (tmp_path / "config.json").read_text() == config_text

    # resumable keys (more steps) are fine, and the state restores exactly
    ck = Checkpointer(str(tmp_path), {**cfg, "train": {"steps": 20, "lr": 1e-3}}, mesh_info, every=1)
    assert ck.latest_step() == 1
    restored = ck.restore(_small_state())
    np.testing.assert_array_equal(restored["w"], _small_state()["w"])
    with pytest.raises(RuntimeError, match="in the checkpoint but"):
        ck.restore({"w": np.zeros((3, 3), np.float32), "bank": np.ones((5, 4), np.float32)})
    ck.close()


@pytest.mark.extended
def test_nonfinite_step_leaves_state_and_loop_stops(random_batch):
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import ml_collections

    from nemo_jax import mesh
    from nemo_jax.train import loop, state, step

    class StandIn(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            x = nn.Conv(4, (8, 8), strides=(8, 8))(x)
            return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    v, f = mesh.cuboid_mesh([-1, -0.6, -0.4], [1, 0.6, 0.4], 30)
    batch = random_batch(2, 32)
    tc = ml_collections.ConfigDict(
        dict(
            lr=float("nan"),
            schedule="constant",
            warmup_steps=0,
            steps=10,
            grad_accum=1,
            weight_decay=0.0,
            optimizer="adamw",
            grad_accum_phase="end",
        )
    )
    tx = state.make_optimizer(tc)
    model = StandIn()
    s0 = state.create_train_state(
        jax.random.PRNGKey(0), model, mesh.init_neural_mesh(jax.random.PRNGKey(1), v, f, 4, 8), tx, (32, 32)
    )
    cfg = step.StepConfig(image_size=(32, 32), flip_prob=0.0, distance_thr=4.0, clutter_per_image=2)
    fn = jax.jit(step.make_train_step(model, tx, cfg, lambda im: im / 255.0))
    s1, metrics = fn(s0, batch)
    assert not bool(metrics["finite"])
    for a, b in zip(jax.tree.leaves(s0.params), jax.tree.leaves(s1.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.all(np.isfinite(np.asarray(s1.mesh.features)))
    with pytest.raises(loop.NonFiniteError, match="non-finite loss"):
        loop._check_finite(metrics, 0, "/tmp/w")
