"""The code examples of README.md and docs/ run as written, so the documentation cannot drift from
the code.

Each fenced ```python or ```bash block is one test, in the order of its page; the blocks of a page
share one scratch folder (the working directory, with ``configs`` and ``tools`` linked in from the
checkout) and, for Python, one namespace. ``<!-- skip: next "why" -->`` before a block skips it with
that reason (Sybil's skip directive; ``skip: start`` / ``skip: end`` for several), reported as a
skip. Shell blocks run in ``bash -euo pipefail`` with this interpreter's folder first on PATH, so
``python`` and the ``nemo-jax-*`` commands are this checkout's.

Tiny sizes: the shell blocks show real sizes (thousands of training steps); the functions in
``TINY`` wrap the commands to append flags that make each run take seconds (absl flags: the last
value given wins), so the commands and flags on the page are the ones exercised.

A page whose shell blocks run (they train small models: tens of seconds each, about 18 minutes for
all pages on 2 busy cores) is marked ``extended`` as a whole, so its Python blocks may use the files
its commands wrote; a page with only Python blocks (or only skipped shell blocks) runs in the default
suite.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sybil import Document, Example
from sybil.evaluators.skip import Skipper
from sybil.parsers.myst import CodeBlockParser, PythonCodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if "_build" not in p.parts)]
# Fence languages shown but never run: program output, file contents, citations.
SHOWN_ONLY = ("text", "json", "bibtex", "toml")

# command -> (its arguments must contain all of these, flags appended). Shrinks runs to seconds.
TINY = {
    "nemo-jax-build-data": (
        ("--dataset synthetic",),
        "--option train_per_category=24 --option val_per_category=8 --option test_per_category=4"
        " --no_progress",
    ),
    "nemo-jax-train": (
        (),
        "--config.train.steps=2 --config.train.progress=False --config.eval.num_batches=0",
    ),
    "nemo-jax-train-baseline": (
        (),
        "--config.train.steps=2 --config.train.batch_size=8 --config.train.progress=False",
    ),
    "nemo-jax-evaluate": ((), "--config.inference.steps=2"),
    "nemo-jax-estimate-pose": ((), "--config.inference.steps=2"),
    "nemo-jax-export": ((), "--config.inference.steps=2"),
}
SHELL_TIMEOUT_S = 900


def _tiny_prelude() -> str:
    """Bash functions shadowing the TINY commands (``command NAME`` runs the real one)."""
    lines = ["set -euo pipefail"]
    for name, (needed, flags) in TINY.items():
        if needed:
            test = " && ".join(f'[[ " $* " == *" {n} "* ]]' for n in needed)
            body = f'if {test}; then command {name} "$@" {flags}; else command {name} "$@"; fi'
        else:
            body = f'command {name} "$@" {flags}'
        lines.append(f"{name}() {{ {body}; }}")
    return "\n".join(lines) + "\n"


def _scratch(document: Document) -> Path:
    """The page's working folder, made on first use and removed when the test process exits."""
    folder = document.namespace.get("__docs_scratch__")
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="docs-example-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        for name in ("configs", "tools"):
            (folder / name).symlink_to(ROOT / name)
        document.namespace["__docs_scratch__"] = folder
    return folder


def run_shell(example: Example) -> None:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    try:
        proc = subprocess.run(
            ["bash", "-c", _tiny_prelude() + str(example.parsed)],
            cwd=_scratch(example.document),
            env=env,
            capture_output=True,
            text=True,
            timeout=SHELL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"{example.path}:{example.line}: still running after {SHELL_TIMEOUT_S} s"
        ) from None
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr)[-4000:]
        raise AssertionError(f"{example.path}:{example.line}: exit status {proc.returncode}\n{output}")


PARSERS = [PythonCodeBlockParser(), CodeBlockParser(language="bash", evaluator=run_shell), SkipParser()]


def _is_code(example: Example) -> bool:
    return not isinstance(example.region.evaluator, Skipper)


def _cases():
    """``(id, example, directives before it, page is slow)`` for every code block, in page order."""
    cases = []
    for path in DOCUMENTS:
        document = Document.parse(str(path), *PARSERS)
        examples = list(document)
        slow, skipping, pending = False, None, []
        for example in examples:  # a page is slow when one of its shell blocks runs
            if not _is_code(example):
                action = example.parsed[0]
                skipping = {"next": "next", "start": "start", "end": None}[action]
                continue
            runs = skipping is None
            if skipping == "next":
                skipping = None
            if runs and example.region.evaluator is run_shell:
                slow = True
        for example in examples:
            if not _is_code(example):
                pending.append(example)
                continue
            name = f"{path.relative_to(ROOT)}:{example.line}"
            cases.append((name, example, tuple(pending), slow))
            pending = []
    return cases


CASES = _cases()


def _evaluate(example: Example, directives) -> None:
    with contextlib.chdir(_scratch(example.document)):
        for directive in directives:
            directive.evaluate()
        example.evaluate()


@pytest.mark.parametrize(
    ("example", "directives"), [c[1:3] for c in CASES if not c[3]], ids=[c[0] for c in CASES if not c[3]]
)
def test_example_runs(example, directives):
    _evaluate(example, directives)


@pytest.mark.extended
@pytest.mark.parametrize(
    ("example", "directives"), [c[1:3] for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]]
)
def test_example_of_a_page_with_commands_runs(example, directives):
    _evaluate(example, directives)


def test_every_code_block_is_run_or_shown_as_output():
    """A fence in another language (```sh, ```console) would silently never run. MyST directives
    (```{toctree}, ```{eval-rst}) are not code; ```{code-block} LANG is."""
    # A backtick fence's info string holds no backtick (CommonMark), else the line is inline code.
    fence = re.compile(r"^ {0,3}(`{3,}(?=[^`\n]*$)|~{3,})[ \t]*([^\n]*)$", re.M)
    for path in DOCUMENTS:
        text = path.read_text()
        opened = None
        for match in fence.finditer(text):
            marker, info = match.group(1), match.group(2).strip()
            if opened is not None:  # inside a block: only its closing fence matters
                if marker[0] == opened[0] and len(marker) >= len(opened) and not info:
                    opened = None
                continue
            opened = marker
            words = info.split()
            language = words[0] if words else ""
            if language.startswith("{"):
                if language not in ("{code-block}", "{code}", "{sourcecode}", "{code-cell}"):
                    continue  # a directive
                language = words[1] if len(words) > 1 else ""
            line = text.count("\n", 0, match.start()) + 1
            assert language in ("python", "bash", *SHOWN_ONLY), (
                f"{path.relative_to(ROOT)}:{line}: code block in {language or 'no language'!r}: "
                f"use python or bash (run by this test) or one of {SHOWN_ONLY} (shown only)"
            )


def test_tiny_prelude_appends_flags_only_where_asked(tmp_path):
    """The wrappers append their flags, and only when the arguments they need are there."""
    fake = tmp_path / "nemo-jax-build-data"
    fake.write_text('#!/usr/bin/env bash\necho "$@"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    script = (
        _tiny_prelude()
        + "nemo-jax-build-data --dataset synthetic --data_dir d\nnemo-jax-build-data --dataset pascal3d\n"
    )
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    synthetic, pascal = out.splitlines()
    assert synthetic.startswith("--dataset synthetic --data_dir d --option train_per_category=")
    assert pascal == "--dataset pascal3d"
