"""Reliability cases: no confident answer from garbage, runs that travel, resume that
survives damage, output that is all-or-nothing, errors that name the thing.

One tiny NeMo run (synthetic 32 x 32 car images, 2 steps, a checkpoint per step) is trained once
per module with RELATIVE paths from its own folder; tests damage copies of it.
"""

import glob
import json
import os
import shutil

import numpy as np
import pytest
from conftest import ROOT, run_tool

from configs import synthetic_cpu
from nemo_jax import data
from nemo_jax.train import checkpoint as checkpoint_lib
from nemo_jax.train import load_run, train

TINY_OPTIONS = {
    "categories": "car",
    "height": 32,
    "width": 32,
    "train_per_category": 8,
    "val_per_category": 4,
    "test_per_category": 2,
    "neural_vertices": 60,
}


def _tiny_config(data_dir):
    config = synthetic_cpu.get_config("car")
    config.data.data_dir = data_dir
    config.data.image_size = (32, 32)
    config.train.steps, config.train.batch_size, config.train.checkpoint_every = 2, 4, 1
    config.train.clutter_size, config.train.progress = 16, False
    config.model.width = 0.25
    config.eval.batch_size = 4
    config.eval.num_batches = 0
    return config


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """``root/site``: ``data/`` (tiny synthetic set) and ``runs/car`` (2 steps), both made with paths
    relative to ``root/site`` as the working directory."""
    root = tmp_path_factory.mktemp("reliability")
    site = root / "site"
    site.mkdir()
    cwd = os.getcwd()
    os.chdir(site)
    try:
        data.build("synthetic", "data", data.make_options("synthetic", TINY_OPTIONS), progress=False)
        train(_tiny_config("data"), "runs/car")
    finally:
        os.chdir(cwd)
    return site


def _copy_run(site, dest):
    shutil.copytree(site / "runs" / "car", dest)
    return dest


def _leaves(variables):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(variables)]


def _run_params(run, step):
    """The backbone parameters saved at ``step`` of ``run`` (leaves in tree order)."""
    import orbax.checkpoint as ocp

    tree = ocp.StandardCheckpointer().restore(str(run / "checkpoints" / str(step) / "default"))
    return _leaves(tree["params"])


def _reference_params(site, step):
    return _run_params(site / "runs" / "car", step)


# ---------------------------------------------------------------------------------------------
# 2. Runs that travel


def test_run_config_stores_absolute_paths(site):
    saved = json.loads((site / "runs" / "car" / "config.json").read_text())
    assert saved["data"]["data_dir"] == str(site / "data")


@pytest.mark.extended
def test_moved_run_and_dataset_evaluate_from_a_third_folder(site, tmp_path, monkeypatch):
    from nemo_jax.apps import evaluate

    moved = tmp_path / "moved"
    shutil.move(str(site), str(moved))  # the run's folder and the dataset, old paths gone
    try:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        records = evaluate.nemo_records(
            str(moved / "runs" / "car"),
            "synthetic",
            str(moved / "data"),
            levels=(0,),
            inference_overrides={"steps": 2},
        )
        assert len(records) == 2 and all(np.isfinite(r["pred"]["azimuth"]) for r in records)
        assert not os.listdir(elsewhere)  # nothing written in the working directory
    finally:
        shutil.move(str(moved), str(site))


# ---------------------------------------------------------------------------------------------
# 1. No confident answer from garbage: the checkpoint part


