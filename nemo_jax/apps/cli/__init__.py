"""Command-line entry points: one module per command, each parsing absl flags (ml_collections
``config_flags`` where a config file is read), calling one library function and writing results.

The user commands (:data:`COMMANDS`) are installed as console scripts (``nemo-jax-demo``,
``nemo-jax-train``, ... see ``pyproject.toml``); the benchmarks and comparisons (:data:`SCRIPTS`) run
from a checkout as ``python tools/X.py``, which calls the module's ``main`` (as do the user
commands' ``tools/X.py``). Each module defines its flags at import, so import one
command per process (the console scripts and ``tools/*.py`` do).
"""

from __future__ import annotations

import os
import sys
import traceback

import nemo_jax
from nemo_jax.train.lock import WorkdirInUse

#: Errors about the user's input, files or runs: one line, not a traceback (see :func:`run`).
USER_ERRORS = (ValueError, OSError, WorkdirInUse)

#: The checkout holding ``configs/`` (a source tree or an editable install).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(nemo_jax.__file__)))

#: The user commands: one module each, installed as console scripts (``nemo-jax-<name with dashes>``).
COMMANDS = (
    "demo",
    "train",
    "train_baseline",
    "evaluate",
    "build_data",
    "estimate_pose",
    "render_mesh",
    "convert_weights",
    "export",
)
#: Benchmarks and comparisons: modules here too, run from a checkout as ``python tools/<name>.py``
#: (not installed as commands).
SCRIPTS = (
    "bench_pose",
    "bench_train",
    "compare_precision",
    "bench_render",
    "compare_variants",
    "write_fixture_tree",
    "compare_shared",
    "six_d_check",
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
    (absl's own ``--help`` exits 1 and lists only the flags of ``__main__``, which is a shim here).

    An error the library raises about the user's input or files (:data:`USER_ERRORS`) prints one
    line, ``command: message``, and exits 1; ``--verbose`` prints the traceback as well. Any other
    exception is a bug and keeps its traceback."""
    from absl import app

    if any(arg in HELP_FLAGS for arg in sys.argv[1:]):
        print(usage(module_name))
        sys.exit(0)
    verbose = "--verbose" in sys.argv[1:]
    if verbose:
        sys.argv.remove("--verbose")
    name = module_name.rsplit(".", 1)[-1]
    command = f"nemo-jax-{name.replace('_', '-')}" if name in COMMANDS else f"tools/{name}.py"

    def guarded(argv):
        try:
            return main(argv)
        except USER_ERRORS as err:
            if verbose:
                traceback.print_exc()
            print(f"{command}: {_innermost_message(err)}", file=sys.stderr)
            return 1

    app.run(guarded, flags_parser=parse_flags)


def _innermost_message(err: BaseException) -> str:
    """The message of ``err``, unwrapping exceptions wrapped as another's only argument (ml_collections
    raises ``AttributeError(KeyError("'x'\\nDid you mean ..."))``), on one line."""
    while len(err.args) == 1 and isinstance(err.args[0], BaseException):
        err = err.args[0]
    text = str(err.args[0]) if len(err.args) == 1 else str(err)
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def parse_flags(argv):
    """absl's flag parsing, where a ``--config.x=...`` override naming no config field (or not
    parsing as the field's type) prints one line (with ml_collections' "did you mean") and exits 1
    instead of a traceback, like absl's other flag errors."""
    from absl import app

    try:
        return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError, TypeError, ValueError) as err:  # config_flags' override errors
        overrides = [a for a in argv[1:] if a.startswith(("--config.", "-config."))]
        where = f" in {' '.join(overrides)}" if overrides else ""
        sys.stderr.write(f"FATAL Flags parsing error{where}: {_innermost_message(err)}\n")
        sys.exit(1)


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
