"""The exported estimator: a tiny trained run exported to one file, run by
``nemo_jax/serving.py`` copied alone into a process where nemo_jax cannot be imported, gives the
library's poses; a wrong image size, a corrupt or truncated file, an unknown category and a run
without calibration are refused with messages naming the file, member or field."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import ROOT, run_tool

from configs import synthetic_cpu
from nemo_jax import data
from nemo_jax.apps import export

SERVING = os.path.join(ROOT, "nemo_jax", "serving.py")
SIZE = 32


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """``(run dir, artifact path, images uint8 [6, 32, 32, 3])``: a run trained 20 steps on a tiny
    synthetic set (enough for poses that beat the empty image), with a small search in its stored
    inference settings (8 grid poses, 40 refinement steps, lr x0.2 every 10), exported for cpu (and
    cuda if lowerable)."""
    from nemo_jax.train.loop import train

    root = tmp_path_factory.mktemp("export")
    options = {"categories": "car", "height": SIZE, "width": SIZE, "train_per_category": 8}
    options.update({"val_per_category": 2, "test_per_category": 6, "neural_vertices": 60})
    data.build("synthetic", str(root / "data"), data.make_options("synthetic", options))
    config = synthetic_cpu.get_config("car")
    config.data.data_dir, config.data.image_size = str(root / "data"), (SIZE, SIZE)
    config.data.distance = 3000.0 / (0.6 * SIZE)  # the synthetic set's distance at this crop size
    config.train.steps, config.train.batch_size, config.train.checkpoint_every = 20, 4, 20
    config.train.clutter_size, config.train.progress = 16, False
    config.model.width, config.eval.num_batches = 0.25, 0
    config.inference.azimuths_deg, config.inference.elevations_deg = (0.0, 90.0, 180.0, 270.0), (0.0, 30.0)
    config.inference.thetas_deg, config.inference.steps = (0.0,), 40
    # Adam's step is ~lr whatever the gradient's size: at a constant lr on this barely trained run's
    # flat loss, float-level differences between two compilations grow into different poses. With
    # the lr decaying (as NeMo's x0.2 every 100 of 300 steps) the search converges and they agree.
    config.inference.lr, config.inference.decay_every, config.inference.decay_rate = 0.02, 10, 0.2
    train(config, str(root / "run"))
    lib = export._calibration_lib()
    if lib is not None:  # a calibration (made-up numbers): the calibrated confidence is exported
        f = len(lib.FEATURE_NAMES)
        calibration = lib.Calibration(
            mean=np.linspace(0.5, 0.0, f), scale=np.full(f, 0.1), weights=np.linspace(-1.0, 1.0, f), bias=0.2
        )
        lib.save_calibration(str(root / "run"), calibration, {"note": "test values"})
    source = data.load("synthetic", "test_l0", str(root / "data"))
    images = np.stack([source[i]["image"] for i in range(6)])
    out = root / "model.nemo"
    export.export_run(str(root / "run"), str(out), allow_uncalibrated=lib is None, log=lambda *_: None)
    return root / "run", out, images


def _library_poses(run_dir, images):
    """The library path (as :func:`nemo_jax.apps.estimate.estimate_poses` runs it on crops):
    ``(batched PoseResult, SearchConfig)``."""
    from nemo_jax.geometry.camera import feature_coordinates
    from nemo_jax.inference import neural_mesh_inputs, run_settings, search_config_from_settings, search_pose
    from nemo_jax.models import preprocess
    from nemo_jax.train.run import load_run

    config, model, variables, mesh = load_run(str(run_dir))
    observed = model.apply(variables, preprocess(images), train=False)
    stride = int(config.model.stride)
    focal, principal = 3000.0 / stride, feature_coordinates(np.array([SIZE / 2, SIZE / 2]), stride)
    settings = run_settings(config)
    search = search_config_from_settings(
        settings, mesh, observed.shape[1:3], focal, principal, config.data.distance
    )
    inputs = neural_mesh_inputs(mesh, observed, focal, principal, config.data.distance)
    return search_pose(inputs, search), search


# Runs in a fresh interpreter whose only path entry is a folder holding serving.py alone, with the
# installed nemo_jax blocked: poses for images.npy into out.npz, and the wrong-size error's message.
_SERVE = """
import sys
sys.modules["nemo_jax"] = None  # the package (also an editable install) cannot be imported
try:
    import nemo_jax
    raise SystemExit("nemo_jax imported")
