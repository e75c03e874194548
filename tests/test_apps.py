"""End-to-end smoke run of the main job's pieces on a tiny synthetic set: build, train NeMo and the
baseline for a few steps, evaluate, estimate a pose from a file. Checks plumbing, formats and the
never-a-NaN-pose rule, not accuracy (the demo measures that)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from configs import baseline_synthetic, synthetic_cpu
from nemo_jax import data
from nemo_jax import eval as eval_lib
from nemo_jax.apps import estimate, evaluate
from nemo_jax.baseline import train_baseline
from nemo_jax.train.loop import train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("apps")
    options = data.make_options(
        "synthetic",
        {
            "categories": "car",
            "height": 32,
            "width": 32,
            "train_per_category": 16,
            "val_per_category": 8,
            "test_per_category": 2,
            "neural_vertices": 60,
        },
    )
    data.build("synthetic", str(root / "data"), options)
    config = synthetic_cpu.get_config("car")
    config.data.data_dir = str(root / "data")
    config.data.image_size = (32, 32)
    config.train.steps, config.train.batch_size, config.train.checkpoint_every = 2, 4, 2
    config.train.clutter_size, config.train.progress = 16, False
    config.model.width = 0.25
    config.eval.batch_size = 4
    train(config, str(root / "nemo" / "car"))
    base = baseline_synthetic.get_config()
    base.data.data_dir = str(root / "data")
    base.model.width = 0.25
    base.train.steps, base.train.batch_size = 2, 4
    train_baseline(base, str(root / "baseline"), log=lambda *_: None)
    return root


def test_evaluate_nemo_and_baseline_give_finite_results_json(tiny):
    # The run stores its inference settings (the config's section) beside the checkpoints.
    stored = json.load(open(tiny / "nemo" / "car" / "config.json"))["inference"]
    assert stored["steps"] == synthetic_cpu.get_config("car").inference.steps
    with pytest.raises(ValueError, match=r"overrides: inference.parametrization: expected one of"):
        evaluate.nemo_records(
            str(tiny / "nemo" / "car"),
            "synthetic",
            str(tiny / "data"),
            inference_overrides={"parametrization": "x"},
        )
    records = evaluate.nemo_records(
        str(tiny / "nemo" / "car"),
        "synthetic",
        str(tiny / "data"),
        levels=(0, 3),
        inference_overrides={"steps": 3},
    )
    base = evaluate.baseline_records(str(tiny / "baseline"), "synthetic", str(tiny / "data"), levels=(0, 3))
    for recs in (records, base):
        results = eval_lib.evaluate_records(recs)
        assert set(results["results"]["car"]) == {"L0", "L3"}
        assert results["results"]["car"]["L0"]["n"] == 2
        for r in results["predictions"]:
            assert all(np.isfinite(v) for v in r["pred"].values())
        json.dumps(results)  # serialisable as written by the tools


def test_estimate_pose_from_files(tiny, tmp_path):
    source = data.load("synthetic", "test_l0", str(tiny / "data"))
    Image.fromarray(source[0]["image"]).save(tmp_path / "a.png")
    out = tmp_path / "out"
    # NeMo's camera-position refinement via the inference overrides: the distance is the search's.
    records = estimate.estimate_poses(
        str(tiny / "nemo" / "car"),
        str(tmp_path),
        {"a.png": [4, 4, 28, 28]},
        str(out),
        category="car",
        inference_overrides={"inference.steps": 5, "inference.parametrization": "camera_position"},
    )
    assert len(records) == 1 and np.isfinite(records[0]["azimuth_deg"])
    assert np.isfinite(records[0]["distance"]) and records[0]["distance"] > 0
    assert (out / "predictions.json").exists() and (out / "a_pose.png").exists()
    with pytest.raises(ValueError, match="category"):
        estimate.estimate_poses(str(tiny / "nemo" / "car"), str(tmp_path), None, str(out), category="chair")


def test_demo_builds_each_categorys_own_config_then_the_overrides():
    from nemo_jax.apps.demo import category_configs  # noqa: PLC0415

    path = os.path.join(os.path.dirname(synthetic_cpu.__file__), "synthetic_cpu.py")
    build = category_configs(path + ":car", {"train.steps": 7, "model.feature_dim": 16}, progress=False)
    configs = {c: build(c) for c in ("car", "chair")}
    for category, config in configs.items():
        expected = synthetic_cpu.get_config(category)
        expected.train.steps, expected.model.feature_dim, expected.train.progress = 7, 16, False
        assert config.to_dict() == expected.to_dict()
    # Per-category settings reach the demo (the chair trains without flips, see the config).
    assert configs["car"].to_dict() != configs["chair"].to_dict()
    with pytest.raises(FileNotFoundError, match="no such config file"):
        category_configs(path + ".missing")
