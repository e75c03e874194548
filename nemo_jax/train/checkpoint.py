"""Checkpoints: an orbax CheckpointManager under ``workdir/checkpoints`` plus ``workdir/config.json``.

The config a run starts with is written beside the checkpoints, with its paths (``PATH_KEYS``)
made absolute so that the run reads the same from any working directory. A later run in the same
workdir resumes from the newest checkpoint, but only if its config is compatible (only the keys in
``RESUMABLE_KEYS`` may change) and the mesh matches the saved memory bank; otherwise it stops with
a clear error and writes nothing.

Damage: a checkpoint whose files cannot be read (a truncated ``_METADATA`` or array file, e.g. after
a disk filled up) is named in a warning and the next older intact one is restored instead
(:class:`CheckpointDamagedError` when none is intact). Training then moves the damaged step to
``workdir/damaged_checkpoints/`` (never deleting it) so that it can save that step again. A
checkpoint holding non-finite numbers is refused (:class:`NonFiniteCheckpointError`) naming the
step, the array and the folder to move aside; training's resume passes over it as over a damaged
one. A save that fails (a full disk) is a :class:`CheckpointSaveError` naming the step and the
newest checkpoint saved before it.

A moved dataset: a new run records its dataset (``dataset.json``: name, version, split sizes); a
resume whose ``data.data_dir`` differs is accepted when the dataset there matches that record.

The errors are ``ValueError`` / ``OSError`` subclasses as well, so that the command-line tools print
them as one line (:func:`nemo_jax.apps.cli.run`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import warnings
from collections.abc import Iterator

import jax
import numpy as np
import orbax.checkpoint as ocp

from nemo_jax.models.config import REQUIRED, SCRATCH

# Config keys that may differ between the run that wrote a checkpoint and the one resuming it.
RESUMABLE_KEYS = (
    "train.steps",
    "train.epochs",  # the length in epochs (with train.steps 0), as train.steps
    "train.log_every",
    "train.checkpoint_every",
    "train.max_to_keep",
    "train.eval_every",
    "train.progress",
    "eval.",
    "parallel.",  # the process/device layout: the global batch, and so every step, is the same
    "inference.",  # the pose search's settings do not touch training
)


# Config keys holding file-system paths: stored absolute (resolved against the working directory
# of the run that wrote them) and compared as absolute paths on resume.
PATH_KEYS = ("data.data_dir", "mesh.cad_dir", "model.pretrained")
# Values of PATH_KEYS that are names, not paths (compared lower-case): model.pretrained's random
# start ('', 'none', 'scratch'), 'package' and 'required' (nemo_jax.models.config).
NOT_PATHS = (*SCRATCH, "package", REQUIRED)


def is_path_value(value) -> bool:
    """Whether a PATH_KEYS value is a file-system path (not '' or one of ``NOT_PATHS``)."""
    return isinstance(value, str) and value.strip().lower() not in NOT_PATHS


class CheckpointDamagedError(RuntimeError, OSError):
    """A checkpoint's files cannot be read (truncated or missing); the message names the step.
    An ``OSError`` too, so that the command-line tools print it as one line."""


class NonFiniteCheckpointError(RuntimeError, ValueError):
    """A checkpoint holds NaN or infinite numbers; the message names the step, the array and the
    folder to move aside. A ``ValueError`` too (one line from the command-line tools)."""


class CheckpointMismatchError(RuntimeError, ValueError):
    """A workdir's checkpoint does not fit the current config, mesh or state structure; nothing
    was overwritten. A ``ValueError`` too (one line from the command-line tools)."""


class CheckpointSaveError(RuntimeError, OSError):
    """Saving a checkpoint failed (e.g. the disk is full); the message names the step and the
    newest checkpoint saved before it."""


def absolute_paths(config_dict: dict) -> dict:
    """A copy of ``config_dict`` (nested dicts) with the values of ``PATH_KEYS`` made absolute."""
    out = json.loads(json.dumps(config_dict, default=str))
    for key in PATH_KEYS:
        section, name = key.split(".")
        value = out.get(section, {}).get(name)
        if is_path_value(value):
            out[section][name] = os.path.abspath(os.path.expanduser(value))
    return out


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(saved: dict, current: dict) -> list[str]:
    """Keys whose values differ (ignoring ``RESUMABLE_KEYS``), as ``'key: saved -> current'``."""
    a, b = _flatten(absolute_paths(saved)), _flatten(absolute_paths(current))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if any(key == r or (r.endswith(".") and key.startswith(r)) for r in RESUMABLE_KEYS):
            continue
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if isinstance(va, list | tuple) and isinstance(vb, list | tuple):
            va, vb = list(va), list(vb)
        if va != vb:
            diffs.append(f"{key}: {va!r} -> {vb!r}")
    return diffs


class Checkpointer:
    """Periodic saves, resume, and the compatibility checks.

    Args:
      workdir: run directory.
      config_dict: the run's config as a JSON-able dict (``config.to_dict()``); its ``PATH_KEYS``
        are stored absolute.
      mesh_info: ``{'num_vertices': V, 'feature_dim': D, 'clutter_size': K}`` of the current mesh
        (``None``: a run without a neural mesh, e.g. the baseline; no ``mesh.json``).
      every: save every this many steps; max_to_keep: checkpoints kept.
      read_only: only restore (inference): creates and writes nothing in ``workdir``.
    """

    def __init__(
        self,
        workdir: str,
        config_dict: dict,
        mesh_info: dict | None,
        every: int,
        max_to_keep: int = 3,
        read_only: bool = False,
    ):
        self.workdir = os.path.abspath(workdir)
        self.every = max(int(every), 1)
        self.config_path = os.path.join(self.workdir, "config.json")
        self.mesh_path = os.path.join(self.workdir, "mesh.json")
        self.ckpt_dir = os.path.join(self.workdir, "checkpoints")
        self.read_only = bool(read_only)
        self.restored_step: int | None = None
        config_dict = absolute_paths(config_dict)
        has_ckpt = bool(step_dirs(self.ckpt_dir))
        if has_ckpt:
            self._check_compatible(config_dict, mesh_info)
        self.manager = None
        if has_ckpt or not self.read_only:
            os.makedirs(self.workdir, exist_ok=True)
            self._open_manager(every, max_to_keep)
        if not has_ckpt and not self.read_only and jax.process_index() == 0:  # one writer
            with open(self.config_path, "w") as fh:
                json.dump(config_dict, fh, indent=2, sort_keys=True, default=str)
            identity = dataset_identity(config_dict)
            if identity is not None:  # what a resume from another data_dir is compared with
                with open(os.path.join(self.workdir, DATASET_FILE), "w") as fh:
                    json.dump(identity, fh, indent=2, sort_keys=True)
            if mesh_info is not None:
                with open(self.mesh_path, "w") as fh:
                    json.dump(mesh_info, fh, indent=2, sort_keys=True)

    def _open_manager(self, every: int, max_to_keep: int) -> None:
        self._every, self._max_to_keep = every, max_to_keep
        # read-only: the options orbax would otherwise reset with a warning each (nothing is saved)
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=0 if self.read_only else max(int(every), 1),
            max_to_keep=None if self.read_only else int(max_to_keep),
            create=not self.read_only,
            cleanup_tmp_directories=not self.read_only,
            enable_async_checkpointing=False,
            read_only=self.read_only,
        )
        self.manager = ocp.CheckpointManager(self.ckpt_dir, options=options)

    def _check_compatible(self, config_dict: dict, mesh_info: dict | None) -> None:
        if not os.path.isfile(self.config_path):
            raise CheckpointMismatchError(
                f"{self.workdir}: holds checkpoints but no config.json; refusing to resume or overwrite"
            )
        with open(self.config_path) as fh:
            saved = json.load(fh)
        from nemo_jax.train import run  # noqa: PLC0415 (run imports this module)

        if run.is_nemo_run_config(saved):  # keys newer than the run: their defaults
            saved = run.upgrade_config(saved).to_dict()
        current = json.loads(json.dumps(config_dict, default=str))
        diffs = config_differences(saved, current)
        if diffs and all(d.startswith("data.data_dir:") for d in diffs):
            if not self.read_only:  # training: the same dataset at a new path resumes
                self._accept_moved_dataset(saved, current)
                diffs = []
        if diffs:
            raise CheckpointMismatchError(
                f"{self.workdir}: the checkpoint there was written with an incompatible config "
                f"({self.config_path}); differing keys:\n  "
                + "\n  ".join(diffs)
                + "\nUse a new --workdir, or give the stored values as --config.KEY=VALUE to resume"
                " as the run was trained (nothing was overwritten)."
            )
        if mesh_info is not None and os.path.isfile(self.mesh_path):
            with open(self.mesh_path) as fh:
                saved_mesh = json.load(fh)
            for key, value in mesh_info.items():
                if saved_mesh.get(key) != value:
                    raise CheckpointMismatchError(
                        f"{self.mesh_path}: the restored memory bank has {key}={saved_mesh.get(key)} but the "
                        f"current neural mesh has {key}={value}; use the mesh the checkpoint was trained "
                        "with or a new --workdir (nothing was overwritten)."
                    )

    def _accept_moved_dataset(self, saved: dict, current: dict) -> None:
        """Resume with ``data.data_dir`` at a new path when the dataset there is the run's (same
        name, version, splits and sizes as recorded in ``dataset.json``, or as found at the old
        path); ``config.json`` then records the new path. Else a one-line
        :class:`CheckpointMismatchError` saying how to continue."""
        old_dir, new_dir = saved["data"]["data_dir"], current["data"]["data_dir"]
        recorded_path = os.path.join(self.workdir, DATASET_FILE)
        recorded, source = None, None
        if os.path.isfile(recorded_path):
            try:
                with open(recorded_path) as fh:
                    recorded, source = json.load(fh), recorded_path
            except (OSError, ValueError):
                recorded = None
        if recorded is None:
            recorded, source = dataset_identity(saved), old_dir
        found = dataset_identity(current)
        how = (
            f"pass --config.data.data_dir={old_dir} (the dataset the run was trained on), or use a new "
            "--workdir; nothing was overwritten"
        )
        if recorded is None:
            raise CheckpointMismatchError(
                f"{self.config_path}: the run was trained on config.data.data_dir={old_dir}, which holds "
                f"no dataset now, and it recorded none to compare {new_dir} with; {how}"
            )
        if found != recorded:
            what = "no dataset" if found is None else _identity_difference(recorded, found)
            raise CheckpointMismatchError(
                f"{self.config_path}: config.data.data_dir={new_dir} is not the dataset the run was "
                f"trained on ({old_dir}; {source}): {what}; {how}"
            )
        warnings.warn(
            f"{self.workdir}: resuming with the run's dataset at its new path {new_dir} (was {old_dir}; "
            "same name, version, splits and sizes)",
            stacklevel=3,
        )
        saved["data"]["data_dir"] = new_dir
        if jax.process_index() == 0:
            tmp = self.config_path + ".tmp"
            with open(tmp, "w") as fh:
                json.dump(saved, fh, indent=2, sort_keys=True, default=str)
            os.replace(tmp, self.config_path)

    def latest_step(self) -> int | None:
        return None if self.manager is None else self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return [] if self.manager is None else sorted(int(s) for s in self.manager.all_steps())

    def array_shapes(self, step: int) -> dict[tuple[str, ...], tuple[int, ...]]:
        """``{key path: shape}`` of every array stored at ``step``, read from its metadata only (no
        array data); :class:`CheckpointDamagedError` when the metadata cannot be read in full."""
        where = os.path.join(self.ckpt_dir, str(step))
        meta_path = os.path.join(where, "default", "_METADATA")
        try:  # the tree's key paths: orbax's JSON index of the checkpoint
            with open(meta_path) as fh:
                entries = json.load(fh)["tree_metadata"].values()
            keys = [
                tuple(str(k["key"]) for k in e["key_metadata"])
                for e in entries
                if not e.get("value_metadata", {}).get("skip_deserialize", False)  # e.g. None leaves
            ]
        except Exception as err:  # noqa: BLE001 (unreadable or truncated: damaged)
            raise CheckpointDamagedError(
                f"{where}: checkpoint step {step} is damaged, {meta_path} cannot be read ({_brief(err)})"
            ) from err
        try:  # the shapes, from the arrays' own metadata (orbax skips arrays it cannot read)
            tree = ocp.StandardCheckpointer().metadata(os.path.join(where, "default")).item_metadata
            shapes = {
                _path_names(p): tuple(m.shape) for p, m in jax.tree_util.tree_flatten_with_path(tree)[0]
            }
        except Exception as err:  # noqa: BLE001
            raise CheckpointDamagedError(
                f"{where}: checkpoint step {step} is damaged, its array metadata cannot be read "
                f"({_brief(err)})"
            ) from err
        unreadable = [k for k in keys if k not in shapes]
        if unreadable:
            raise CheckpointDamagedError(
                f"{where}: checkpoint step {step} is damaged, {len(unreadable)} of its {len(keys)} arrays "
                f"cannot be read (e.g. {_keystr(unreadable[0])})"
            )
        return {k: shapes[k] for k in keys}

    def restore(self, target, step: int | None = None, skip_nonfinite: bool = False):
        """Restores the newest intact checkpoint (or exactly ``step``) into the structure of ``target``.

        A damaged newest checkpoint is named in a warning and the next older one is tried (with
        ``step`` given: :class:`CheckpointDamagedError`). ``self.restored_step`` is the step restored.
        Raises :class:`CheckpointMismatchError` when the checkpoint's structure differs from
        ``target``'s and :class:`NonFiniteCheckpointError` when it holds non-finite numbers, naming
        the folder to move aside and the step that would then be used; with ``skip_nonfinite``
        (training's resume) such a checkpoint is treated as damaged instead: warned about and
        passed over for the next older one.
        """
        steps = [int(step)] if step is not None else self.all_steps()[::-1]
        if not steps:
            raise FileNotFoundError(f"{self.ckpt_dir}: no checkpoint to restore")
        damaged = []
        for s in steps:
            try:
                restored = self._restore_step(target, s)
            except CheckpointDamagedError as err:
                if step is not None:
                    raise
                damaged.append(s)
                warnings.warn(f"{err}; trying the next older checkpoint", stacklevel=2)
                continue
            except NonFiniteCheckpointError as err:
                if skip_nonfinite and step is None:
                    damaged.append(s)
                    warnings.warn(f"{err}; trying the next older checkpoint", stacklevel=2)
                    continue
                older = [o for o in self.all_steps() if o < s]
                then = f"step {older[-1]} is then used" if older else "no older checkpoint is left"
                raise NonFiniteCheckpointError(
                    f"{err}; move {os.path.join(self.ckpt_dir, str(s))} aside (e.g. into "
                    f"{os.path.join(self.workdir, 'damaged_checkpoints')}/) and run again: {then} "
                    "(resuming training does this by itself)"
                ) from err
            if damaged:
                warnings.warn(
                    f"{self.ckpt_dir}: restored step {s}, the newest intact checkpoint (damaged: "
                    f"{', '.join(map(str, damaged))}; left in place)",
                    stacklevel=2,
                )
            self.restored_step = s
            path = os.path.join(self.ckpt_dir, str(s))
            for scored in _COLLECTORS:
                if not any(r["path"] == path for r in scored):
                    scored.append({"workdir": self.workdir, "step": s, "path": path})
            return restored
        raise CheckpointDamagedError(
            f"{self.ckpt_dir}: every checkpoint is damaged (steps {', '.join(map(str, damaged))}); "
            "nothing was restored or overwritten. Move that folder aside to train from the start, "
            "or use a new --workdir"
        )

    def _restore_step(self, target, step: int):
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        where = os.path.join(self.ckpt_dir, str(step))
        stored = self.array_shapes(step)
        want = {_path_names(p): tuple(x.shape) for p, x in jax.tree_util.tree_flatten_with_path(abstract)[0]}
        if set(stored) != set(want):
            extra, missing = sorted(set(stored) - set(want)), sorted(set(want) - set(stored))
            raise CheckpointMismatchError(
                f"{where}: does not match the current model/state structure ({len(stored)} arrays, the "
                f"current state has {len(want)}; only in the checkpoint: {[_keystr(k) for k in extra[:3]]}, "
                f"only in the current state: {[_keystr(k) for k in missing[:3]]}); nothing was overwritten"
            )
        for key, shape in want.items():
            if stored[key] != shape:
                raise CheckpointMismatchError(
                    f"{where}: {_keystr(key)} has shape {stored[key]} in the checkpoint but "
                    f"{shape} in the current model/state; nothing was overwritten"
                )
        try:
            restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as err:  # noqa: BLE001 (the structure matched: the files are damaged)
            raise CheckpointDamagedError(
                f"{where}: checkpoint step {step} is damaged, its arrays cannot be read ({_brief(err)})"
            ) from err
        for path, leaf in jax.tree_util.tree_flatten_with_path(restored)[0]:
            x = np.asarray(leaf)
            if np.issubdtype(x.dtype, np.inexact) and not np.all(np.isfinite(x)):
                raise NonFiniteCheckpointError(
                    f"{where}: checkpoint step {step} holds non-finite values in "
                    f"{_keystr(_path_names(path))} ({int(np.sum(~np.isfinite(x)))} of {x.size}); "
                    "refusing to use it"
                )
        return restored

    def set_aside(self, steps) -> list[str]:
        """Moves the damaged ``steps`` out of ``checkpoints/`` into ``damaged_checkpoints/`` (kept for
        inspection, never deleted) so that training can save those steps again; returns the new paths."""
        moved = []
        for s in steps:
            dest = os.path.join(self.workdir, "damaged_checkpoints", str(s))
            n = 1
            while os.path.exists(dest):
                dest, n = os.path.join(self.workdir, "damaged_checkpoints", f"{s}.{n}"), n + 1
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.move(os.path.join(self.ckpt_dir, str(s)), dest)
            moved.append(dest)
        if moved:
            self.manager.close()
            self._open_manager(self._every, self._max_to_keep)
        return moved

    def save(self, step: int, state, force: bool = False) -> bool:
        """Saves ``state`` as checkpoint ``step`` (when due, or ``force``). A failing write (a full
        disk, a read-only folder) raises :class:`CheckpointSaveError` naming the step and the
        newest checkpoint saved before it, from which the same command resumes."""
        try:
            return self.manager.save(step, args=ocp.args.StandardSave(state), force=force)
        except Exception as err:  # noqa: BLE001 (orbax and TensorStore wrap the OS error variously)
            if not _is_os_error(err):
                raise
            older = [s for s in step_dirs(self.ckpt_dir) if s < step]
            last = (
                f"the newest saved checkpoint is step {older[-1]} in {self.ckpt_dir}"
                if older
                else "no checkpoint was saved before it"
            )
            full = "the disk is full: " if _is_os_error(err, errno.ENOSPC) else ""
            raise CheckpointSaveError(
                f"{os.path.join(self.ckpt_dir, str(step))}: saving checkpoint step {step} failed, "
                f"{full}{_brief(err)}; {last}. Free space and run the same command again to resume"
            ) from err

    def close(self) -> None:
        if self.manager is not None:
            if not self.read_only:
                self.manager.wait_until_finished()
            self.manager.close()


_COLLECTORS: list[list[dict]] = []


@contextlib.contextmanager
def restored_checkpoints() -> Iterator[list[dict]]:
    """Collects, for the ``with`` block, every checkpoint :meth:`Checkpointer.restore` restores:
    the yielded list gets ``{"workdir", "step", "path"}`` per checkpoint (absolute paths, each
    once), e.g. for a results file to say which checkpoint it scored."""
    scored: list[dict] = []
    _COLLECTORS.append(scored)
    try:
        yield scored
    finally:
        _COLLECTORS.remove(scored)


#: The run's record of its dataset (:func:`dataset_identity`), for a resume from a moved dataset.
DATASET_FILE = "dataset.json"


def dataset_identity(config_dict: dict) -> dict | None:
    """What identifies the built dataset a config reads (``data.name`` in ``data.data_dir``): its
    name, version and, per split, the examples per shard and bytes (``dataset_info.json``). None
    for a config that reads no built dataset (``data.source`` other than 'tfds', no
    ``data_dir``) or when none is built there."""
    data = config_dict.get("data", {}) or {}
    if data.get("source", "tfds") != "tfds" or not is_path_value(data.get("data_dir")):
        return None
    from nemo_jax.data.layout import dataset_dir  # noqa: PLC0415 (the data layer only here)

    try:
        path = dataset_dir(str(data.get("name", "")), os.path.expanduser(data["data_dir"]))
        with open(os.path.join(path, "dataset_info.json")) as fh:
            info = json.load(fh)
    except (OSError, ValueError):
        return None
    splits = {
        str(s.get("name")): {"shard_lengths": [int(n) for n in s.get("shardLengths", [])],
                             "bytes": int(s.get("numBytes", 0) or 0)}
        for s in info.get("splits", [])
    }  # fmt: skip
    return {"name": info.get("name"), "version": info.get("version"), "splits": splits}


def _identity_difference(recorded: dict, found: dict) -> str:
    for key in ("name", "version"):
        if recorded.get(key) != found.get(key):
            return f"{key} {found.get(key)!r}, the run's is {recorded.get(key)!r}"
    a, b = recorded.get("splits", {}), found.get("splits", {})
    if set(a) != set(b):
        return f"splits {sorted(b)}, the run's are {sorted(a)}"
    for name in sorted(a):
        if a[name] != b[name]:
            return f"split {name!r} holds {b[name]}, the run's held {a[name]}"
    return "it differs"


# What a run writes into its workdir before its first checkpoint.
RUN_FILES = (
    "config.json", "mesh.json", DATASET_FILE, "crop_protocol.json", "metrics.jsonl", "tb", "checkpoints",
)  # fmt: skip


def run_files(workdir: str) -> set[str]:
    """The names of ``RUN_FILES`` present in ``workdir``."""
    return {name for name in RUN_FILES if os.path.lexists(os.path.join(workdir, name))}


def discard_unsaved_run(
    workdir: str, remove_workdir: bool = True, keep=(), lock_path: str | None = None
) -> None:
    """After a run failed before saving any checkpoint: removes what it wrote (``RUN_FILES``, except
    the names in ``keep``: what was there before the run started), the run's lock file
    ``lock_path`` unless its name is in ``keep``, and, if ``remove_workdir`` (the run created it),
    the workdir when that leaves it empty. Nothing else is touched. Does nothing when ``workdir``
    holds a checkpoint."""
    if step_dirs(os.path.join(workdir, "checkpoints")) or not os.path.isdir(workdir):
        return
    for name in RUN_FILES:
        path = os.path.join(workdir, name)
        if name in keep:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
    if lock_path is not None and os.path.basename(lock_path) not in keep and os.path.exists(lock_path):
        os.remove(lock_path)  # still held: released when the run's file descriptor closes
    if remove_workdir and not os.listdir(workdir):
        os.rmdir(workdir)


def step_dirs(ckpt_dir: str) -> list[int]:
    """Steps with a folder in ``ckpt_dir`` (none if it does not exist)."""
    if not os.path.isdir(ckpt_dir):
        return []
    return sorted(int(n) for n in os.listdir(ckpt_dir) if n.isdigit())


def _path_names(path) -> tuple[str, ...]:
    """A jax key path as plain names: dict keys, attribute names and sequence indices alike."""
    out = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                out.append(str(getattr(k, attr)))
                break
        else:
            out.append(str(k))
    return tuple(out)


def _keystr(names: tuple[str, ...]) -> str:
    return "/".join(names)


def _is_os_error(err: BaseException, code: int | None = None) -> bool:
    """Whether ``err`` or an exception it was raised from is an ``OSError`` (of errno ``code``), or
    says so in its text (TensorStore reports errno only as text)."""
    seen = 0
    while err is not None and seen < 20:
        if isinstance(err, OSError) and (code is None or err.errno == code):
            return True
        text = str(err)
        if (code in (None, errno.ENOSPC)) and ("No space left on device" in text or "ENOSPC" in text):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def _brief(err: BaseException, limit: int = 300) -> str:
    """``Type: first line`` of an exception, cut to ``limit`` characters (TensorStore errors run long)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text if len(text) <= limit else text[:limit] + " ..."
    return f"{type(err).__name__}: {text}"
