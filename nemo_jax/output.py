"""Output that never costs a user a file: every tool replaces only what it wrote itself.

A folder a tool writes (``estimate-pose --out``, ``evaluate --figures``, the demo's workdir,
``write-fixture-tree --out``) gets a manifest, :data:`MANIFEST`, listing each file the tool wrote
(with its size and modification time) and the sub-folders it owns whole (the demo's training runs).
Before any work the folder is checked: a file that the manifest does not list, or that changed since
the tool wrote it, is someone else's, and the run is refused with a message listing those files.
The new output is written into a scratch folder beside the target and moved into place file by file
(each move an atomic rename within one file system); files of the previous output that the new one
does not have are removed, and nothing else is.

A single output file (``evaluate --json``, ``export --out``) is replaced only if it is recognisably
the tool's own earlier output (the caller's ``is_ours`` test), and always through a scratch file
renamed into place, so readers see the old file or the whole new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator

#: The manifest a tool writes into each output folder.
MANIFEST = ".nemo_jax-output.json"
#: Foreign files named in a refusal before "and N more".
SHOWN = 10


def check_output_file(path: str, flag: str, is_ours: Callable[[str], bool] | None = None) -> str:
    """``path`` (absolute) if a file can be written there: not a folder, its folder creatable and
    writable, and, if a file is there already, one that ``is_ours(path)`` recognises as this tool's
    earlier output. ``ValueError`` naming ``flag`` otherwise; call before the work."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path}: is a folder, expected a file path")
    if os.path.lexists(path) and (is_ours is None or not os.path.isfile(path) or not is_ours(path)):
        raise ValueError(
            f"{flag} {path}: a file that this tool did not write is there; refusing to replace it "
            "(move it or choose another path)"
        )
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"{flag} {path}: cannot write there ({err.strerror or err})") from None
    return path


def is_json_with(*keys: str) -> Callable[[str], bool]:
    """An ``is_ours`` test for :func:`check_output_file`: the file is a JSON object with ``keys``."""

    def test(path: str) -> bool:
        try:
            with open(path) as fh:
                obj = json.load(fh)
        except (OSError, ValueError):
            return False
        return isinstance(obj, dict) and all(k in obj for k in keys)

    return test


def read_manifest(folder: str) -> dict:
    """The manifest of ``folder`` (``{"tool", "files": {path: {"size", "mtime_ns"}}, "folders"}``),
    empty when there is none or it cannot be read (then nothing in the folder counts as the tool's)."""
    try:
        with open(os.path.join(folder, MANIFEST)) as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        return {"files": {}, "folders": []}
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return {"files": {}, "folders": []}
    manifest.setdefault("folders", [])
    return manifest


def _stamp(path: str) -> dict:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def owned_files(folder: str) -> set[str]:
    """Relative paths (``/``-separated) of the files in ``folder`` that its manifest lists and that
    are unchanged since they were written."""
    manifest, out = read_manifest(folder), set()
    for rel, stamp in manifest["files"].items():
        path = os.path.join(folder, *rel.split("/"))
        if os.path.isfile(path) and not os.path.islink(path) and _stamp(path) == stamp:
            out.add(rel)
    return out


def foreign_entries(folder: str, also_ours: Callable[[str], bool] | None = None) -> list[str]:
    """Relative paths of what in ``folder`` the tool did not write: files not listed (or changed)
    in its manifest, links, and empty folders; the manifest's owned sub-folders are skipped whole.
    ``also_ours(rel)``: files to count as the tool's without a manifest entry (older versions' output
    recognised by name). Sorted; empty when ``folder`` does not exist."""
    if not os.path.isdir(folder):
        return []
    manifest = read_manifest(folder)
    owned, folders = owned_files(folder), set(manifest["folders"])
    foreign = []
    for root, dirs, files in os.walk(folder):
        rel_root = os.path.relpath(root, folder).replace(os.sep, "/")
        rel_root = "" if rel_root == "." else rel_root + "/"
        for d in list(dirs):
            rel = rel_root + d
            path = os.path.join(root, d)
            if rel in folders and not os.path.islink(path):
                dirs.remove(d)  # owned whole
            elif os.path.islink(path):
                foreign.append(rel)
                dirs.remove(d)
            elif not os.listdir(path):
                foreign.append(rel + "/")
        for f in files:
            rel = rel_root + f
            if rel == MANIFEST:
                continue
            if rel not in owned and not (also_ours is not None and also_ours(rel)):
                foreign.append(rel)
    return sorted(foreign)


def describe(entries: list[str]) -> str:
    """``a, b, c`` (at most :data:`SHOWN`, then ``and N more``)."""
    shown = ", ".join(entries[:SHOWN])
    return shown + (f" and {len(entries) - SHOWN} more" if len(entries) > SHOWN else "")


