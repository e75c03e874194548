"""tools/evaluate.py on a local PASCAL3D+ + OccludedPASCAL3D+ tree (fixture files in the real on-disk
formats): ``--manual_dir`` builds what ``--data_dir`` lacks, and NeMo's protocol takes L0 from the
clean PASCAL3D+ val set and L1-L3 from OccludedPASCAL3D+. Plumbing, not accuracy."""

from __future__ import annotations

import json
import os

import data_fixtures as fx
import numpy as np
import pytest
from conftest import run_tool

from configs import nemo_pascal3d
from nemo_jax import data
from nemo_jax.apps import evaluate
from nemo_jax.train.loop import train

# Motorbike crops are 512 x 512 in NeMo; shrink 16 gives 32 x 32 (a multiple of the backbone's 32).
OPTIONS = {"categories": "motorbike", "neural_vertices": "60", "shrink": "16"}


def _tiny_run(data_dir: str, workdir: str) -> None:
    config = nemo_pascal3d.get_config("motorbike")
    config.data.data_dir = data_dir
    config.data.image_size = (32, 32)
    config.model.name, config.model.width, config.model.feature_dim = "tiny", 0.25, 16
    config.model.pretrained = "none"  # the PASCAL3D+ config asks for an ImageNet file by default
    t = config.train
    t.steps, t.batch_size, t.checkpoint_every, t.log_every, t.progress = 2, 2, 2, 1, False
    t.clutter_size, t.clutter_per_image, t.distance_thr = 16, 2, 4.0
    t.render_stride, t.render_tile = 1, 8
    config.eval.num_batches = 0  # no held-out matching: this test checks evaluate.py
    train(config, workdir)


@pytest.mark.slow
def test_evaluate_tool_builds_and_reads_a_local_occluded_pascal3d_tree(tmp_path):
    manual, data_dir = str(tmp_path / "manual"), str(tmp_path / "data")
    views = fx.write_pascal3d(manual, categories=("motorbike",), per_split=(4, 2))
    # OccludedPASCAL3D+ is made from the val images: every level has the same 2 images (one batch
    # shape, one compiled search).
    fx.write_occluded(manual, {k: v for k, v in views.items() if "_val_" in k}, category="motorbike")
    # Training reads the clean set: build it first (as tools/build_data.py would).
    logged = []
    evaluate.ensure_datasets("pascal3d", data_dir, manual, ["motorbike"], OPTIONS, log=logged.append)
    assert "train" in logged[-1] and not os.path.isdir(os.path.join(data_dir, "occluded_pascal3d"))
    run = str(tmp_path / "run")
    _tiny_run(data_dir, run)

    out = str(tmp_path / "results.json")
    argv = ["--workdir", run, "--dataset", "occluded_pascal3d", "--data_dir", data_dir]
    argv += ["--manual_dir", manual, "--option", "shrink=16", "--option", "neural_vertices=60"]
    result = run_tool("evaluate", *argv, "--config.inference.steps=3", "--json", out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isdir(os.path.join(data_dir, "occluded_pascal3d"))  # built on demand
    results = json.load(open(out))
    table = results["results"]["motorbike"]
    # L0: the 2 clean val images (pascal3d: occluded_pascal3d has no L0); L1-L3: their occluded copies.
    assert {level: table[level]["n"] for level in ("L0", "L1", "L2", "L3")} == dict.fromkeys(table, 2)
    assert sorted(table) == ["L0", "L1", "L2", "L3"]
    levels = {r["level"] for r in results["predictions"]}
    assert levels == {"L0", "L1", "L2", "L3"}
    for record in results["predictions"]:
        assert np.isfinite([record["pred"][k] for k in ("azimuth", "elevation", "theta")]).all()
    val_ids = {r["id"] for r in results["predictions"] if r["level"] == "L0"}
    assert all("_val_" in i for i in val_ids)


def test_level_zero_of_a_set_without_test_splits_is_val_and_other_levels_fail_clearly(tmp_path):
    manual, data_dir = str(tmp_path / "manual"), str(tmp_path / "data")
    fx.write_pascal3d(manual, categories=("motorbike",), per_split=(2, 2))
    evaluate.ensure_datasets("pascal3d", data_dir, manual, ["motorbike"], OPTIONS, log=lambda *_: None)
    assert evaluate.level_source("pascal3d", 0, data_dir).split == "val"
    # An existing build is reused only if it holds the categories asked for.
    with pytest.raises(ValueError, match=r"lacks categories \['car'\]"):
        data.ensure_built("pascal3d", data_dir, OPTIONS, ["motorbike", "car"], manual, log=lambda *_: None)
    with pytest.raises(ValueError, match="no split 'test_l2'"):
        evaluate.level_source("pascal3d", 2, data_dir)
    with pytest.raises(FileNotFoundError, match="occluded_pascal3d"):
        evaluate.level_source("occluded_pascal3d", 1, data_dir)
