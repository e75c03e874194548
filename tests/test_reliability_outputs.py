"""No data loss: a tool replaces only the files it wrote itself, and one training run per workdir.

Every folder a tool writes carries a manifest of its own files (``nemo_jax.output``); anything
else in it makes the tool refuse before any work, naming those files, and leaves them as they were.
A training workdir is locked while a run trains (``nemo_jax.train.lock``).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT, run_tool

from nemo_jax import data, output
from nemo_jax.train import lock as lock_lib


def _tree(folder, files: dict) -> None:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _contents(folder) -> dict:
    """``{relative path: text or bytes}`` of every file under ``folder``."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            raw = open(os.path.join(root, f), "rb").read()
            try:
                out[os.path.relpath(os.path.join(root, f), folder)] = raw.decode()
            except UnicodeDecodeError:
                out[os.path.relpath(os.path.join(root, f), folder)] = raw
    return out


USER_FILES = {"predictions.json": "[]", "thesis.tex": "\\chapter{One}", "src/main.py": "print(1)"}


# ---------------------------------------------------------------------------------------------
# The ownership rule itself


def test_output_folder_replaces_its_own_files_and_removes_only_its_stale_ones(tmp_path):
    target = tmp_path / "out"
    with output.output_folder(str(target), "tool") as scratch:
        _tree(tmp_path / os.path.basename(scratch), {"a.txt": "1", "sub/b.txt": "2"})
    files = _contents(target)
    assert json.loads(files.pop(output.MANIFEST))["tool"] == "tool"
    assert files == {"a.txt": "1", "sub/b.txt": "2"}
    with output.output_folder(str(target), "tool") as scratch:
        _tree(tmp_path / os.path.basename(scratch), {"a.txt": "new"})
    files = _contents(target)
    files.pop(output.MANIFEST)
    assert files == {"a.txt": "new"}  # its stale sub/b.txt removed, and the emptied sub/ with it
    assert not (target / "sub").exists()
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no scratch folder left


def test_output_folder_with_a_foreign_file_is_refused_listing_it_and_left_as_is(tmp_path):
    target = tmp_path / "out"
    with output.output_folder(str(target), "tool") as scratch:
        _tree(tmp_path / os.path.basename(scratch), {"a.txt": "1"})
    (target / "notes.txt").write_text("mine")
    before = _contents(target)
    with pytest.raises(ValueError, match=r"holds files that tool did not write \(notes.txt\)"):
        with output.output_folder(str(target), "tool"):
            raise AssertionError("the work must not start")
    assert _contents(target) == before


def test_a_file_the_user_changed_after_the_tool_wrote_it_is_theirs(tmp_path):
    target = tmp_path / "out"
    with output.output_folder(str(target), "tool") as scratch:
        _tree(tmp_path / os.path.basename(scratch), {"a.txt": "1"})
    (target / "a.txt").write_text("edited by hand")
    with pytest.raises(ValueError, match=r"\(a.txt\)"):
        output.check_output_folder(str(target), "--out", "tool")
    assert (target / "a.txt").read_text() == "edited by hand"


def test_a_file_appearing_during_the_work_stops_the_commit_and_nothing_moves(tmp_path):
    target = tmp_path / "out"
    target.mkdir()  # empty: the tool may write there
    with pytest.raises(ValueError, match=r"late.txt"):
        with output.output_folder(str(target), "tool") as scratch:
            _tree(tmp_path / os.path.basename(scratch), {"a.txt": "1"})
            (target / "late.txt").write_text("arrived meanwhile")
    assert sorted(os.listdir(target)) == ["late.txt"]


def test_single_output_file_is_replaced_only_when_it_is_the_tools_own(tmp_path):
    mine, theirs = tmp_path / "results.json", tmp_path / "thesis.tex"
    mine.write_text(json.dumps({"results": {}, "predictions": []}))
    theirs.write_text("\\chapter{One}")
    is_results = output.is_json_with("results")
    assert output.check_output_file(str(mine), "--json", is_results) == str(mine)
    with pytest.raises(ValueError, match=r"--json .*thesis.tex: a file that this tool did not write"):
        output.check_output_file(str(theirs), "--json", is_results)
    assert theirs.read_text() == "\\chapter{One}"


# ---------------------------------------------------------------------------------------------
# Each tool that writes a folder or a file


def test_estimate_pose_out_holding_another_tools_predictions_json_is_refused(tmp_path):
    from nemo_jax.apps import estimate

    out = tmp_path / "out"
    _tree(out, USER_FILES)  # predictions.json written by someone else, beside the user's work
    with pytest.raises(ValueError, match=r"--out .*: holds files that estimate-pose did not write"):
        estimate.estimate_poses(str(tmp_path / "no_run"), str(tmp_path), None, str(out))
    assert _contents(out) == USER_FILES


def test_estimate_pose_tool_exit_1_names_the_foreign_files(tmp_path):
    out = tmp_path / "out"
    _tree(out, USER_FILES)
    (tmp_path / "images").mkdir()
    result = run_tool("estimate_pose", "--images", tmp_path / "images", "--checkpoint", tmp_path / "run",
                      "--category", "car", "--out", out)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "predictions.json, src/main.py, thesis.tex" in result.stderr
    assert _contents(out) == USER_FILES