def test_checkpoint_with_nonfinite_parameters_fails_at_load_naming_the_step(site, tmp_path):
    import jax
    import orbax.checkpoint as ocp

    run = _copy_run(site, tmp_path / "run")
    tree = ocp.StandardCheckpointer().restore(str(run / "checkpoints" / "2" / "default"))
    target = jax.tree_util.tree_flatten_with_path(tree["params"])[0][0][0]  # the first parameter

    def poison(path, x):
        if path[1:] != target:
            return x
        x = np.array(x)
        x.flat[0] = np.nan
        return x

    tree = {
        **tree,
        "params": jax.tree_util.tree_map_with_path(lambda p, x: poison(("params", *p), x), tree["params"]),
    }
    config = json.loads((run / "config.json").read_text())
    mesh_info = json.loads((run / "mesh.json").read_text())
    ck = checkpoint_lib.Checkpointer(str(run), config, mesh_info, every=1)
    ck.save(3, tree, force=True)
    ck.close()
    with pytest.raises(
        checkpoint_lib.NonFiniteCheckpointError, match=r"checkpoints/3: checkpoint step 3 .* params/"
    ):
        load_run(str(run))


# ---------------------------------------------------------------------------------------------
# 3. Resume that survives damage


def _truncate(path, size=20):
    with open(path, "r+b") as fh:
        fh.truncate(size)


def _array_files(step_dir):
    return [p for p in glob.glob(os.path.join(step_dir, "default", "**", "d", "*"), recursive=True)]


@pytest.mark.parametrize("damage", ["metadata", "arrays"])
def test_damaged_newest_checkpoint_named_falls_back_and_is_kept(site, tmp_path, damage):
    run = _copy_run(site, tmp_path / "run")
    step2 = run / "checkpoints" / "2"
    if damage == "metadata":
        _truncate(step2 / "default" / "_METADATA", 100)
    else:
        for path in _array_files(str(step2)):
            _truncate(path)
    with pytest.warns(UserWarning, match="checkpoint step 2 is damaged") as caught:
        _, _, variables, _ = load_run(str(run))
    messages = " ".join(str(w.message) for w in caught)
    assert "restored step 1" in messages and "does not match" not in messages
    assert step2.is_dir()  # kept for inspection, not deleted
    for a, b in zip(_leaves(variables["params"]), _reference_params(site, 1), strict=True):
        np.testing.assert_array_equal(a, b)
    # asking for that step exactly: a clear error naming it, not a structure mismatch
    with pytest.raises(
        checkpoint_lib.CheckpointDamagedError, match="checkpoints/2: checkpoint step 2 is damaged"
    ):
        load_run(str(run), step=2)


@pytest.mark.extended
def test_resume_past_a_damaged_checkpoint_is_bit_exact_and_keeps_it(site, tmp_path):
    run = _copy_run(site, tmp_path / "run")
    for path in _array_files(str(run / "checkpoints" / "2")):
        _truncate(path)
    with open(run / "metrics.jsonl", "a") as fh:  # and a kill while writing a metrics row
        fh.write('{"step": 3, "split": "tra')
    with pytest.warns(UserWarning) as caught:
        train(_tiny_config(str(site / "data")), str(run))
    messages = " ".join(str(w.message) for w in caught)
    assert "checkpoint step 2 is damaged" in messages
    assert "metrics.jsonl:" in messages and "dropped a partial last line" in messages
    assert (run / "damaged_checkpoints" / "2").is_dir()
    # the resumed run recomputed step 2 exactly as the undamaged run did
    for a, b in zip(_run_params(run, 2), _reference_params(site, 2), strict=True):
        np.testing.assert_array_equal(a, b)
    # and its metrics.jsonl holds the same losses at the same steps
    rows, ref = (
        [(r["step"], r["loss"]) for r in map(json.loads, open(d / "metrics.jsonl")) if r["split"] == "train"]
        for d in (run, site / "runs" / "car")
    )
    assert rows == ref and rows


def test_metrics_jsonl_damaged_line_before_the_last_is_named(tmp_path):
    from nemo_jax.train.metrics import read_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo\n{"step": 3, "loss": 1.0}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a JSON row"):
        read_metrics(str(path))
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    with pytest.warns(UserWarning, match=r"metrics.jsonl:2: dropped a partial last line"):
        assert read_metrics(str(path)) == [{"step": 1, "loss": 2.0}]


