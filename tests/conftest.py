"""Shared test set-up: tools run as subprocesses import THIS checkout's package (also where another
checkout is pip-installed in editable mode), and a helper to run a command-line tool."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
# Subprocesses import this checkout (and the tests' helper modules, as pytest's ``pythonpath`` does here).
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, TESTS, *filter(None, [os.environ.get("PYTHONPATH")])])


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