def test_export_out_that_is_not_an_earlier_artifact_is_refused_before_compiling(tmp_path):
    from nemo_jax.apps import export

    target = tmp_path / "thesis.tex"
    target.write_text("\\chapter{One}")
    with pytest.raises(ValueError, match=r"--out .*thesis.tex: a file that this tool did not write"):
        export.export_run(str(tmp_path / "no_run"), str(target))
    assert target.read_text() == "\\chapter{One}"


def test_demo_workdir_holding_other_files_is_refused_before_any_work(tmp_path):
    from nemo_jax.apps import demo

    workdir = tmp_path / "demo"
    _tree(workdir, {"notes.txt": "mine"})
    with pytest.raises(ValueError, match=r"--workdir .*: holds files that nemo-jax-demo did not write"):
        demo.run_demo(str(workdir), str(tmp_path / "data"), ["car"], None, None)
    assert _contents(workdir) == {"notes.txt": "mine"} and not (tmp_path / "data").exists()


@pytest.mark.extended
def test_write_fixture_tree_rewrites_its_own_tree_and_refuses_a_foreign_one(tmp_path):
    out = tmp_path / "tree"
    args = ("--out", out, "--train", 2, "--val", 1)
    assert run_tool("write_fixture_tree", *args).returncode == 0
    first = _contents(out)
    assert any(rel.startswith("PASCAL3D+_release1.1/Annotations") for rel in first)
    assert run_tool("write_fixture_tree", *args, "--seed", 1).returncode == 0  # its own: replaced
    (out / "notes.txt").write_text("mine")
    result = run_tool("write_fixture_tree", *args)
    assert result.returncode == 1 and "notes.txt" in result.stderr and "Traceback" not in result.stderr
    assert (out / "notes.txt").read_text() == "mine"


TINY = {"categories": "car", "height": 32, "width": 32, "train_per_category": 2, "val_per_category": 1,
        "test_per_category": 1, "neural_vertices": 60}  # fmt: skip


@pytest.mark.extended
def test_build_data_overwrite_refuses_a_dataset_folder_holding_foreign_files(tmp_path):
    options = data.make_options("synthetic", TINY)
    stats = data.build("synthetic", str(tmp_path), options, progress=False)
    version = tmp_path / "synthetic" / "1.0.0"
    assert stats.path == str(version) and (version / output.MANIFEST).is_file()
    data.build("synthetic", str(tmp_path), options, overwrite=True, progress=False)  # its own: rebuilt
    (version / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files that the builder did not write \(notes.txt\)"):
        data.build("synthetic", str(tmp_path), options, overwrite=True, progress=False)
    assert (version / "notes.txt").read_text() == "mine"


def test_build_data_overwrite_accepts_a_build_written_before_manifests(tmp_path):
    options = data.make_options("synthetic", TINY)
    data.build("synthetic", str(tmp_path), options, progress=False)
    version = tmp_path / "synthetic" / "1.0.0"
    os.remove(version / output.MANIFEST)  # as an older version wrote it: the builder's files only
    data.build("synthetic", str(tmp_path), options, overwrite=True, progress=False)
    assert (version / output.MANIFEST).is_file()


# ---------------------------------------------------------------------------------------------
# One training run per workdir

_HOLD = textwrap.dedent(
    """
    import sys, time
    from nemo_jax.train.lock import workdir_lock
    with workdir_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(600)
    """
)


def _holder(workdir):
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(workdir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.extended
def test_a_second_training_into_a_locked_workdir_exits_1_naming_the_holder(tmp_path):
    workdir = tmp_path / "run"
    holder = _holder(workdir)
    try:
        smoke = os.path.join(ROOT, "configs", "smoke.py")
        result = run_tool("train", f"--config={smoke}", f"--workdir={workdir}", "--config.train.steps=2")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "another training run holds" in line]
    assert len(lines) == 1 and f"process {holder.pid}" in lines[0], result.stderr
    assert sorted(os.listdir(workdir)) == [lock_lib.LOCK_FILE]  # nothing written by the refused run


def test_the_lock_of_a_killed_process_does_not_block(tmp_path):
    workdir = tmp_path / "run"
    holder = _holder(workdir)
    with pytest.raises(lock_lib.WorkdirInUse, match=f"process {holder.pid}"):
        with lock_lib.workdir_lock(str(workdir)):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with lock_lib.workdir_lock(str(workdir)) as path:
        assert open(path).read().startswith(f"process {os.getpid()} ")


@pytest.mark.extended
def test_failed_first_run_keeps_files_that_were_in_the_workdir_before(tmp_path):
    import flax.linen as nn

    from configs import smoke
    from nemo_jax.train import train

    class Broken(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            raise RuntimeError("broken backbone")

    workdir = tmp_path / "run"
    _tree(workdir, {"notes.txt": "mine", "tb/keep.txt": "mine too"})
    config = smoke.get_config()
    with pytest.raises(RuntimeError, match="broken backbone"):
        train(config, str(workdir), model=Broken(), preprocess=lambda x: x)
    assert _contents(workdir) == {"notes.txt": "mine", "tb/keep.txt": "mine too"}


def test_claiming_run_folders_in_a_workdir_that_does_not_exist_yet_creates_it(tmp_path):
    """The demo's first step into a fresh --workdir: the folder is made, the manifest owns the runs."""
    target = tmp_path / "fresh" / "demo"
    output.claim_folders(str(target), "nemo-jax-demo", ["nemo", "baseline"])
    manifest = output.read_manifest(str(target))
    assert manifest["folders"] == ["baseline", "nemo"]
    assert os.listdir(target) == [output.MANIFEST]