def test_failed_run_leaves_no_workdir_behind(site, tmp_path):
    import flax.linen as nn

    class Broken(nn.Module):  # fails once the run has written its config.json
        @nn.compact
        def __call__(self, x, train=False):
            raise RuntimeError("broken backbone")

    config = _tiny_config(str(site / "data"))
    with pytest.raises(RuntimeError, match="broken backbone"):
        train(config, str(tmp_path / "run"), model=Broken(), preprocess=lambda x: x)
    assert not (tmp_path / "run").exists()
    (tmp_path / "mine").mkdir()  # a folder the user made stays, empty
    with pytest.raises(RuntimeError, match="broken backbone"):
        train(config, str(tmp_path / "mine"), model=Broken(), preprocess=lambda x: x)
    assert (tmp_path / "mine").is_dir() and not os.listdir(tmp_path / "mine")


def test_evaluate_on_a_run_without_checkpoints_creates_nothing(site, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "mesh.json"):
        shutil.copy(site / "runs" / "car" / name, run / name)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_run(str(run))
    assert sorted(os.listdir(run)) == ["config.json", "mesh.json"]


def test_interrupted_build_leftovers_cleaned_on_next_build(tmp_path):
    data_dir = tmp_path / "data"
    incomplete = data_dir / "synthetic" / "incomplete.1a2b3c_1.0.0"
    rebuild = data_dir / ".rebuild-x7y8" / "synthetic" / "1.0.0"
    other = data_dir / ".rebuild-other" / "pascal3d"  # another dataset's: not ours to remove
    for folder in (incomplete, rebuild, other):
        folder.mkdir(parents=True)
        (folder / "part.array_record").write_bytes(b"x" * 10)
    options = data.make_options("synthetic", {**TINY_OPTIONS, "train_per_category": 2, "val_per_category": 1})
    stats = data.build("synthetic", str(data_dir), options, progress=False)
    assert not incomplete.exists() and not (data_dir / ".rebuild-x7y8").exists()
    assert other.exists()
    assert stats.path == str(data_dir / "synthetic" / "1.0.0")
    assert sorted(os.listdir(data_dir / "synthetic")) == ["1.0.0"]


# ---------------------------------------------------------------------------------------------
# 5. Errors that name the thing (data side)


def test_option_with_a_bad_value_names_the_option():
    with pytest.raises(ValueError, match=r"synthetic options: height='abc' is not a valid int"):
        data.make_options("synthetic", {"height": "abc"})
    with pytest.raises(ValueError, match=r"categories"):
        data.make_options("synthetic", {"no_such": "1", "categories": "car"})


