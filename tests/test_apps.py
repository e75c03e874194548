"""End-to-end smoke run of the main job's pieces on a tiny synthetic set: build, train NeMo and the
baseline for a few steps, evaluate, estimate a pose from a file. Checks plumbing, formats and the
never-a-NaN-pose rule, not accuracy (the demo measures that)."""

import json
import os
import re
import shutil

import numpy as np
import pytest
from conftest import run_tool
from PIL import Image

from configs import baseline_synthetic, synthetic_cpu
from nemo_jax import data
from nemo_jax import eval as eval_lib
from nemo_jax.apps import estimate, evaluate
from nemo_jax.baseline import train_baseline
from nemo_jax.data import crop_protocol
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


@pytest.mark.extended
def test_baseline_resumes_exactly(tiny, tmp_path):
    """A baseline run killed after step 3 (checkpoint at step 2) and restarted ends with the same
    weights and metrics as an uninterrupted one (checkpoints, metrics.jsonl and the batch order resume)."""
    import jax  # noqa: PLC0415

    from nemo_jax.baseline import load_baseline  # noqa: PLC0415

    class Killed(Exception):
        pass

    def kill_at_step_3(message):
        if message.startswith("baseline step 3/"):
            raise Killed

    def run(workdir, log=lambda *_: None):
        base = baseline_synthetic.get_config()
        base.data.data_dir = str(tiny / "data")
        base.model.width = 0.25
        base.train.batch_size, base.train.log_every, base.train.checkpoint_every = 4, 1, 2
        base.train.steps, base.train.progress = 4, False
        return train_baseline(base, str(workdir), log=log)

    whole = run(tmp_path / "whole")
    with pytest.raises(Killed):
        run(tmp_path / "split", log=kill_at_step_3)
    rest = run(tmp_path / "split")
    np.testing.assert_allclose(rest["losses"], whole["losses"][2:], rtol=1e-6)
    rows = lambda d: [json.loads(line) for line in open(tmp_path / d / "metrics.jsonl")]
    assert [r["step"] for r in rows("split")] == [1, 2, 3, 4]
    np.testing.assert_allclose(
        [r["loss"] for r in rows("split")], [r["loss"] for r in rows("whole")], rtol=1e-6
    )
    _, _, a = load_baseline(str(tmp_path / "whole"), (32, 32, 3))
    _, _, b = load_baseline(str(tmp_path / "split"), (32, 32, 3))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


@pytest.mark.extended
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
        # as the tools write it: the JSON text reads back to the same results, and every record's
        # error is the angle between its predicted and true rotations (computed here directly)
        back = json.loads(json.dumps(results))
        assert back["results"] == results["results"]
        errors = {}
        for r in back["predictions"]:
            rel = _rotation(r["pred"]).T @ _rotation(r["true"])
            angle = np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1)))
            assert r["error_deg"] == pytest.approx(angle, abs=1e-3)
            errors.setdefault(r["level"], []).append(angle)
        for level, errs in errors.items():
            r = back["results"]["car"][level]
            assert r["acc_pi6"] == pytest.approx(np.mean(np.array(errs) < 30.0))
            assert r["med_err_deg"] == pytest.approx(np.median(errs), abs=1e-3)


def _rotation(view):
    """NeMo's camera rotation Rz(theta) Rx(elevation - pi/2) Rz(-azimuth), radians."""

    def rz(x):
        return np.array([[np.cos(x), -np.sin(x), 0], [np.sin(x), np.cos(x), 0], [0, 0, 1]])

    def rx(x):
        return np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])

    return rz(view["theta"]) @ rx(view["elevation"] - np.pi / 2) @ rz(-view["azimuth"])