def check_output_folder(path: str, flag: str, tool: str = "this tool", also_ours=None) -> str:
    """``path`` (absolute) if the tool may write its output folder there: absent, or a folder holding
    only the tool's own earlier output (:func:`foreign_entries`), and writable (nothing is created).
    ``ValueError`` naming ``flag`` and listing the foreign files otherwise; call before the work."""
    path = os.path.abspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path}: exists and is not a folder")
    foreign = foreign_entries(path, also_ours)
    if foreign:
        raise ValueError(
            f"{flag} {path}: holds files that {tool} did not write ({describe(foreign)}); "
            "refusing to replace them: move them or choose another folder"
        )
    probe = path  # the folder itself, or the nearest existing folder above it (nothing is created)
    while not os.path.isdir(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise ValueError(f"{flag} {path}: cannot write there ({err.strerror or err})") from None
    return path


def scratch_folder(target: str) -> str:
    """A new empty folder beside ``target`` (same file system) to write an output into before
    :func:`commit_output`; the caller removes it (``shutil.rmtree``) when done or failed."""
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(target))}-new-", dir=parent)


def _files_under(folder: str) -> list[str]:
    out = []
    for root, _, files in os.walk(folder):
        rel_root = os.path.relpath(root, folder).replace(os.sep, "/")
        for f in files:
            out.append(f if rel_root == "." else f"{rel_root}/{f}")
    return sorted(out)


def commit_output(
    scratch: str, target: str, tool: str, flag: str = "--out", folders: Iterable[str] = (), also_ours=None
) -> list[str]:
    """Moves every file of ``scratch`` into ``target`` (created if needed), removes the files of
    the previous output that the new one lacks, and writes the manifest (the new files, plus the
    owned sub-folders ``folders``). ``target`` is checked again first, as
    :func:`check_output_folder` does: a foreign file appeared meanwhile is a ValueError and nothing
    moves. Returns the new files' relative paths. ``scratch`` is left empty of files."""
    target = check_output_folder(target, flag, tool, also_ours)
    old = owned_files(target)
    new = _files_under(scratch)
    for rel in new:
        dest = os.path.join(target, *rel.split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.isdir(dest):
            shutil.rmtree(dest)  # an owned folder of the old output replaced by a file
        os.replace(os.path.join(scratch, *rel.split("/")), dest)
    for rel in sorted(old - set(new)):
        path = os.path.join(target, *rel.split("/"))
        os.remove(path)
        _prune_empty(os.path.dirname(path), target)
    manifest = {
        "tool": tool,
        "files": {rel: _stamp(os.path.join(target, *rel.split("/"))) for rel in new},
        "folders": sorted(set(folders)),
    }
    write_json(os.path.join(target, MANIFEST), manifest, indent=1)
    return new


def claim_folders(target: str, tool: str, folders: Iterable[str]) -> None:
    """Records in ``target``'s manifest (created if needed) that the sub-folders ``folders`` are
    the tool's whole, before the tool writes into them directly (training runs), so that a run
    that stops midway leaves them recognisably the tool's. Call after :func:`check_output_folder`."""
    os.makedirs(target, exist_ok=True)  # a new --workdir: the runs go there before the commit
    manifest = read_manifest(target)
    owned = owned_files(target)
    manifest = {
        "tool": tool,
        "files": {rel: stamp for rel, stamp in manifest["files"].items() if rel in owned},
        "folders": sorted(set(manifest["folders"]) | set(folders)),
    }
    write_json(os.path.join(target, MANIFEST), manifest, indent=1)


def record_folder(folder: str, tool: str) -> None:
    """Writes ``folder``'s manifest listing every file now in it as the tool's (for output that a
    library writes in place, e.g. a dataset build; call right after writing it)."""
    files = {
        rel: _stamp(os.path.join(folder, *rel.split("/"))) for rel in _files_under(folder) if rel != MANIFEST
    }
    write_json(os.path.join(folder, MANIFEST), {"tool": tool, "files": files, "folders": []}, indent=1)


@contextlib.contextmanager
def output_folder(target: str, tool: str, flag: str = "--out", folders: Iterable[str] = ()) -> Iterator[str]:
    """Checks ``target`` (:func:`check_output_folder`, before the work), yields a scratch folder to
    write the output into, and on success moves it into place (:func:`commit_output`). The scratch
    folder is removed either way, so a failed run leaves the previous output as it was. An empty
    ``target``: nothing is checked or written, and the scratch folder is ``""``."""
    if not target:
        yield ""
        return
    check_output_folder(target, flag, tool)
    if folders:
        claim_folders(target, tool, folders)
    scratch = scratch_folder(target)
    try:
        yield scratch
        commit_output(scratch, target, tool, flag, folders)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _prune_empty(folder: str, stop: str) -> None:
    """Removes ``folder`` and its parents up to (not including) ``stop`` while they are empty."""
    stop = os.path.abspath(stop)
    folder = os.path.abspath(folder)
    while folder != stop and folder.startswith(stop + os.sep) and not os.listdir(folder):
        os.rmdir(folder)
        folder = os.path.dirname(folder)


def write_json(path: str, obj, **kwargs) -> None:
    """Writes ``obj`` as JSON to ``path`` through a temporary file in the same folder, renamed
    into place: readers see the old file or the whole new one, never a part. Mode 0644 (less the
    umask), as a plain ``open`` would give."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}-", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, **kwargs)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def replace_file(scratch: str, path: str) -> None:
    """Renames the finished ``scratch`` file onto ``path`` with the mode a plain ``open`` would give
    (``mkstemp``'s files are 0600)."""
    os.chmod(scratch, 0o666 & ~_umask())
    os.replace(scratch, path)