def _read_only_dir(tmp_path):
    """A folder this process cannot write to (chmod 555; under root, a sysfs path)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").write_text("")
    except OSError:
        return folder
    for candidate in ("/sys/nemo_jax_read_only", "/proc/nemo_jax_read_only"):
        try:
            os.makedirs(candidate)
        except OSError:
            return candidate
        os.rmdir(candidate)
    pytest.skip("no read-only folder available")


def test_read_only_data_dir_gives_a_message(tmp_path):
    folder = _read_only_dir(tmp_path)
    data_dir = os.path.join(folder, "data")
    with pytest.raises(OSError, match=r"data_dir .*: cannot write the dataset there"):
        data.build("synthetic", data_dir, progress=False)


def test_project_pascal3d_nonfinite_angles_checked_wrapper():
    from nemo_jax.geometry import checked_project_pascal3d, project_pascal3d

    points = np.array([[0.1, 0.2, 0.3], [-0.2, 0.1, 0.0]], np.float32)
    view = dict(azimuth=30.0, elevation=10.0, theta=0.0, distance=5.0, px=50.0, py=40.0)
    np.testing.assert_allclose(
        np.asarray(checked_project_pascal3d(points, **view)), np.asarray(project_pascal3d(points, **view))
    )
    assert np.isnan(np.asarray(project_pascal3d(points, **{**view, "azimuth": np.nan}))).all()  # documented
    with pytest.raises(ValueError, match="azimuth: must be a finite number"):
        checked_project_pascal3d(points, **{**view, "azimuth": np.nan})
    with pytest.raises(ValueError, match="distance: must be > 0"):
        checked_project_pascal3d(points, **{**view, "distance": 0.0})
    with pytest.raises(ValueError, match="focal: must be > 0"):
        checked_project_pascal3d(points, **view, focal=0.0)


def test_render_memory_estimate_bounds_the_compiled_need_and_refuses_huge_sizes():
    import jax
    import jax.numpy as jnp

    from nemo_jax.geometry import camera_from_viewpoint
    from nemo_jax.mesh import cuboid_mesh
    from nemo_jax.render import RasterSettings, render
    from nemo_jax.render.memory import check_render_fits, render_bytes

    v, f = cuboid_mesh([-0.2, -0.5, -0.17], [0.2, 0.5, 0.17], 200)
    cam = camera_from_viewpoint(
        *(jnp.deg2rad(jnp.float32(a)) for a in (30, 15, 0)),
        distance=5.0,
        px=32.0,
        py=24.0,
        focal=1.0,
        viewport=3000.0,
    )
    small = RasterSettings(height=48, width=64, tile_height=16, tile_width=16)
    compiled = (
        jax.jit(render, static_argnames="settings")
        .lower(jnp.asarray(v), jnp.asarray(f), cam, small)
        .compile()
    )
    m = compiled.memory_analysis()
    actual = m.temp_size_in_bytes + m.output_size_in_bytes + m.argument_size_in_bytes
    estimate = render_bytes(len(v), len(f), small, cam)
    assert actual <= estimate <= 10 * actual  # an upper bound, of the right size
    huge = RasterSettings(height=20000, width=20000, tile_height=16, tile_width=16)
    assert render_bytes(len(v), len(f), huge, cam) > 24e9
    with pytest.raises(MemoryError, match=r"20000 x 20000 .* GB .* 24.0 GB available"):
        check_render_fits(len(v), len(f), huge, cam, available=24e9)
    check_render_fits(len(v), len(f), small, cam, available=24e9)  # fits: no error


# ---------------------------------------------------------------------------------------------
# 4. Output that is all-or-nothing; 1. degenerate input flagged; 5. boxes named


def _listing(folder):
    """The files of a tool's output folder, its ownership manifest aside (nemo_jax.output)."""
    from nemo_jax import output

    return sorted(n for n in os.listdir(folder) if n != output.MANIFEST)


def _images(site, folder, names):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    source = data.load("synthetic", "test_l0", str(site / "data"))
    for i, name in enumerate(names):
        Image.fromarray(source[i % len(source)]["image"]).save(folder / name)
    return folder