@pytest.mark.extended
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
    # The box-to-crop scale comes from the run's training statistics (synthetic: object masks).
    stats = crop_protocol.read(str(tiny / "nemo" / "car"))
    assert stats["image_size"] == [32, 32] and 0 < stats["box_diagonal_ratio"] < 1
    bare = tmp_path / "bare_run"
    shutil.copytree(tiny / "nemo" / "car", bare)
    os.remove(bare / crop_protocol.FILENAME)
    with pytest.raises(FileNotFoundError, match="crop_protocol.json.*--fill"):
        estimate.estimate_poses(str(bare), str(tmp_path), None, str(out), figures=False)
    again = estimate.estimate_poses(str(bare), str(tmp_path), None, str(out), fill=0.6, figures=False)
    assert np.isfinite(again[0]["azimuth_deg"])
    with pytest.raises(ValueError, match="category"):
        estimate.estimate_poses(str(tiny / "nemo" / "car"), str(tmp_path), None, str(out), category="chair")


@pytest.mark.extended
def test_estimate_pose_6d_from_files(tiny, tmp_path):
    """``mode="6d"``: no box; the records add the object's centre (image pixels) and the distance in
    the image's camera; an unknown mode is an error naming it."""
    source = data.load("synthetic", "test_l0", str(tiny / "data"))
    Image.fromarray(source[0]["image"]).save(tmp_path / "a.png")
    out = tmp_path / "out"
    # A small grid and few steps: plumbing, not accuracy (tests/test_inference_six_d.py measures that).
    overrides = {"inference.steps": 3, "inference.elevations_deg": (0.0,), "inference.thetas_deg": (0.0,)}
    records = estimate.estimate_poses(
        str(tiny / "nemo" / "car"),
        str(tmp_path),
        None,
        str(out),
        inference_overrides=overrides,
        mode="6d",
        distance_factors=(0.8, 1.25),
    )
    (record,) = records
    assert "error" not in record, record
    assert np.all(np.isfinite(record["centre"])) and len(record["centre"]) == 2
    assert record["distance"] > 0 and record["distance_image"] > 0
    assert json.loads((out / "predictions.json").read_text())[0]["centre"] == record["centre"]
    with pytest.raises(ValueError, match="six_d_starts: expected >= 1, got 0"):
        estimate.estimate_poses(
            str(tiny / "nemo" / "car"), str(tmp_path), None, str(out), mode="6d", six_d_starts=0
        )
    with pytest.raises(ValueError, match="mode: expected one of 3d, 6d, got '7d'"):
        estimate.estimate_poses(str(tiny / "nemo" / "car"), str(tmp_path), None, str(out), mode="7d")


@pytest.mark.extended
def test_six_d_check_reports_both_protocols_deterministically(tiny, tmp_path):
    """The 6D-vs-centred measurement on the tiny run: plumbing and determinism, not accuracy."""
    from nemo_jax.apps import six_d_check  # noqa: PLC0415

    overrides = {"inference.steps": 3, "inference.elevations_deg": (0.0,), "inference.thetas_deg": (0.0,)}
    kwargs = dict(views=3, seed=5, batch_size=2, distance_factors=(0.8, 1.25), inference_overrides=overrides)
    report = six_d_check.six_d_check(str(tiny / "nemo" / "car"), **kwargs, log=lambda *_: None)
    assert report["canvas_size"] == [64, 64] and report["crop_size"] == [32, 32]
    assert len(report["per_view"]) == 3 and report["six_d_starts"] == 4
    for view in report["per_view"]:
        assert 0.8 <= view["scale"] <= 1.25
        assert all(abs(c - 31.5) <= 16 for c in view["centre_px"])
        assert np.isfinite(view["six_d"]["centre_error_cells"]) and view["six_d"]["distance"] > 0
        assert 0 <= view["centred"]["error_deg"] <= 180
    for name in ("centred", "six_d"):
        assert 0 <= report[name]["acc_pi6"] <= 1
    again = six_d_check.six_d_check(str(tiny / "nemo" / "car"), **kwargs, log=lambda *_: None)
    assert again["per_view"] == report["per_view"]
    six_d_check.write_report(report, str(tmp_path / "r.json"))
    assert json.loads((tmp_path / "r.json").read_text())["six_d"] == report["six_d"]
    assert "Acc@pi/6" in six_d_check.format_report(report)


