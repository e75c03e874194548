"""Every command-line tool: ``python tools/X.py --help`` exits 0 and documents its flags. The user
commands, and only they, are installed console commands (``[project.scripts]``) whose target is the
tool's ``main``; the benchmarks and comparisons run as ``python tools/X.py``."""

from __future__ import annotations

import ast
import importlib.util
import os
import tomllib

import pytest
from conftest import ROOT, run_tool

from nemo_jax.apps.cli import COMMANDS, SCRIPTS

TOOLS = sorted(n[:-3] for n in os.listdir(os.path.join(ROOT, "tools")) if n.endswith(".py"))


def _scripts() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        return tomllib.load(fh)["project"]["scripts"]


def test_user_commands_are_installed_and_benchmarks_are_tools_only():
    scripts = _scripts()
    assert set(COMMANDS) == {
        "demo", "train", "train_baseline", "build_data", "evaluate", "estimate_pose", "export",
        "render_mesh", "convert_weights",
    }  # fmt: skip
    assert not set(COMMANDS) & set(SCRIPTS)
    assert set(TOOLS) == set(COMMANDS) | set(SCRIPTS) | {"write_validation_tree"}
    assert set(scripts) == {f"nemo-jax-{name.replace('_', '-')}" for name in COMMANDS}
    for name in (*COMMANDS, *SCRIPTS):
        target = f"nemo_jax.apps.cli.{name}:main"
        if name in COMMANDS:
            assert scripts[f"nemo-jax-{name.replace('_', '-')}"] == target
        # Each command defines its absl flags at import (one command per process): read, not import.
        module, attr = target.split(":")
        with open(importlib.util.find_spec(module).origin) as fh:
            tree = ast.parse(fh.read())
        assert attr in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        # The tools/ file is a thin shell over the same main.
        with open(os.path.join(ROOT, "tools", f"{name}.py")) as fh:
            assert f"from nemo_jax.apps.cli.{name} import main" in fh.read()


@pytest.mark.parametrize("name", TOOLS)
def test_help_exits_zero_and_lists_the_flags(name):
    result = run_tool(name, "--help", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--" in result.stdout and len(result.stdout.splitlines()) > 5
    if name in (*COMMANDS, *SCRIPTS):  # the flags of the library module, not only the shim's
        assert f"nemo_jax.apps.cli.{name}:" in result.stdout
    if name in SCRIPTS:  # a tools-only script does not point to a command that is not installed
        assert "nemo-jax-" + name.replace("_", "-") not in result.stdout


def test_missing_required_flag_is_an_error_naming_it():
    result = run_tool("estimate_pose", "--images", "x", "--category", "car", timeout=300)
    assert result.returncode != 0 and "checkpoint" in result.stderr


def test_estimate_pose_unknown_mode_is_an_error_naming_it():
    result = run_tool(
        "estimate_pose", "--images", "x", "--category", "car", "--checkpoint", "y", "--mode", "7d"
    )
    assert result.returncode != 0 and "--mode" in result.stderr and "6d" in result.stderr


@pytest.mark.extended
def test_write_fixture_tree_writes_a_buildable_tree(tmp_path):
    result = run_tool("write_fixture_tree", "--out", tmp_path / "p3d", "--train", 2, "--val", 1, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    root = tmp_path / "p3d" / "PASCAL3D+_release1.1"
    assert len(os.listdir(root / "Annotations" / "car_imagenet")) == 3
    assert (root / "CAD" / "car" / "01.off").is_file()
    occluded = tmp_path / "p3d" / "OccludedPASCAL3D+" / "images" / "carFGL1_BGL1"
    assert len(os.listdir(occluded)) == 1  # made from the val images
    bad = run_tool("write_fixture_tree", "--out", tmp_path / "x", "--categories", "spaceship", timeout=300)
    assert bad.returncode != 0 and "spaceship" in bad.stderr
    assert bad.stderr.startswith("tools/write_fixture_tree.py: ")  # the script's own name
