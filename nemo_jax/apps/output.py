"""All-or-nothing output for the tools: paths checked before the work, files and folders written
under a temporary name and renamed into place (a rename within one file system is atomic)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile


def check_output_file(path: str, flag: str) -> str:
    """``path`` (absolute) if a file can be written there: not a folder, its folder creatable and
    writable. ``ValueError`` naming ``flag`` otherwise; call before the work."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path}: is a folder, expected a file path")
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"{flag} {path}: cannot write there ({err.strerror or err})") from None
    return path


def check_output_folder(path: str, flag: str) -> str:
    """``path`` (absolute) if a folder can be made or written there; ``ValueError`` naming ``flag``."""
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path}: exists and is not a folder")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ValueError(f"{flag} {path}: cannot write there ({err.strerror or err})") from None
    return path


def write_json(path: str, obj, **kwargs) -> None:
    """Writes ``obj`` as JSON to ``path`` through a temporary file in the same folder, renamed
    into place: readers see the old file or the whole new one, never a part."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}-", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, **kwargs)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def replace_dir(new: str, target: str) -> None:
    """Puts folder ``new`` at ``target`` by renames (same file system), removing an old ``target``
    only once the new one is in place."""
    if not os.path.exists(target):
        os.rename(new, target)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}-old-", dir=os.path.dirname(target))
    os.rmdir(old)
    os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old, ignore_errors=True)
