"""Shared test set-up: tools run as subprocesses import THIS checkout's package (also where another
checkout is pip-installed in editable mode), one XLA compilation cache per test run, and a helper
to run a command-line tool."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
# Subprocesses import this checkout (and the tests' helper modules, as pytest's ``pythonpath`` does here).
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, TESTS, *filter(None, [os.environ.get("PYTHONPATH")])])

# One persistent XLA compilation cache for the whole run, shared by pytest-xdist's workers (they
# inherit this environment from the controller, which imports this file first) and by the tools
# the tests start as subprocesses: many tests compile the same train step or pose search for the
# same tiny shapes, and each program is then compiled once per run instead of once per test. The
# folder is new for every run (so a run's time never depends on an earlier one) and removed at the
# end; a JAX_COMPILATION_CACHE_DIR set by the caller is used as it is and kept.
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="nemo_jax_tests_xla_cache_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE


def pytest_unconfigure(config):
    if _OWN_CACHE is not None and not os.environ.get("PYTEST_XDIST_WORKER"):
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


def run_tool(name: str, *args, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python tools/<name>.py ARGS`` from the checkout's root, as a user would run it."""
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", f"{name}.py"), *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def tool():
    """:func:`run_tool` as a fixture."""
    return run_tool


@pytest.fixture(scope="session")
def random_batch():
    """:func:`random_inputs.random_train_batch`: ``random_batch(b, size, seed=0)``."""
    import random_inputs  # noqa: PLC0415 (a helper module on pytest's pythonpath)

    return random_inputs.random_train_batch


@pytest.fixture(scope="session")
def random_state_dict():
    """:func:`random_inputs.random_state_dict`: ``random_state_dict(arch, seed=0, std=1.0, max_var=2.0)``."""
    import random_inputs  # noqa: PLC0415

    return random_inputs.random_state_dict
