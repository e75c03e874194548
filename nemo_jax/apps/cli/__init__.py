"""Command-line entry points: one module per command, each parsing absl flags (ml_collections
``config_flags`` where a config file is read), calling one library function and writing results.

Installed as console scripts (``nemo-jax-demo``, ``nemo-jax-train``, ... see ``pyproject.toml``);
``python tools/X.py`` runs the same ``main``. Each module defines its flags at import, so import one
command per process (the console scripts and ``tools/*.py`` do).
"""

from __future__ import annotations

import os
import sys

import nemo_jax

#: The checkout holding ``configs/`` (a source tree or an editable install).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(nemo_jax.__file__)))

#: ``command name -> module`` of every console script (``nemo-jax-<name with dashes>``).
COMMANDS = (
    "demo",
    "train",
    "train_baseline",
    "evaluate",
    "build_data",
    "estimate_pose",
    "render_mesh",
    "convert_weights",
    "bench_pose",
    "bench_train",
    "write_fixture_tree",
)


def no_positional(argv) -> None:
    """absl ``main`` argument check: the program name only."""
    from absl import app

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")


HELP_FLAGS = ("--help", "-help", "-h", "--helpshort", "-?")


def usage(module_name: str) -> str:
    """The command's documentation (its module docstring) and every nemo_jax flag it defines."""
    from absl import flags

    by_module = flags.FLAGS.flags_by_module_dict()
    text = [sys.modules[module_name].__doc__.strip(), ""]
    for name in sorted(by_module, key=lambda m: m != module_name):
        if name.startswith("nemo_jax") and by_module[name]:
            text.append(flags.FLAGS.module_help(name))
    return "\n".join(text)


def run(module_name: str, main) -> None:
    """Runs ``main`` under ``absl.app.run``. ``--help`` (or ``-h``) prints :func:`usage` and exits 0
    (absl's own ``--help`` exits 1 and lists only the flags of ``__main__``, which is a shim here)."""
    from absl import app

    if any(arg in HELP_FLAGS for arg in sys.argv[1:]):
        print(usage(module_name))
        sys.exit(0)
    app.run(main)


def define_inference_overrides():
    """Defines ``--config.inference.KEY=VALUE`` (ml_collections ``config_flags``, as
    ``nemo-jax-train``'s ``--config.x.y``): changes to the runs' stored ``inference`` settings
    (keys: :mod:`nemo_jax.inference.settings`). Returns a function giving the overrides the command
    line set, flat (``{"inference.steps": 100}``), for :func:`nemo_jax.inference.run_settings`."""
    import ml_collections
    from absl import flags
    from ml_collections import config_flags

    from nemo_jax.inference.settings import default_settings

    config_flags.DEFINE_config_dict(
        "config",
        ml_collections.ConfigDict({"inference": default_settings()}),
        "Override the runs' stored inference settings: --config.inference.KEY=VALUE "
        "(e.g. --config.inference.steps=100, --config.inference.parametrization=camera_position).",
    )

    def overrides() -> dict:
        return dict(config_flags.get_override_values(flags.FLAGS["config"]))

    return overrides