except ImportError:
    pass
import json, numpy as np, serving
estimate = serving.load(sys.argv[1])
out = estimate(np.load("images.npy"))
errors = []
h, w = np.load("images.npy").shape[1:3]
for bad in (np.zeros((1, h - 8, w, 3), np.uint8), np.zeros((1, h, w, 3), np.float32)):
    try:
        estimate(bad)
    except ValueError as err:
        errors.append(str(err))
flags = out.pop("flags", None)  # a list of names per crop
np.savez("out.npz", **out)
loaded = sorted(m for m, v in sys.modules.items() if m.startswith("nemo_jax") and v)
json.dump({"errors": errors, "modules": loaded, "flags": flags}, open("log.json", "w"))
"""


def test_serving_imports_jax_numpy_and_the_stdlib_only():
    with open(SERVING) as fh:
        tree = ast.parse(fh.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or ".").split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"jax", "numpy"}, imported
    code = [line for line in ast.unparse(tree).splitlines() if line.strip()]
    # about 40 lines of loader and its load-time checks (docstrings included here)
    assert len(code) <= 50, len(code)


def _serve_isolated(path, images, tmp_path) -> tuple[dict, dict]:
    """Runs ``serving.load(path)(images)`` in a fresh interpreter that can import serving.py (copied
    alone) but not nemo_jax; returns the outputs and ``{"errors": the wrong-size and wrong-dtype
    calls' messages, "modules": nemo_jax modules it loaded}``."""
    shutil.copy(SERVING, tmp_path / "serving.py")
    np.save(tmp_path / "images.npy", images)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.update(PYTHONPATH=str(tmp_path), JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", _SERVE, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = json.load(open(tmp_path / "log.json"))
    assert log["modules"] == []
    assert len(log["errors"]) == 2 and all(str(path) in e for e in log["errors"])
    return dict(np.load(tmp_path / "out.npz")), log


def test_artifact_runs_where_nemo_jax_cannot_be_imported(small_artifact, tmp_path):
    images = np.arange(2 * 8 * 6 * 3).reshape(2, 8, 6, 3).astype(np.uint8)
    served, log = _serve_isolated(small_artifact, images, tmp_path)
    np.testing.assert_allclose(served["azimuth"], images.reshape(2, -1).mean(1), rtol=1e-6)
    assert "got uint8 [1, 0, 6, 3]" in log["errors"][0] and "got float32 [1, 8, 6, 3]" in log["errors"][1]


@pytest.mark.slow  # an acceptance test: .ci/run runs it (build + 20 train steps + export + 2 compiles)
def test_exported_estimator_matches_the_library_without_nemo_jax(artifact, tmp_path):
    run_dir, path, images = artifact
    served, log = _serve_isolated(path, images, tmp_path)
    assert "crops, got uint8 [1, 24, 32, 3]" in log["errors"][0]

    from nemo_jax.inference import pose_grid

    expected, search = _library_poses(run_dir, images)
    for key in ("azimuth", "elevation", "theta"):  # radians
        np.testing.assert_allclose(
            served[key], np.asarray(getattr(expected, key)), rtol=0, atol=1e-4, err_msg=key
        )
    np.testing.assert_allclose(served["distance"], np.asarray(expected.distance), rtol=1e-5)
    np.testing.assert_allclose(served["loss"], np.asarray(expected.loss), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(served["occluder"], np.asarray(expected.occluder))
    # Not a vacuous match: the poses beat the empty image and were refined.
    assert np.all(np.asarray(expected.loss) < np.asarray(expected.null_loss))
    assert np.any(np.asarray(expected.steps) > 0)
    conf = served["confidence"]
    assert conf.shape == (6,) and np.all(np.isfinite(conf)) and np.all((conf >= 0) & (conf <= 1))
    # The confidence step on the library's search outputs (calibrated if the package can).
    _, calibration = export.run_calibration(str(run_dir), allow_uncalibrated=True)
    library_conf = export.confidence_step(expected, pose_grid(search), calibration)
    np.testing.assert_allclose(conf, np.asarray(library_conf), rtol=0, atol=1e-4)
    # The flags, as the library gives them for these crops (none: real crops, poses that fit).
    from nemo_jax.apps.estimate import crop_flags

    assert log["flags"] == crop_flags(expected, images)


@pytest.mark.extended  # shares the trained run above
def test_exported_flags_match_the_library_for_a_constant_and_a_real_crop(artifact):
    from nemo_jax import serving
    from nemo_jax.apps.estimate import crop_flags
    from nemo_jax.data.images import UNIFORM_IMAGE
    from nemo_jax.inference import confidence

    run_dir, path, images = artifact
    crops = np.stack([np.full_like(images[0], 128), images[0]])  # a grey crop, a rendered car
    served = serving.load(str(path))(crops)
    expected, _ = _library_poses(run_dir, crops)
    assert served["flags"] == crop_flags(expected, crops)
    assert UNIFORM_IMAGE in served["flags"][0] and UNIFORM_IMAGE not in served["flags"][1]
    # the flagged crop is worth no more than a guess
    assert served["confidence"][0] <= confidence.CONFIDENCE_FLOOR + 1e-6


@pytest.mark.extended  # shares the trained run of the test above
def test_artifact_layout_and_metadata(artifact):
    from jax import export as jax_export

    run_dir, path, _ = artifact
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted(
            [export.MANIFEST, export.ESTIMATOR, export.MESHES, export.METADATA]
        )
        meta = json.loads(zf.read(export.METADATA))
        manifest = json.loads(zf.read(export.MANIFEST))
        exported = jax_export.deserialize(bytearray(zf.read(export.ESTIMATOR)))
        meshes = np.load(zf.open(export.MESHES))
        assert meshes["vertices"].shape[1] == 3 and meshes["features"].shape[0] == meshes["vertices"].shape[0]
    assert manifest["format"] == export.FORMAT and set(manifest["sha256"]) == {
        export.ESTIMATOR,
        export.MESHES,
        export.METADATA,
    }
    assert (
        meta["category"] == "car" and meta["image_size"] == [SIZE, SIZE] and meta["angle_units"] == "radians"
    )
    assert meta["confidence"] == ("uncalibrated" if export._calibration_lib() is None else "calibrated")
    assert "cpu" in meta["platforms"]
    assert set(meta["platforms"]) | set(meta["platforms_skipped"]) == {"cpu", "cuda"}
    assert meta["inference"]["azimuths_deg"] == [0.0, 90.0, 180.0, 270.0]  # the run's stored settings
    assert tuple(exported.platforms) == tuple(meta["platforms"])
    (aval,) = exported.in_avals
    assert str(aval.shape[0]) == "b" and tuple(aval.shape[1:]) == (SIZE, SIZE, 3)  # symbolic batch


@pytest.fixture
def small_artifact(tmp_path):
    """An artifact in the export's format around a stand-in function (no training): for the
    loader's checks, which do not depend on what the estimator computes."""
    import jax
    import jax.numpy as jnp

    def stand_in(images):
        x = jnp.mean(images.astype(jnp.float32), axis=(1, 2, 3))
        return {k: x for k in export.OUTPUTS}

    spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape("b, 8, 6, 3"), jnp.uint8)
    exported = jax.export.export(jax.jit(stand_in), platforms=("cpu",))(spec)
    path = tmp_path / "small.nemo"
    meta = {"format": export.FORMAT, "category": "car", "image_size": [8, 6], "platforms": ["cpu"]}
    export.write_artifact(str(path), exported, {"vertices": np.zeros((4, 3), np.float32)}, meta)
    return path


def test_loader_runs_any_batch_and_refuses_other_sizes(small_artifact):
    from nemo_jax import serving

    estimate = serving.load(str(small_artifact))
    for b in (1, 3):  # the symbolic batch
        images = np.full((b, 8, 6, 3), 7, np.uint8)
        out = estimate(images)
        assert set(out) == set(export.OUTPUTS) and out["azimuth"].shape == (b,)
        np.testing.assert_allclose(out["loss"], 7.0)
    for bad, got in (
        (np.zeros((2, 6, 8, 3), np.uint8), "uint8 [2, 6, 8, 3]"),
        (np.zeros((2, 8, 6), np.uint8), "uint8 [2, 8, 6]"),
        (np.zeros((2, 8, 6, 3), np.float32), "float32 [2, 8, 6, 3]"),
        (np.zeros((0, 8, 6, 3), np.uint8), "uint8 [0, 8, 6, 3]"),
    ):
        with pytest.raises(
            ValueError, match=re.escape(f"small.nemo: exported for uint8 [B, 8, 6, 3] crops, got {got}")
        ):
            estimate(bad)


def test_platforms_that_do_not_lower_are_skipped_with_the_reason():
    import jax
    import jax.numpy as jnp

    spec = jax.ShapeDtypeStruct((3, 3), jnp.float32)
    exported, skipped = export.lower(lambda x: x + 1, spec, ("cuda",), log=lambda *_: None)
    assert exported.platforms == ("cpu", "cuda") and skipped == {}
    # eig has no stable CUDA lowering (and none for TPU): the export falls back to cpu, saying why.
    messages = []
    exported, skipped = export.lower(
        lambda x: jnp.linalg.eig(x)[0].real, spec, ("cpu", "cuda", "tpu"), messages.append
    )
    assert exported.platforms == ("cpu",) and set(skipped) == {"cuda", "tpu"} and skipped["cuda"]
    assert len(messages) == 1 and "cuda" in messages[0]
    with pytest.raises(ValueError, match=r"platforms: unknown \['gpu'\]"):
        export.lower(lambda x: x, spec, ("cpu", "gpu"))


def test_corrupt_or_truncated_artifact_is_refused_by_name(small_artifact, tmp_path):
    from nemo_jax import serving

    blob = small_artifact.read_bytes()
    for cut in (len(blob) // 2, len(blob) - 10, 0):
        truncated = tmp_path / "truncated.nemo"
        truncated.write_bytes(blob[:cut])
        with pytest.raises(ValueError, match="truncated.nemo: not a complete nemo_jax export"):
            serving.load(str(truncated))
    # A member rewritten (a valid zip, so the zip's CRC-32 passes) is caught by the manifest's SHA-256.
    altered = tmp_path / "altered.nemo"
    with zipfile.ZipFile(small_artifact) as src, zipfile.ZipFile(altered, "w") as dst:
        for name in src.namelist():
            payload = src.read(name)
            dst.writestr(
                name, payload[:-1] + bytes([payload[-1] ^ 1]) if name == export.ESTIMATOR else payload
            )
    with pytest.raises(ValueError, match=r"altered.nemo: member estimator.stablehlo is corrupt"):
        serving.load(str(altered))
    # Another format version is refused by name.
    future = tmp_path / "future.nemo"
    with zipfile.ZipFile(small_artifact) as src, zipfile.ZipFile(future, "w") as dst:
        for name in src.namelist():
            payload = src.read(name)
            dst.writestr(name, payload.replace(b"nemo_jax.export/1", b"nemo_jax.export/2"))
    with pytest.raises(ValueError, match=r"future.nemo: format 'nemo_jax.export/2'; this loader reads"):
        serving.load(str(future))
    # A flipped byte inside a member's stored data: the zip's CRC-32 check or, when the byte breaks
    # the deflate stream itself, zlib's error; either way the member is named.
    with zipfile.ZipFile(small_artifact) as zf:
        info = zf.getinfo(export.ESTIMATOR)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for fraction in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9):  # 0.0: the deflate header, a zlib.error
        raw = bytearray(blob)
        raw[start + int(info.compress_size * fraction)] ^= 0xFF
        flipped = tmp_path / "flipped.nemo"
        flipped.write_bytes(bytes(raw))
        with pytest.raises(
            ValueError, match=r"flipped.nemo: not a complete nemo_jax export .*estimator.stablehlo"
        ):
            serving.load(str(flipped))


def test_unknown_category_and_missing_calibration_are_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"category": "car"}))
    out = tmp_path / "x.nemo"
    with pytest.raises(ValueError, match=r"config.json: the run knows the category 'car' only, not 'chair'"):
        export.export_run(str(run_dir), str(out), category="chair", allow_uncalibrated=True)
    with pytest.raises(
        ValueError, match=r"run: the run stores no confidence calibration \(calibration.json\)"
    ):
        export.export_run(str(run_dir), str(out))
    # A stored calibration this package cannot apply (a malformed one, or none can be yet): refused
    # by name, also with --allow_uncalibrated (a calibration is never silently ignored).
    (run_dir / "calibration.json").write_text("{}")
    result = run_tool("export", "--workdir", run_dir, "--out", out, "--allow_uncalibrated", timeout=300)
    assert result.returncode == 1 and "calibration.json" in result.stderr, result.stderr[-2000:]
    assert not out.exists()