def test_six_d_config_refines_its_own_number_of_starts():
    """6D refines ``SIX_D_STARTS`` (or the given number of) coarse poses, whatever the centred
    search's ``num_starts``; fewer than 1 is an error naming the setting."""
    from nemo_jax.apps.estimate import SIX_D_STARTS, six_d_config  # noqa: PLC0415
    from nemo_jax.inference import SearchConfig  # noqa: PLC0415
    from nemo_jax.mesh import cuboid_mesh  # noqa: PLC0415
    from nemo_jax.render import RasterSettings  # noqa: PLC0415

    v, f = cuboid_mesh([-0.2, -0.5, -0.17], [0.2, 0.5, 0.17], 60)
    mesh = type("Mesh", (), {"vertices": v, "faces": f})()
    search = SearchConfig(raster=RasterSettings(24, 24, tile_height=4, tile_width=4), num_starts=1)
    args = (search, mesh, 90.0, 5.0, (0.8, 1.0, 1.25), (64, 64), 4)
    assert six_d_config(*args).search.num_starts == SIX_D_STARTS == 4
    assert six_d_config(*args, num_starts=2).search.num_starts == 2
    assert six_d_config(*args).search.raster.height == 24
    with pytest.raises(ValueError, match="6D starts: expected >= 1, got 0"):
        six_d_config(*args, num_starts=0)


def test_six_d_flags_name_a_centre_off_the_image_and_a_distance_at_the_bound():
    from nemo_jax.apps.estimate import six_d_flags  # noqa: PLC0415

    factors = (0.7, 1.0, 1.4)  # the refinement's range: 0.35 to 2.8
    assert six_d_flags([30.0, 20.0], (64, 48, 3), 1.1, factors) == []
    assert six_d_flags([30.0, -3.0], (64, 48, 3), 1.1, factors) == ["centre outside image"]
    assert six_d_flags([50.0, 20.0], (64, 48, 3), 1.1, factors) == ["centre outside image"]
    assert six_d_flags([30.0, 20.0], (64, 48, 3), 0.35, factors) == ["distance at search bound"]
    assert six_d_flags([30.0, 20.0], (64, 48, 3), 2.8, factors) == ["distance at search bound"]


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


@pytest.mark.extended
def test_baseline_validation_curve_lands_in_metrics(tiny, tmp_path):
    """``eval.every``: Acc@pi/6 on a validation split during training, as ``split="val"`` rows."""
    base = baseline_synthetic.get_config()
    base.data.data_dir = str(tiny / "data")
    base.model.width, base.model.dropout = 0.25, 0.2
    t = base.train
    t.steps, t.batch_size, t.log_every, t.checkpoint_every, t.progress = 4, 4, 2, 4, False
    t.label_smoothing, t.augment.flip_prob, t.augment.scale_jitter = 0.1, 0.5, 0.1
    base.eval.every, base.eval.split = 2, "val"
    result = train_baseline(base, str(tmp_path / "run"), log=lambda *_: None)
    assert [(v["step"], v["n"]) for v in result["validation"]] == [(2, 8), (4, 8)]
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    val = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in val] == [2, 4]
    assert all(0.0 <= r["acc_pi6"] <= 1.0 and np.isfinite(r["med_err_deg"]) for r in val)


