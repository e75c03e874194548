"""The files under configs/ load by path, as ``--config configs/X.py[:arg]`` does, from any working
directory: no config edits ``sys.path`` or imports another config by module name; what they share
lives in the package (``nemo_jax.defaults``, ``nemo_jax.recipes``)."""

import importlib
import json
import os
import pathlib
import subprocess
import sys

import ml_collections

from nemo_jax import defaults

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG_FILES = sorted(p for p in (ROOT / "configs").glob("*.py") if p.name != "__init__.py")

# Loads every config through config_flags' own flag parsing (the path form the command lines use)
# and prints each one as JSON; fails if anything imported the ``configs`` package on the way.
_LOADER = r"""
import json, sys
from absl import flags
from ml_collections import config_flags

out = {}
for arg in sys.argv[1:]:
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config file", flag_values=fv)
    fv(["prog", "--config", arg])
    out[arg] = json.loads(fv.config.to_json_best_effort(sort_keys=True))
assert "configs" not in sys.modules, "a config imported the configs package by name"
print(json.dumps(out))
"""


def _config_json(config: ml_collections.ConfigDict):
    return json.loads(config.to_json_best_effort(sort_keys=True))


def test_config_files_leave_sys_path_alone():
    assert CONFIG_FILES, "no config files found"
    offenders = [
        p.name for p in CONFIG_FILES + [ROOT / "configs" / "__init__.py"] if "sys.path" in p.read_text()
    ]
    assert offenders == []


def test_config_files_import_no_other_config():
    offenders = [
        p.name for p in CONFIG_FILES if "from configs" in p.read_text() or "import configs" in p.read_text()
    ]
    assert offenders == []


def test_configs_load_by_path_outside_the_repo(tmp_path):
    """Every config, and one with an argument, loads through config_flags in a process whose working
    directory and import path hold no checkout, and gives the same config as importing it here."""
    args = [str(p) for p in CONFIG_FILES] + [f"{ROOT / 'configs' / 'synthetic_cpu.py'}:chair"]
    env = dict(os.environ)
    keep = [x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x and pathlib.Path(x).resolve() != ROOT]
    env["PYTHONPATH"] = os.pathsep.join(keep)
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, "-c", _LOADER, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    for path in CONFIG_FILES:
        module = importlib.import_module(f"configs.{path.stem}")
        assert loaded[str(path)] == _config_json(module.get_config()), path.name
    synthetic_cpu = importlib.import_module("configs.synthetic_cpu")
    chair = loaded[f"{ROOT / 'configs' / 'synthetic_cpu.py'}:chair"]
    assert chair == _config_json(synthetic_cpu.get_config("chair")) and chair["category"] == "chair"


def test_base_is_the_defaults_of_the_configs():
    """The configs that build on the defaults keep base()'s keys (their own additions aside)."""
    smoke = importlib.import_module("configs.smoke").get_config()
    base = defaults.base()
    for section in ("data", "mesh", "model", "train", "eval", "inference", "parallel"):
        assert set(base[section].keys()) <= set(smoke[section].keys()), section
