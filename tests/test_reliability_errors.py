"""One line, not a traceback: each command-line tool says what went wrong, where, and what to do,
and exits 1 (the traceback only with ``--verbose``). Also the smaller holes: checkpoints holding
NaN or all damaged, a full disk while saving, a moved dataset on resume, the scored checkpoint in
evaluate's results, an artifact's members bounded before inflating, a uniform crop's flag and
confidence.

Checkpoint cases use a stand-in state (a small dict of arrays), not a trained run: the
checkpoint logic does not depend on what the arrays are.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import warnings
import zipfile
from typing import NamedTuple

import numpy as np
import pytest
from conftest import ROOT, run_tool

from nemo_jax.train import checkpoint as checkpoint_lib

SMOKE = os.path.join(ROOT, "configs", "smoke.py")


def _one_line_error(result, command: str, *needles: str) -> str:
    """The single ``command: message`` line of a failed tool run (exit 1, no traceback)."""
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{command}: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------------------------
# The command wrapper


def _run_in_process(monkeypatch, capsys, error: BaseException, *args: str):
    from nemo_jax.apps import cli

    def main(argv):
        raise error

    monkeypatch.setattr(sys, "argv", ["nemo-jax-fake", *args])
    with pytest.raises(SystemExit) as info:
        cli.run("nemo_jax.apps.cli.evaluate", main)
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "error",
    [
        checkpoint_lib.NonFiniteCheckpointError("run/checkpoints/3: checkpoint step 3 holds NaN"),
        checkpoint_lib.CheckpointDamagedError("run/checkpoints: every checkpoint is damaged"),
        checkpoint_lib.CheckpointMismatchError("run: the checkpoint there was written with\n  x: 1 -> 2"),
        checkpoint_lib.CheckpointSaveError("run/checkpoints/4: saving checkpoint step 4 failed"),
    ],
    ids=["nonfinite", "damaged", "mismatch", "save"],
)
def test_checkpoint_errors_are_one_line_and_exit_1_traceback_with_verbose(monkeypatch, capsys, error):
    code, err = _run_in_process(monkeypatch, capsys, error)
    assert code == 1 and "Traceback" not in err
    one_line = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
    assert err.strip().splitlines() == [f"nemo-jax-evaluate: {one_line}"]
    code, err = _run_in_process(monkeypatch, capsys, error, "--verbose")
    assert code == 1 and "Traceback" in err and err.strip().endswith(str(error).splitlines()[-1].strip())


def test_diverged_training_is_a_user_error():
    from nemo_jax.apps.cli import USER_ERRORS
    from nemo_jax.train.loop import NonFiniteError

    assert issubclass(NonFiniteError, USER_ERRORS) and issubclass(NonFiniteError, RuntimeError)


# ---------------------------------------------------------------------------------------------
# Checkpoints: NaN, every one damaged, a full disk


def _state(value: float = 1.0) -> dict:
    return {"params": {"w": np.full((3, 2), value, np.float32)}, "step": np.zeros((1,), np.int32)}


def _checkpointer(workdir) -> checkpoint_lib.Checkpointer:
    return checkpoint_lib.Checkpointer(str(workdir), {"seed": 0}, None, every=1, max_to_keep=10)


def _saved_run(workdir, values) -> None:
    ck = _checkpointer(workdir)
    for step, value in enumerate(values, start=1):
        ck.save(step, _state(value), force=True)
    ck.close()


def test_checkpoint_holding_nan_names_the_step_to_move_aside_and_resume_skips_it(tmp_path):
    run = tmp_path / "run"
    _saved_run(run, [1.0, 2.0, np.nan])
    ck = checkpoint_lib.Checkpointer(str(run), {"seed": 0}, None, 1, 10, read_only=True)
    with pytest.raises(checkpoint_lib.NonFiniteCheckpointError) as info:
        ck.restore(_state())
    message = str(info.value)
    assert f"{run / 'checkpoints' / '3'} aside" in message and "step 2 is then used" in message
    assert "params/w" in message and "\n" not in message
    ck.close()
    # resuming training passes over it, as over a damaged one, to the newest finite checkpoint
    ck = _checkpointer(run)
    with pytest.warns(UserWarning, match="checkpoint step 3 holds non-finite values"):
        restored = ck.restore(_state(), skip_nonfinite=True)
    assert ck.restored_step == 2 and float(restored["params"]["w"][0, 0]) == 2.0
    ck.close()


def test_every_checkpoint_damaged_is_one_error_saying_what_to_do(tmp_path):
    run = tmp_path / "run"
    _saved_run(run, [1.0, 2.0])
    for step in (1, 2):
        (run / "checkpoints" / str(step) / "default" / "_METADATA").write_text('{"tree_meta')
    ck = checkpoint_lib.Checkpointer(str(run), {"seed": 0}, None, 1, 10, read_only=True)
    with warnings.catch_warnings(), pytest.raises(checkpoint_lib.CheckpointDamagedError) as info:
        warnings.simplefilter("ignore")
        ck.restore(_state())
    ck.close()
    assert isinstance(info.value, OSError)
    assert "every checkpoint is damaged (steps 2, 1)" in str(info.value)
    assert "new --workdir" in str(info.value)


def test_disk_full_while_saving_names_the_step_and_the_last_good_one(tmp_path, monkeypatch):
    import orbax.checkpoint as ocp

    run = tmp_path / "run"
    _saved_run(run, [1.0, 2.0])
    ck = _checkpointer(run)

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ocp.CheckpointManager, "save", full)
    with pytest.raises(checkpoint_lib.CheckpointSaveError) as info:
        ck.save(3, _state(3.0), force=True)
    message = str(info.value)
    assert message.startswith(f"{run / 'checkpoints' / '3'}: saving checkpoint step 3 failed")
    assert "the disk is full" in message and f"newest saved checkpoint is step 2 in {run}" in message
    assert isinstance(info.value, OSError)


def test_restored_checkpoints_records_the_step_and_path_restored(tmp_path):
    run = tmp_path / "run"
    _saved_run(run, [1.0, 2.0])
    with checkpoint_lib.restored_checkpoints() as scored:
        ck = checkpoint_lib.Checkpointer(str(run), {"seed": 0}, None, 1, 10, read_only=True)
        ck.restore(_state())
        ck.restore(_state())  # twice: recorded once
        ck.close()
    assert scored == [{"workdir": str(run), "step": 2, "path": str(run / "checkpoints" / "2")}]


# ---------------------------------------------------------------------------------------------
# A moved dataset on resume


def _dataset(data_dir, train_shards=(8,), version="1.0.0"):
    folder = data_dir / "synthetic" / version
    (folder / "meshes" / "car").mkdir(parents=True)
    splits = [{"name": "train", "shardLengths": [str(n) for n in train_shards], "numBytes": "100"}]
    info = {"name": "synthetic", "version": version, "splits": splits}
    (folder / "dataset_info.json").write_text(json.dumps(info))


def _data_config(data_dir) -> dict:
    return {"seed": 0, "data": {"source": "tfds", "name": "synthetic", "data_dir": str(data_dir)}}


def test_resume_accepts_a_moved_dataset_with_the_same_contents_and_names_a_different_one(tmp_path):
    _dataset(tmp_path / "old")
    run = tmp_path / "run"
    ck = checkpoint_lib.Checkpointer(str(run), _data_config(tmp_path / "old"), None, 1, 10)
    ck.save(1, _state(), force=True)
    ck.close()
    assert json.loads((run / "dataset.json").read_text())["splits"]["train"]["shard_lengths"] == [8]
    os.rename(tmp_path / "old", tmp_path / "new")  # the dataset moved: its old path is gone
    with pytest.warns(UserWarning, match="resuming with the run's dataset at its new path"):
        checkpoint_lib.Checkpointer(str(run), _data_config(tmp_path / "new"), None, 1, 10).close()
    assert json.loads((run / "config.json").read_text())["data"]["data_dir"] == str(tmp_path / "new")
    # another dataset at yet another path: one line saying how to continue, nothing written
    _dataset(tmp_path / "other", train_shards=(5,))
    before = (run / "config.json").read_text()
    with pytest.raises(checkpoint_lib.CheckpointMismatchError) as info:
        checkpoint_lib.Checkpointer(str(run), _data_config(tmp_path / "other"), None, 1, 10)
    message = str(info.value)
    assert f"config.data.data_dir={tmp_path / 'other'} is not the dataset the run was trained on" in message
    assert "split 'train'" in message and f"--config.data.data_dir={tmp_path / 'new'}" in message
    assert (run / "config.json").read_text() == before


def test_resume_from_a_moved_dataset_without_a_record_says_how_to_continue(tmp_path):
    _dataset(tmp_path / "old")
    run = tmp_path / "run"
    ck = checkpoint_lib.Checkpointer(str(run), _data_config(tmp_path / "old"), None, 1, 10)
    ck.save(1, _state(), force=True)
    ck.close()
    os.remove(run / "dataset.json")  # a run written before the record existed
    os.rename(tmp_path / "old", tmp_path / "new")
    with pytest.raises(checkpoint_lib.CheckpointMismatchError, match="recorded none to compare"):
        checkpoint_lib.Checkpointer(str(run), _data_config(tmp_path / "new"), None, 1, 10)


# ---------------------------------------------------------------------------------------------
# Training: sizes checked before compiling, pretrained files, config files, overrides


def _tiny(steps=2):
    from tiny_configs import tiny_config

    c = tiny_config(steps)
    c.train.flip_prob = 0.5  # the toy source needs the mirror permutation
    return c


def test_run_sizes_are_checked_before_compiling(tmp_path):
    from nemo_jax.train.loop import _check_run_size

    config = _tiny()
    config.train.batch_size = 512
    with pytest.raises(
        ValueError, match=r"config.train.batch_size: 512 is larger than the training set \(64"
    ):
        _check_run_size(config.train, 64, config)
    config.train.batch_size, config.train.steps = 8, 0
    with pytest.raises(ValueError, match=r"config.train.steps: expected >= 1, got 0"):
        _check_run_size(config.train, 64, config)
    config.train.steps, config.train.lr = 2, 0.0
    with pytest.warns(UserWarning, match="config.train.lr is 0"):
        _check_run_size(config.train, 64, config)


def test_train_with_no_steps_is_refused_naming_the_field(tmp_path):
    from nemo_jax.train.state import resolve_steps

    config = _tiny()
    config.train.steps, config.train.epochs = 0, 0
    with pytest.raises(ValueError, match="config.train.steps and config.train.epochs are both 0"):
        resolve_steps(config.train, 64)


@pytest.mark.extended
def test_training_commands_name_a_missing_config_a_file_workdir_and_a_wrong_shaped_override(tmp_path):
    result = run_tool("train", "--config", tmp_path / "nope.py", "--workdir", tmp_path / "w")
    _one_line_error(result, "nemo-jax-train", f"--config {tmp_path / 'nope.py'}: no such file")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    result = run_tool("train", "--config", SMOKE, "--workdir", a_file)
    _one_line_error(result, "nemo-jax-train", f"--workdir {a_file}: is a file")
    result = run_tool("train", "--config", SMOKE, "--workdir", tmp_path / "w", "--config.data.image_size=32")
    _one_line_error(result, "nemo-jax-train", "--config.data.image_size: expected 2 numbers", "(32,)")
    assert a_file.read_text() == "mine" and not (tmp_path / "w").exists()


@pytest.mark.extended
def test_hostile_pretrained_file_through_training_is_one_line_and_writes_nothing(tmp_path):
    from torch_files import save_torch_views

    path = tmp_path / "hostile.pth"
    flat = np.arange(16, dtype=np.float32)
    save_torch_views(path, {"0": flat}, {"conv1.weight": ("0", 15, (4,), (-(2**40),))})
    overrides = ["--config.model.name=resnet18", "--config.model.width=1.0"]
    result = run_tool("train", "--config", SMOKE, "--workdir", tmp_path / "w", *overrides,
                      f"--config.model.pretrained={path}")  # fmt: skip
    _one_line_error(result, "nemo-jax-train", "config.model.pretrained: ", str(path), "'conv1.weight'")
    assert not (tmp_path / "w").exists()


@pytest.mark.extended
def test_unknown_category_and_batch_larger_than_the_dataset_are_one_line(tmp_path):
    result = run_tool(
        "train", "--config", SMOKE, "--workdir", tmp_path / "w", "--config.train.batch_size=512",
        "--config.data.num_train=16",
    )  # fmt: skip
    _one_line_error(
        result, "nemo-jax-train", "config.train.batch_size: 512 is larger than the training set (16"
    )
    data_dir = tmp_path / "data"
    _dataset(data_dir)
    cpu = os.path.join(ROOT, "configs", "synthetic_cpu.py")
    result = run_tool("train", "--config", f"{cpu}:spaceship", "--workdir", tmp_path / "w",
                      f"--config.data.data_dir={data_dir}")  # fmt: skip
    _one_line_error(result, "nemo-jax-train", "config.category: 'spaceship' not in the dataset", "car")
    assert not (tmp_path / "w").exists()


# ---------------------------------------------------------------------------------------------
# Evaluate: overrides and the method


@pytest.mark.extended
def test_evaluate_refuses_misspelt_and_non_inference_overrides_in_one_line(tmp_path):
    common = ["--workdir", tmp_path, "--data_dir", tmp_path]
    result = run_tool("evaluate", *common, "--config.inference.stepz=3")
    _one_line_error(result, "nemo-jax-evaluate", "--config.inference.stepz=3", 'Did you mean "steps"')
    result = run_tool("evaluate", *common, "--config.train.steps=3")
    _one_line_error(
        result, "nemo-jax-evaluate", "--config.train.steps=3", "only the runs' inference settings"
    )


def test_evaluate_method_that_does_not_fit_the_run_is_named(tmp_path):
    from nemo_jax.apps.evaluate import check_method

    nemo, baseline = tmp_path / "nemo", tmp_path / "baseline"
    for run in (nemo, baseline):
        run.mkdir()
        (run / "config.json").write_text("{}")
    (nemo / "mesh.json").write_text("{}")
    with pytest.raises(ValueError, match=r"holds a NeMo run \(mesh.json\).*drop --method baseline"):
        check_method(str(nemo), "baseline")
    with pytest.raises(ValueError, match=r"holds no NeMo run.*pass --method baseline"):
        check_method(str(baseline), "nemo")
    check_method(str(nemo), "nemo")
    check_method(str(baseline), "baseline")


# ---------------------------------------------------------------------------------------------
# estimate-pose: flags up front


@pytest.mark.extended
def test_estimate_pose_refuses_a_nonpositive_or_nan_distance_naming_the_flag(tmp_path):
    for value in ("0", "-2", "nan"):
        result = run_tool("estimate_pose", "--images", tmp_path, "--category", "car", "--checkpoint",
                          tmp_path, "--distance", value, "--out", tmp_path / "out")  # fmt: skip
        _one_line_error(result, "nemo-jax-estimate-pose", "--distance: expected a positive number")
    assert not (tmp_path / "out").exists()


def test_confidence_of_a_flagged_crop_is_clipped_to_the_floor():
    import jax.numpy as jnp

    from nemo_jax.inference import confidence

    assert 0 < confidence.CONFIDENCE_FLOOR < 0.05  # a random rotation is rarely within pi/6
    conf = jnp.asarray([0.9, 0.9, 0.001])
    clipped = np.asarray(confidence.clip_flagged(conf, jnp.asarray([True, False, True])))
    np.testing.assert_allclose(clipped, [confidence.CONFIDENCE_FLOOR, 0.9, 0.001], rtol=1e-6)


def test_flag_bits_in_graph_match_the_host_side_flags():
    import jax

    from nemo_jax.apps.estimate import crop_flags
    from nemo_jax.data.images import UNIFORM_IMAGE
    from nemo_jax.inference import confidence

    class Fields(NamedTuple):  # the fields the flags read, as a batched PoseResult holds them
        feature_spread: np.ndarray
        loss: np.ndarray
        null_loss: np.ndarray

    result = Fields(
        feature_spread=np.asarray([0.0, 0.5, 0.5], np.float32),
        loss=np.asarray([1.0, 0.2, 0.9], np.float32),
        null_loss=np.asarray([1.0, 0.8, 0.8], np.float32),
    )

    rng = np.random.default_rng(0)
    crops = np.stack(
        [
            np.full((16, 16, 3), 200, np.uint8),  # constant
            rng.integers(0, 255, (16, 16, 3)).astype(np.uint8),  # real-looking: varied
            np.full((16, 16, 3), 3, np.uint8),  # constant, dark
        ]
    )
    bits = np.asarray(jax.jit(confidence.flag_bits)(result, crops))
    from_bits = [[n for n, on in zip(confidence.FLAG_NAMES, row, strict=True) if on] for row in bits]
    assert from_bits == crop_flags(result, crops)
    assert UNIFORM_IMAGE in confidence.FLAG_NAMES
    assert [UNIFORM_IMAGE in f for f in from_bits] == [True, False, True]


# ---------------------------------------------------------------------------------------------
# serving.load: bounded members, metadata checked at load


def _artifact(path, meta: dict, estimator_payload: bytes = b"x", big: int = 0) -> None:
    import hashlib

    members = {"estimator.stablehlo": estimator_payload, "metadata.json": json.dumps(meta).encode()}
    if big:
        members["meshes.npz"] = b"\0" * big  # compresses ~1000:1
    manifest = {
        "format": "nemo_jax.export/1",
        "sha256": {k: hashlib.sha256(v).hexdigest() for k, v in members.items()},
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for name, payload in members.items():
            zf.writestr(name, payload)


def test_serving_refuses_a_member_inflating_past_its_limit_before_reading_it(tmp_path, monkeypatch):
    from nemo_jax import serving

    path = tmp_path / "bomb.nemo"
    _artifact(path, {"image_size": [8, 8]}, big=64 << 20)
    limit = serving.MAX_INFLATION * os.path.getsize(path) + 2**20
    assert limit < 64 << 20
    read = []
    real_read = zipfile.ZipFile.read
    monkeypatch.setattr(
        zipfile.ZipFile, "read", lambda self, n, *a: read.append(str(n)) or real_read(self, n, *a)
    )
    refused = r"bomb.nemo: member meshes.npz claims 67108864 bytes inflated, over"
    with pytest.raises(ValueError, match=refused):
        serving.load(str(path))
    assert not any("meshes.npz" in n for n in read)


@pytest.mark.parametrize("size", [None, [8], [8, 0], [8, "8"], [8.5, 8]])
def test_serving_validates_the_image_size_at_load_naming_the_file(tmp_path, size):
    from nemo_jax import serving

    path = tmp_path / "odd.nemo"
    _artifact(path, {} if size is None else {"image_size": size})
    with pytest.raises(ValueError, match=r"odd.nemo: metadata.json field 'image_size'"):
        serving.load(str(path))


def test_serving_deserializes_at_load_naming_the_member(tmp_path):
    from nemo_jax import serving

    path = tmp_path / "garbage.nemo"
    _artifact(path, {"image_size": [8, 8]}, estimator_payload=b"not stablehlo at all")
    with pytest.raises(ValueError, match=r"garbage.nemo: member estimator.stablehlo cannot be deserialized"):
        serving.load(str(path))


# ---------------------------------------------------------------------------------------------
# Ctrl-C while compiling


@pytest.mark.extended
def test_ctrl_c_during_compilation_exits_130_without_a_fatal_error(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config", SMOKE,
         "--workdir", str(tmp_path / "w")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a test run in the background inherits SIGINT ignored: give the tool the default, as a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    config = tmp_path / "w" / "config.json"  # written just before the first compilation
    deadline = time.monotonic() + 300
    while not config.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert config.exists(), "the run did not start"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "Fatal Python error" not in err and "nemo-jax-train: interrupted" in err