@pytest.mark.extended
def test_calibrate_then_every_prediction_has_a_confidence(tiny, tmp_path):
    """evaluate(calibrate=True) stores calibration.json in the run; later evaluations and
    estimate_pose read it: every prediction gets a confidence in [0, 1], the results ECE and AUROC."""
    from nemo_jax.apps import calibrate  # noqa: PLC0415
    from nemo_jax.inference import confidence  # noqa: PLC0415

    run = tmp_path / "car"
    shutil.copytree(tiny / "nemo" / "car", run)
    overrides = {"steps": 3}
    plain = evaluate.evaluate(
        str(run), "synthetic", str(tiny / "data"), levels=(0, 3), inference_overrides=overrides
    )
    assert "confidence" not in plain and all("confidence" not in p for p in plain["predictions"])
    assert all(set(p["confidence_features"]) == set(confidence.FEATURE_NAMES) for p in plain["predictions"])
    assert "--calibrate" in calibrate.how_to_calibrate(str(run))
    with pytest.raises(ValueError, match="was trained on"):  # its test images: refused
        evaluate.evaluate(str(run), "synthetic", str(tiny / "data"), levels=(0, 3), calibrate=True)
    val = tmp_path / "val"  # a copy of the data stands in for a validation set here
    shutil.copytree(tiny / "data", val)
    fitted = evaluate.evaluate(
        str(run), "synthetic", str(val), levels=(0, 3), inference_overrides=overrides, calibrate=True
    )
    doc = json.load(open(run / confidence.FILENAME))
    assert doc["fitted_on"]["splits"] == ["test_l0", "test_l3"] and doc["fitted_on"]["data_dir"] == str(val)
    assert doc["fitted_on"]["ids"] == [p["id"] for p in fitted["predictions"]]
    assert doc["fitted_on"]["fit"]["n"] == 4
    # a later evaluation reads the stored map: the same confidences
    again = evaluate.evaluate(
        str(run), "synthetic", str(tiny / "data"), levels=(0, 3), inference_overrides=overrides
    )
    conf = [p["confidence"] for p in again["predictions"]]
    np.testing.assert_allclose(conf, [p["confidence"] for p in fitted["predictions"]], atol=1e-6)
    assert all(0.0 <= c <= 1.0 for c in conf)
    assert again["confidence"]["all"]["n"] == 4 and 0.0 <= again["confidence"]["all"]["ece"] <= 1.0
    figures = calibrate.confidence_figures(str(tmp_path / "figs"), again)
    assert [os.path.basename(f) for f in figures] == ["reliability.png", "selective_accuracy.png"]
    assert all(Image.open(f).size[0] > 100 for f in figures)
    # estimate_pose reports the confidence too
    source = data.load("synthetic", "test_l0", str(tiny / "data"))
    Image.fromarray(source[0]["image"]).save(tmp_path / "a.png")
    records = estimate.estimate_poses(
        str(run), str(tmp_path), None, str(tmp_path / "out"), figures=False, inference_overrides=overrides
    )
    assert 0.0 <= records[0]["confidence"] <= 1.0


def _tiny_demo_flags(workdir, data_dir) -> list[str]:
    """A demo of one category at a few steps per job (every job, both baselines included)."""
    flags = ["--workdir", str(workdir), "--data_dir", str(data_dir), "--categories", "car", "--jobs", "2"]
    flags += ["--progress_every", "2", "--nemo_config.inference.steps=3", "--nemo_config.model.width=0.25"]
    flags += ["--nemo_config.train.clutter_size=16", "--nemo_config.eval.num_batches=0"]
    for name in ("nemo_config", "baseline_config", "baseline_specific_config"):
        flags += [f"--{name}.train.steps=4", f"--{name}.train.batch_size=4", f"--{name}.train.log_every=2"]
    flags += ["--baseline_config.model.width=0.25", "--baseline_specific_config.model.width=0.25"]
    return flags