@pytest.mark.extended
def test_estimate_pose_skips_bad_images_flags_degenerate_ones_and_writes_atomically(
    site, tmp_path, monkeypatch
):
    from PIL import Image

    from nemo_jax.apps import estimate

    images = _images(site, tmp_path / "images", ["a.png", "b.png", "d.png"])
    Image.fromarray(np.full((1, 1, 3), 128, np.uint8)).save(images / "e.png")  # a 1 x 1 image
    (images / "c.png").write_bytes(b"not an image")
    boxes = {"b.png": [float("nan"), 0, 20, 20], "d.png": [100, 100, 130, 130]}
    out = tmp_path / "out"
    messages = []
    records = estimate.estimate_poses(
        str(site / "runs" / "car"),
        str(images),
        boxes,
        str(out),
        boxes_source="boxes.json",
        log=messages.append,
    )
    by_name = {r["image"]: r for r in records}
    assert sorted(by_name) == ["a.png", "b.png", "c.png", "d.png", "e.png"]
    # bad images: reported (naming the image and, for a box, the file) and skipped; the others kept
    assert "boxes.json: box of 'b.png': non-finite" in by_name["b.png"]["error"]
    assert "c.png: not a readable image" in by_name["c.png"]["error"]
    assert (
        np.isfinite(by_name["a.png"]["azimuth_deg"]) and "box outside image" not in by_name["a.png"]["flags"]
    )
    # degenerate input: a pose, flagged, and a warning naming the image
    assert {"box outside image", "empty crop"} <= set(by_name["d.png"]["flags"])
    assert "tiny box" in by_name["e.png"]["flags"]  # one grey pixel, upscaled
    for name in ("b.png", "c.png", "d.png", "e.png"):
        assert any(m.startswith(f"warning: {name}: ") for m in messages), messages
    saved = json.loads((out / "predictions.json").read_text())
    assert [r["image"] for r in saved] == sorted(by_name)
    assert _listing(out) == ["a_pose.png", "d_pose.png", "e_pose.png", "predictions.json"]

    # an existing --out from another input is replaced whole
    other = _images(site, tmp_path / "other", ["f.png"])
    estimate.estimate_poses(str(site / "runs" / "car"), str(other), None, str(out), figures=False)
    assert _listing(out) == ["predictions.json"]
    # a run that fails midway leaves the previous output as it was, and no scratch folder
    before = (out / "predictions.json").read_text()
    from nemo_jax import viz

    monkeypatch.setattr(viz, "figure_one", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError, match="disk full"):
        estimate.estimate_poses(str(site / "runs" / "car"), str(images), None, str(out))
    assert (out / "predictions.json").read_text() == before and _listing(out) == ["predictions.json"]
    assert sorted(os.listdir(tmp_path)) == ["images", "other", "out"]
    # an --out holding something else is refused before any work
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files that estimate-pose did not write \(notes.txt\)"):
        estimate.estimate_poses(str(site / "runs" / "car"), str(images), None, str(foreign))
    assert os.listdir(foreign) == ["notes.txt"]


def test_boxes_errors_name_the_file_and_the_image(site, tmp_path):
    from nemo_jax.apps import estimate

    path = tmp_path / "boxes.json"
    path.write_text('{"a.png": [1, 2, 3, 4]')  # truncated
    with pytest.raises(ValueError, match=r"boxes.json: not valid JSON"):
        estimate.load_boxes(str(path))
    path.write_text("[[1, 2, 3, 4]]")
    with pytest.raises(ValueError, match=r"boxes.json: expected an object"):
        estimate.load_boxes(str(path))
    for box in ([1, 2, 3], "0 0 10 10", [0, 0, "10", 10], [0, 0, True, 10], [5, 0, 1, 10]):
        with pytest.raises(ValueError, match=r"boxes.json: box of 'a.png'"):
            estimate.check_box(box, "boxes.json: box of 'a.png'")
    # a key naming no image (including by case) is an error listing them, before any work
    images = _images(site, tmp_path / "images", ["a.png"])
    with pytest.raises(
        ValueError, match=r"boxes.json: boxes for images not in .*'A.PNG' \(did you mean 'a.png'\?\), 'z.png'"
    ):
        boxes = {"A.PNG": [0, 0, 5, 5], "z.png": [0, 0, 5, 5]}
        estimate.estimate_poses(
            str(tmp_path / "no_run"), str(images), boxes, str(tmp_path / "o"), boxes_source="boxes.json"
        )
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------
# 1. + 5. The command-line tools: camera values, memory, levels, options, output paths, config


