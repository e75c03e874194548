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
import time
import traceback

import nemo_jax
from nemo_jax.train.lock import WorkdirInUse

#: Errors about the user's input, files or runs: one line, not a traceback (see :func:`run`).
#: The checkpoint errors (:mod:`nemo_jax.train.checkpoint`) and a diverged run
#: (:class:`nemo_jax.train.loop.NonFiniteError`) are ``ValueError`` / ``OSError`` subclasses.
USER_ERRORS = (ValueError, OSError, WorkdirInUse)

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130

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

    _exit_after_interrupt(command)
    try:
        app.run(guarded, flags_parser=parse_flags)
    except KeyboardInterrupt:
        interrupted(command, verbose)


#: Seconds a Ctrl-C leaves the main thread to unwind (a first training run removes what it wrote)
#: before :func:`_exit_after_interrupt` ends the process itself.
INTERRUPT_GRACE_S = 5.0


def _exit_after_interrupt(command: str) -> None:
    """Makes Ctrl-C end the process (:func:`interrupted`, exit 130) even where Python's
    ``KeyboardInterrupt`` cannot: while the main thread is inside a long XLA compilation the
    exception waits for it to return, and raised inside a callback from C++ it can be lost (the
    run then goes on). The C-level signal handler writes to a wakeup socket at once; a daemon
    thread reading it gives the main thread :data:`INTERRUPT_GRACE_S` seconds to unwind, then
    exits. Only from the main thread, and only while SIGINT has Python's default handler."""
    import signal
    import socket
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:
        return

    def watch():
        while signal.SIGINT not in reader.recv(64):
            pass
        time.sleep(INTERRUPT_GRACE_S)
        interrupted(command)

    threading.Thread(target=watch, daemon=True, name="nemo-jax-interrupt").start()
    _exit_after_interrupt.sockets = (reader, writer)  # kept open for the process's life


def interrupted(command: str, verbose: bool = False) -> None:
    """Ctrl-C: prints ``command: interrupted`` and exits :data:`INTERRUPTED` (130) at once, after
    flushing, without the interpreter's teardown (which can crash in XLA while a compilation is
    still running on another thread, "Fatal Python error"). ``verbose``: the traceback first."""
    if verbose:
        traceback.print_exc()
    print(f"{command}: interrupted", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(INTERRUPTED)


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

    caller = sys._getframe(1).f_globals.get("__name__", "")
    command = "nemo-jax-" + caller.rsplit(".", 1)[-1].replace("_", "-")
    defaults = default_settings()
    _check_inference_overrides(sys.argv[1:], defaults, command)
    try:  # config_flags parses the command line's overrides here, at definition
        config_flags.DEFINE_config_dict(
            "config",
            ml_collections.ConfigDict({"inference": defaults}),
            "Override the runs' stored inference settings: --config.inference.KEY=VALUE "
            "(e.g. --config.inference.steps=100, --config.inference.parametrization=camera_position).",
        )
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        overrides = [a for a in sys.argv[1:] if a.lstrip("-").startswith("config.")]
        sys.stderr.write(f"{command}: {' '.join(overrides)}: {_innermost_message(err)}\n")
        sys.exit(1)

    def overrides() -> dict:
        return dict(config_flags.get_override_values(flags.FLAGS["config"]))

    return overrides


def _check_inference_overrides(args, defaults, command: str) -> None:
    """Refuses, in one line and exit 1, a ``--config.X`` override that is not
    ``--config.inference.KEY`` with a known ``KEY`` (with a "did you mean" for a misspelt one): the
    runs' other settings are fixed by their training."""
    import difflib

    for arg in args:
        name = arg.lstrip("-")
        if arg == "--" or not arg.startswith("-") or not name.startswith("config."):
            if arg == "--":
                break
            continue
        key = name.split("=", 1)[0][len("config.") :]
        section, _, field = key.partition(".")
        if section != "inference" or not field:
            sys.stderr.write(
                f"{command}: {arg}: only the runs' inference settings can be changed here "
                "(--config.inference.KEY=VALUE); the others are fixed by the run's training\n"
            )
            sys.exit(1)
        head = field.split(".", 1)[0]
        if head not in defaults:
            close = difflib.get_close_matches(head, list(defaults), n=1)
            hint = f' Did you mean "{close[0]}"?' if close else f" Known: {', '.join(sorted(defaults))}."
            sys.stderr.write(f"{command}: {arg}: inference has no setting {head!r}.{hint}\n")
            sys.exit(1)


def checked_training_inputs(config_flag, workdir: str):
    """The config of a training command's ``--config`` flag holder (``config_flags``), after the
    checks that name the flag: the config file exists, ``--workdir`` is not a file, and every
    ``--config.X=...`` override of a fixed-length numeric field (``data.image_size``,
    ``mesh.lower``, ...) has the default's length. ValueError / OSError otherwise."""
    from absl import flags
    from ml_collections import config_flags

    holder = flags.FLAGS[config_flag.name]
    filename = config_flags.get_config_filename(holder)
    path = filename.split(":", 1)[0]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--config {filename}: no such file (a config like configs/smoke.py)")
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise NotADirectoryError(
            f"--workdir {workdir}: is a file, not a folder; name a new folder or a run to resume"
        )
    defaults = _config_defaults(path, filename)
    config = config_flag.value
    for key, value in config_flags.get_override_values(holder).items():
        default = _lookup(defaults, key)
        if not isinstance(default, tuple | list) or not default:
            continue
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in default):
            continue  # e.g. category names: any number of them
        if not isinstance(value, tuple | list) or len(value) != len(default):
            raise ValueError(
                f"--config.{key}: expected {len(default)} numbers like "
                f"--config.{key}='{tuple(default)}', got {value!r}"
            )
    return config


def _config_defaults(path: str, filename: str):
    """The config that ``--config FILENAME`` gives without overrides (``None`` if it cannot be
    built here: the overrides are then not checked against it)."""
    import importlib.util

    try:
        spec = importlib.util.spec_from_file_location("_nemo_jax_config_defaults", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        arg = filename.split(":", 1)[1] if ":" in filename else None
        return module.get_config(arg) if arg is not None else module.get_config()
    except Exception:  # noqa: BLE001 (the real load reports the config's own errors)
        return None


def _lookup(config, key: str):
    for part in key.split("."):
        if config is None:
            return None
        try:
            config = config[part]
        except (KeyError, TypeError, AttributeError, IndexError):
            return None
    return config