@pytest.mark.extended
def test_tiny_demo_talks_like_a_tool(tmp_path):
    """The demo run as a user runs it, stdout a pipe: plain progress lines for every job (no
    carriage returns), no third-party warnings, both baselines scored and in the table, and a last
    word saying where everything is."""
    options = data.make_options(
        "synthetic",
        {"categories": "car", "train_per_category": 8, "val_per_category": 2, "test_per_category": 2},
    )
    data.build("synthetic", str(tmp_path / "data"), options, progress=False)
    result = run_tool("demo", *_tiny_demo_flags(tmp_path / "demo", tmp_path / "data"), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    lines = text.splitlines()
    assert "\r" not in result.stdout
    assert not [line for line in lines if line.startswith("WARNING:absl")]
    assert not [line for line in lines if re.match(r"W\d{4} ", line)]  # absl-style C++ warnings
    for label in ("NeMo car", "baseline General", "baseline Specific"):
        steps = [line for line in lines if line.startswith(label) and re.search(r"step +\d+/4", line)]
        assert steps, f"no progress line for {label!r}"
        assert [line for line in lines if line.startswith(label) and " done: " in line]
    stored = json.load(open(tmp_path / "demo" / "results.json"))
    assert {"nemo", "baseline", "baseline_specific"} <= set(stored)
    assert stored["baseline_specific"]["results"]["car"]["L0"]["n"] == 2
    assert os.path.isfile(tmp_path / "demo" / "baseline_specific" / "car" / "config.json")
    row = r"(nemo|baseline|baseline_specific) +(\d+\.\d +)*\d+\.\d"  # print_results_table's rows
    table = [line for line in lines if re.fullmatch(row, line)]
    assert [line.split()[0] for line in table] == ["nemo", "baseline", "baseline_specific"]
    tail = "\n".join(lines[-8:])
    assert str(tmp_path / "demo" / "results.json") in tail and "nemo-jax-evaluate --workdir" in tail


def test_progress_lines_follow_each_jobs_metrics(tmp_path):
    """Plain mode: a line per job every ``every`` steps, when it starts scoring and when it ends,
    read from its metrics.jsonl (a nested job sums its categories' runs); live mode redraws the
    block of lines in place."""
    import io  # noqa: PLC0415

    from nemo_jax.apps.demo import JobWatch, Progress  # noqa: PLC0415

    def write(folder, step):
        folder.mkdir(parents=True, exist_ok=True)
        row = {"step": step, "split": "train", "loss": 1.5, "images_per_s": 40.0}
        with open(folder / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")

    jobs = [
        JobWatch("car", "NeMo car", str(tmp_path / "car"), 10),
        JobWatch("spec", "baseline Specific", str(tmp_path / "spec"), 10, nested=True),
    ]
    out = io.StringIO()
    progress = Progress(out, interval=3600, every=4, live=False)
    progress.start(jobs)
    write(tmp_path / "car", 4)
    write(tmp_path / "spec" / "car", 5)
    progress._tick()
    write(tmp_path / "car", 6)  # not yet 4 more steps: no line
    write(tmp_path / "spec" / "chair", 5)  # 5 + 5 = 10 of 10: scoring
    progress._tick()
    write(tmp_path / "car", 10)
    progress._tick()
    progress.finished("car", {"line": "NeMo car: trained in 1 s"})
    progress.finished("spec", {"line": "Baseline (Res50-Specific): trained in 1 s"})
    progress.stop()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    car = [line for line in lines if line.startswith("NeMo car")]
    assert [re.search(r"step +(\d+)/10", line).group(1) for line in car] == ["4", "10", "10"]
    assert "loss 1.500" in car[0] and "40.0 img/s" in car[0] and "left" in car[0]
    assert "scoring" in car[1] and "done: NeMo car: trained in 1 s" in car[2]
    spec = [line for line in lines if line.startswith("baseline Specific")]
    assert [re.search(r"step +(\d+)/10", line).group(1) for line in spec] == ["5", "10", "10"]
    live = io.StringIO()
    progress = Progress(live, interval=3600, live=True)
    progress.start(jobs)
    progress._tick()
    progress.stop()
    assert live.getvalue().count("\x1b[2F") == 1  # the second drawing moved up over the first