@pytest.mark.extended
def test_render_mesh_rejects_nonfinite_or_nonpositive_camera_values(tmp_path):
    from nemo_jax.apps.render_mesh import load_mesh, render_views

    v, f = load_mesh("cuboid")
    view = dict(azimuth_deg=30.0, elevation_deg=15.0, theta_deg=0.0, distance=5.0, px=32.0, py=24.0)
    with pytest.raises(ValueError, match="--focal: must be > 0"):
        render_views(v, f, **view, height=48, width=64, focal=0.0)
    with pytest.raises(ValueError, match="--elevation: must be a finite number"):
        render_views(v, f, **{**view, "elevation_deg": float("inf")}, height=48, width=64)
    out = tmp_path / "car"
    common = ["--mesh", "cuboid", "--elevation", "15", "--theta", "0", "--distance", "5", "--px", "32"]
    common += ["--py", "24", "--out", out]
    result = run_tool("render_mesh", *common, "--azimuth", "nan", "--width", "64", "--height", "48")
    assert result.returncode != 0 and "--azimuth: must be a finite number, got nan" in result.stderr
    assert not list(tmp_path.iterdir())  # no empty mask written
    # far too large: refused from the estimate, before compiling or allocating
    result = run_tool("render_mesh", *common, "--azimuth", "30", "--width", "40000", "--height", "40000")
    assert (
        result.returncode != 0 and "40000 x 40000 render" in result.stderr and "GB available" in result.stderr
    )
    assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())


@pytest.mark.parametrize("levels", ["7", "a", "0,,x"])
def test_evaluate_levels_errors_are_clear(site, levels):
    result = run_tool(
        "evaluate", "--workdir", site / "runs" / "car", "--data_dir", site / "data", "--levels", levels
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"--levels {levels!r}" in result.stderr and "is not an occlusion level" in result.stderr


def test_evaluate_json_pointing_at_a_folder_fails_before_the_work(site, tmp_path):
    args = [
        "--workdir",
        site / "runs" / "car",
        "--data_dir",
        site / "data",
        "--levels",
        "0",
        "--json",
        tmp_path,
    ]
    result = run_tool("evaluate", *args)
    assert result.returncode == 1 and f"--json {tmp_path}: is a folder" in result.stderr
    assert "L0" not in result.stdout and "Traceback" not in result.stderr  # no table: nothing was evaluated


@pytest.mark.extended
def test_build_data_option_value_and_read_only_data_dir_named(tmp_path):
    result = run_tool(
        "build_data", "--dataset", "synthetic", "--data_dir", tmp_path / "d", "--option", "height=abc"
    )
    assert result.returncode == 1 and "height='abc' is not a valid int" in result.stderr
    assert "Traceback" not in result.stderr
    folder = _read_only_dir(tmp_path)
    result = run_tool("build_data", "--dataset", "synthetic", "--data_dir", os.path.join(folder, "data"))
    assert result.returncode == 1 and "cannot write the dataset there" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.extended
def test_bad_config_override_is_one_line_did_you_mean_without_traceback(tmp_path):
    smoke = os.path.join(ROOT, "configs", "smoke.py")
    result = run_tool("train", f"--config={smoke}", f"--workdir={tmp_path / 'w'}", "--config.train.stepz=3")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "stepz" in line]
    assert len(lines) == 1 and 'Did you mean "steps"' in lines[0] and "--config.train.stepz=3" in lines[0]
    assert not (tmp_path / "w").exists()


def test_estimate_pose_tool_names_a_malformed_boxes_file(site, tmp_path):
    images = _images(site, tmp_path / "images", ["a.png"])
    boxes = tmp_path / "boxes.json"
    boxes.write_text('{"a.png": [1, 2, 3')
    result = run_tool("estimate_pose", "--images", images, "--category", "car", "--checkpoint",
                      site / "runs" / "car", "--boxes", boxes, "--out", tmp_path / "out")  # fmt: skip
    assert result.returncode == 1 and f"{boxes}: not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_render_requires_integer_face_indices():
    import jax.numpy as jnp

    from nemo_jax.geometry import camera_from_viewpoint
    from nemo_jax.mesh import cuboid_mesh
    from nemo_jax.render import RasterSettings, render, render_exact

    v, f = cuboid_mesh([-0.2, -0.5, -0.17], [0.2, 0.5, 0.17], 60)
    cam = camera_from_viewpoint(0.5, 0.3, 0.0, 5.0, 16.0, 12.0, 1.0, 300.0)
    settings = RasterSettings(height=24, width=32)
    with pytest.raises(TypeError, match="render: faces must be integer vertex indices, got dtype float32"):
        render(jnp.asarray(v), jnp.asarray(f, jnp.float32) + 0.7, cam, settings)
    with pytest.raises(TypeError, match="render: faces must be integer"):
        render_exact(v, np.asarray(f, np.float64), cam, settings)


