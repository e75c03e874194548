"""Checkpoints: an orbax CheckpointManager under ``workdir/checkpoints`` plus ``workdir/config.json``.

The config a run starts with is written beside the checkpoints. A later run in the same workdir
resumes from the newest checkpoint, but only if its config is compatible (only the keys in
``RESUMABLE_KEYS`` may change) and the mesh matches the saved memory bank; otherwise it stops with
a clear error and writes nothing.
"""

from __future__ import annotations

import json
import os

import jax
import orbax.checkpoint as ocp

# Config keys that may differ between the run that wrote a checkpoint and the one resuming it.
RESUMABLE_KEYS = (
    "train.steps",
    "train.log_every",
    "train.checkpoint_every",
    "train.max_to_keep",
    "train.eval_every",
    "train.progress",
    "eval.",
    "inference.",  # the pose search's settings do not touch training
)


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
    a, b = _flatten(saved), _flatten(current)
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
      config_dict: the run's config as a JSON-able dict (``config.to_dict()``).
      mesh_info: ``{'num_vertices': V, 'feature_dim': D, 'clutter_size': K}`` of the current mesh
        (``None``: a run without a neural mesh, e.g. the baseline; no ``mesh.json``).
      every: save every this many steps; max_to_keep: checkpoints kept.
    """

    def __init__(
        self, workdir: str, config_dict: dict, mesh_info: dict | None, every: int, max_to_keep: int = 3
    ):
        self.workdir = os.path.abspath(workdir)
        self.every = max(int(every), 1)
        self.config_path = os.path.join(self.workdir, "config.json")
        self.mesh_path = os.path.join(self.workdir, "mesh.json")
        ckpt_dir = os.path.join(self.workdir, "checkpoints")
        has_ckpt = os.path.isdir(ckpt_dir) and any(name.isdigit() for name in os.listdir(ckpt_dir))
        if has_ckpt:
            self._check_compatible(config_dict, mesh_info)
        os.makedirs(self.workdir, exist_ok=True)
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=self.every,
            max_to_keep=int(max_to_keep),
            create=True,
            cleanup_tmp_directories=True,
            enable_async_checkpointing=False,
        )
        self.manager = ocp.CheckpointManager(ckpt_dir, options=options)
        if not has_ckpt:
            with open(self.config_path, "w") as fh:
                json.dump(config_dict, fh, indent=2, sort_keys=True, default=str)
            if mesh_info is not None:
                with open(self.mesh_path, "w") as fh:
                    json.dump(mesh_info, fh, indent=2, sort_keys=True)

    def _check_compatible(self, config_dict: dict, mesh_info: dict | None) -> None:
        if not os.path.isfile(self.config_path):
            raise RuntimeError(
                f"{self.workdir}: holds checkpoints but no config.json; refusing to resume or overwrite"
            )
        with open(self.config_path) as fh:
            saved = json.load(fh)
        current = json.loads(json.dumps(config_dict, default=str))
        diffs = config_differences(saved, current)
        if diffs:
            raise RuntimeError(
                f"{self.workdir}: the checkpoint there was written with an incompatible config "
                f"({self.config_path}); differing keys:\n  "
                + "\n  ".join(diffs)
                + "\nUse a new --workdir (nothing was overwritten)."
            )
        if mesh_info is not None and os.path.isfile(self.mesh_path):
            with open(self.mesh_path) as fh:
                saved_mesh = json.load(fh)
            for key, value in mesh_info.items():
                if saved_mesh.get(key) != value:
                    raise RuntimeError(
                        f"{self.mesh_path}: the restored memory bank has {key}={saved_mesh.get(key)} but the "
                        f"current neural mesh has {key}={value}; use the mesh the checkpoint was trained "
                        "with or a new --workdir (nothing was overwritten)."
                    )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, target, step: int | None = None):
        """Restores the newest checkpoint (or ``step``) into the structure of ``target``."""
        step = self.manager.latest_step() if step is None else int(step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        where = f"{self.workdir}/checkpoints/{step}"
        try:
            restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except (ValueError, KeyError, TypeError) as err:
            raise RuntimeError(
                f"{where}: does not match the current model/state structure "
                f"({type(err).__name__}: {err}); nothing was overwritten"
            ) from err
        want = jax.tree_util.tree_flatten_with_path(abstract)[0]
        got = jax.tree.leaves(restored)
        if len(want) != len(got):
            raise RuntimeError(
                f"{where}: {len(got)} arrays, the current state has {len(want)}; nothing was overwritten"
            )
        for (path, w), g in zip(want, got, strict=True):
            if tuple(w.shape) != tuple(g.shape):
                raise RuntimeError(
                    f"{where}: {jax.tree_util.keystr(path)} has shape {tuple(g.shape)} in the checkpoint but "
                    f"{tuple(w.shape)} in the current model/state; nothing was overwritten"
                )
        return restored

    def save(self, step: int, state, force: bool = False) -> bool:
        return self.manager.save(step, args=ocp.args.StandardSave(state), force=force)

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
