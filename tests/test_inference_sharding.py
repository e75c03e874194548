"""Sharded inference: images spread over 4 forced CPU devices (padding the last batch) give the
predictions of one device, for the pose search and for the evaluation of a trained run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nemo_jax.inference import sharding

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def test_shard_images_pads_with_the_last_row_and_unpads():
    import jax

    mesh = sharding.image_mesh(jax.local_devices()[:1])
    tree = {"a": np.arange(5, dtype=np.float32), "b": np.ones((5, 2, 3), np.float32)}
    placed, n = sharding.shard_images(tree, mesh)
    assert n == 5 and placed["a"].shape == (5,)
    np.testing.assert_array_equal(sharding.pad_images(tree, 8)["a"], [0, 1, 2, 3, 4, 4, 4, 4])
    np.testing.assert_array_equal(sharding.unpad(sharding.pad_images(tree, 8), 5)["a"], tree["a"])
    assert sharding.padded_size(5, mesh) == 5
    with pytest.raises(ValueError, match=r"leaves have \(4,\) and \(5,\) leading rows"):
        sharding.shard_images({"a": np.zeros(5), "b": np.zeros(4)}, mesh)


def test_place_splits_per_image_leaves_and_replicates_shared_ones():
    import jax

    mesh = sharding.image_mesh(jax.local_devices()[:1])
    tree = {"obs": np.ones((3, 2), np.float32), "mesh": np.zeros((7, 3), np.float32)}
    placed, n = sharding.place(tree, {"obs": 0, "mesh": None}, mesh)
    assert n == 3 and placed["obs"].shape == (3, 2) and placed["mesh"].shape == (7, 3)
    assert placed["mesh"].sharding.is_fully_replicated
    with pytest.raises(ValueError, match="axes must be 0 or None"):
        sharding.place(tree, {"obs": 1, "mesh": None}, mesh)


def _predict(root: str, out: str) -> None:
    """In a subprocess: the pose search on random features and the evaluation of the tiny run."""
    import jax

    from nemo_jax import mesh as mesh_lib
    from nemo_jax.apps import evaluate
    from nemo_jax.inference import search
    from nemo_jax.render import RasterSettings

    rng = np.random.default_rng(0)
    v, f = mesh_lib.cuboid_mesh([-1, -0.6, -0.4], [1, 0.6, 0.4], 40)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
    obs = unit(rng.normal(size=(3, 12, 16, 8))).astype(np.float32)  # 3 images: padded to 4
    cfg = search.SearchConfig(
        raster=RasterSettings(height=12, width=16, tile_height=4, tile_width=4, cull_backfaces=True),
        steps=5,
        num_starts=2,
    )
    cfg = search.size_tile_budget(v, f, 20.0, np.array([8.0, 6.0]), 5.0, cfg)
    feats = unit(rng.normal(size=(len(v), 8))).astype(np.float32)
    inputs = search.SearchInputs(obs, feats, unit(rng.normal(size=8)), v, f, 20.0, [8.0, 6.0], 5.0)
    res = search.search_pose(inputs, cfg)
    records = evaluate.nemo_records(
        os.path.join(root, "nemo"), "synthetic", os.path.join(root, "data"), levels=(0,), batch_size=8,
        inference_overrides={"steps": 5},
    )  # fmt: skip
    preds = {r["id"]: [float(r["pred"][k]) for k in ("azimuth", "elevation", "theta")] for r in records}
    with open(out, "w") as fh:
        json.dump(
            {
                "devices": jax.local_device_count(),
                "search": np.stack([res.azimuth, res.elevation, res.theta, res.loss], 1).tolist(),
                "evaluate": preds,
            },
            fh,
        )


@pytest.mark.slow  # an acceptance test: .ci/run runs it (build + 1 train step + 2 subprocesses)
def test_four_devices_predict_what_one_device_predicts(tmp_path):
    from configs import synthetic_cpu
    from nemo_jax import data
    from nemo_jax.train.loop import train

    options = {"categories": "car", "height": 32, "width": 32, "train_per_category": 8}
    options.update({"val_per_category": 4, "test_per_category": 5, "neural_vertices": 60})
    data.build("synthetic", str(tmp_path / "data"), data.make_options("synthetic", options))
    config = synthetic_cpu.get_config("car")
    config.data.data_dir, config.data.image_size = str(tmp_path / "data"), (32, 32)
    config.train.steps, config.train.batch_size, config.train.checkpoint_every = 1, 4, 1
    config.train.clutter_size, config.train.progress = 16, False
    config.model.width, config.eval.num_batches = 0.25, 0
    train(config, str(tmp_path / "nemo"))

    results = {}
    for devices in (1, 4):
        out = str(tmp_path / f"pred{devices}.json")
        env = dict(
            os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu"
        )
        code = "import test_inference_sharding as t; "  # tests/ is on PYTHONPATH (conftest)
        code += f"t._predict({str(tmp_path)!r}, {out!r})"
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[devices] = json.load(open(out))
    one, four = results[1], results[4]
    assert (one["devices"], four["devices"]) == (1, 4)
    np.testing.assert_allclose(four["search"], one["search"], rtol=1e-5, atol=1e-5)
    assert len(one["evaluate"]) == 5 and one["evaluate"].keys() == four["evaluate"].keys()
    for key, pose in one["evaluate"].items():
        np.testing.assert_allclose(four["evaluate"][key], pose, rtol=1e-5, atol=1e-5, err_msg=key)