@pytest.mark.extended
def test_evaluate_results_record_the_checkpoint_step_and_path_scored(site, tmp_path):
    from nemo_jax.apps import evaluate

    run = _copy_run(site, tmp_path / "run")
    for path in _array_files(str(run / "checkpoints" / "2")):  # step 2 damaged: step 1 is scored
        _truncate(path)
    with pytest.warns(UserWarning, match="checkpoint step 2 is damaged"):
        results = evaluate.evaluate(
            str(run), "synthetic", str(site / "data"), levels=(0,), inference_overrides={"steps": 2}
        )
    assert results["checkpoints"] == [
        {"workdir": str(run), "step": 1, "path": str(run / "checkpoints" / "1")}
    ]


@pytest.mark.extended
def test_estimate_pose_exits_1_when_every_image_was_skipped(site, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "c.png").write_bytes(b"not an image")
    result = run_tool("estimate_pose", "--images", images, "--category", "car", "--checkpoint",
                      site / "runs" / "car", "--out", tmp_path / "out")  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "c.png: not a readable image" in result.stdout + result.stderr
    assert f"every image in {images} was skipped" in result.stderr


@pytest.mark.extended
def test_estimate_pose_names_out_on_a_full_disk_and_keeps_the_previous_output(site, tmp_path, monkeypatch):
    import errno

    from nemo_jax import output
    from nemo_jax.apps import estimate

    images = _images(site, tmp_path / "images", ["a.png"])
    out = tmp_path / "out"
    estimate.estimate_poses(str(site / "runs" / "car"), str(images), None, str(out), figures=False)
    before = (out / "predictions.json").read_text()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output, "commit_output", full)
    with pytest.raises(OSError, match=rf"--out {out}: cannot write the output there \(No space left"):
        estimate.estimate_poses(str(site / "runs" / "car"), str(images), None, str(out), figures=False)
    assert (out / "predictions.json").read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["images", "out"]  # no scratch folder left


@pytest.mark.extended
def test_estimate_pose_reads_an_exif_turned_image_upright_and_flags_a_uniform_one(site, tmp_path):
    from PIL import Image

    from nemo_jax.apps import estimate
    from nemo_jax.data.images import UNIFORM_IMAGE
    from nemo_jax.inference.confidence import CONFIDENCE_FLOOR

    images = _images(site, tmp_path / "images", ["a.png"])
    stored = np.asarray(Image.open(images / "a.png"))
    turned = Image.fromarray(np.ascontiguousarray(np.rot90(stored)))  # stored turned, tagged back
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": the viewer shows it as a.png
    turned.save(images / "b.png", exif=exif)  # lossless: the upright pixels are a.png's
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(images / "grey.png")
    records = {
        r["image"]: r
        for r in estimate.estimate_poses(
            str(site / "runs" / "car"), str(images), None, str(tmp_path / "out"), figures=False
        )
    }
    assert UNIFORM_IMAGE in records["grey.png"]["flags"]
    assert UNIFORM_IMAGE not in records["a.png"]["flags"] and UNIFORM_IMAGE not in records["b.png"]["flags"]
    for key in ("azimuth_deg", "elevation_deg", "theta_deg"):  # read upright: a.png's pose
        assert records["b.png"][key] == pytest.approx(records["a.png"][key], abs=1e-3), key
    if "confidence" in records["grey.png"]:
        assert records["grey.png"]["confidence"] <= CONFIDENCE_FLOOR + 1e-6
