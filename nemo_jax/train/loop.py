"""The training loop: config -> mesh, data, backbone, state -> jitted steps with checkpoints,
metrics (JSONL + TensorBoard), a progress bar, and the held-out vertex-matching evaluation.

Resume is exact: batch ``s`` is a pure function of ``(seed, s)`` (grain random access), the PRNG key
lives in the state, so a run killed at any point and restarted from its newest checkpoint ends
with the same parameters as an uninterrupted one.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable

import jax
import tqdm

from nemo_jax import data
from nemo_jax import mesh as mesh_lib
from nemo_jax.train import multihost, parallel
from nemo_jax.train.checkpoint import (
    PATH_KEYS,
    Checkpointer,
    discard_unsaved_run,
    is_path_value,
    run_files,
    step_dirs,
)
from nemo_jax.train.evaluate import evaluate_and_log
from nemo_jax.train.lock import LOCK_FILE, workdir_lock
from nemo_jax.train.metrics import MetricWriter
from nemo_jax.train.run import build_model, build_neural_mesh, mesh_info
from nemo_jax.train.sources import batch_dataset, build_sources, write_crop_protocol
from nemo_jax.train.state import (
    create_train_state,
    learning_rate_schedule,
    make_optimizer,
    resolve_steps,
    update_count,
)
from nemo_jax.train.step import StepConfig, jit_step, make_train_step


class NonFiniteError(RuntimeError, ValueError):
    """The loss or gradient became NaN/inf; the run stopped without saving that state (a
    ``ValueError`` too: the command-line tools print it as one line)."""


def train(config, workdir: str, model=None, preprocess: Callable | None = None) -> dict:
    """Trains a neural mesh + backbone as ``config`` says, in ``workdir`` (resuming if possible).

    The workdir is locked for the run (:mod:`nemo_jax.train.lock`): a second run started into it
    is refused with :class:`nemo_jax.train.lock.WorkdirInUse` naming the process that holds it.
    A run that fails before its first checkpoint removes what it wrote, and the workdir if it
    created it (files that were there before stay);
    the config's paths (``checkpoint.PATH_KEYS``) are made absolute first, so that the run's
    ``config.json`` reads the same from any working directory.

    Args:
      config: an ``ml_collections.ConfigDict`` like ``nemo_jax/defaults.py``'s ``base()``.
      workdir: run directory (created; resumed from when it holds a compatible checkpoint).
      model, preprocess: optional backbone module and image normalisation (default: from
        ``config.model`` via ``nemo_jax.models``).
    Returns:
      ``(metrics, state)``: the last logged train metrics plus the held-out matching accuracies
      (:func:`nemo_jax.train.evaluate.evaluate`), and the final :class:`TrainState`
      (``state.mesh`` is the trained neural mesh).
    """
    config = _with_absolute_paths(config)
    parallel.maybe_initialize_distributed(config.parallel)
    existed = os.path.isdir(workdir)
    before = run_files(workdir)  # what a failed first run must leave as it was
    if os.path.exists(os.path.join(workdir, LOCK_FILE)):
        before.add(LOCK_FILE)
    # Process 0 locks the workdir for the whole run (a second run into it is refused).
    with workdir_lock(workdir, enabled=jax.process_index() == 0) as lock_path:
        had_checkpoints = bool(step_dirs(os.path.join(workdir, "checkpoints")))
        try:
            return _train(config, workdir, model, preprocess)
        except BaseException:
            # Process 0 (the lock's holder) cleans up; a peer doing the same raced it to the same
            # folder and replaced the real error with its own FileNotFoundError.
            if not had_checkpoints and jax.process_index() == 0:
                discard_unsaved_run(workdir, remove_workdir=not existed, keep=before, lock_path=lock_path)
            raise


def _with_absolute_paths(config):
    config = config.copy_and_resolve_references()
    for key in PATH_KEYS:
        section, name = key.split(".")
        value = config.get(section, {}).get(name)
        if is_path_value(value):
            config[section][name] = os.path.abspath(os.path.expanduser(value))
    return config


def _train(config, workdir: str, model, preprocess) -> dict:
    multihost.check_same_config(config.to_dict())
    from nemo_jax import models  # noqa: PLC0415
    from nemo_jax.models.pretrained import read_pretrained  # noqa: PLC0415

    # Before any work: a missing, unreadable or hostile ImageNet file (or 'required' without one)
    # stops the run here (models.read_pretrained; read once, used below on a fresh start).
    pretrained = None
    if step_dirs(os.path.join(workdir, "checkpoints")):  # a resume restores the weights instead
        models.resolve_pretrained_path(config.model)
    else:
        pretrained = read_pretrained(config.model)
    _check_categories(config)
    t = config.train
    multihost.local_batch_size(int(t.batch_size))
    key = jax.random.PRNGKey(int(config.seed))
    k_mesh, k_state = jax.random.split(key)
    neural, geometry, perm = build_neural_mesh(config, k_mesh, check_flips=float(t.flip_prob) > 0)
    if model is None:
        model, default_pre = build_model(config)
        preprocess = preprocess or default_pre
    if preprocess is None:
        raise ValueError("train: pass preprocess with a custom model")
    step_cfg = StepConfig.from_config(config)
    # The sources before the optimizer: config.train.epochs counts the training set's examples.
    if isinstance(geometry, mesh_lib.MeshSet):  # one mesh per CAD sub-type or per category
        train_src, eval_src = build_sources(config, geometry, None, perm)
    else:
        train_src, eval_src = build_sources(config, *geometry, perm)
    t = resolve_steps(t, len(train_src))
    _check_run_size(t, len(train_src), config)
    tx = make_optimizer(t)
    ckpt = Checkpointer(
        workdir,
        config.to_dict(),
        mesh_info(config, neural),
        int(t.checkpoint_every),
        int(t.max_to_keep),
    )
    state = create_train_state(k_state, model, neural, tx, step_cfg.image_size)
    data_mesh = parallel.data_mesh()
    replicated, split = parallel.shardings(data_mesh)
    start = ckpt.latest_step()
    if start is not None:
        # The newest intact, finite checkpoint (damaged or non-finite ones: warned about).
        state = ckpt.restore(state, skip_nonfinite=True)
        start = ckpt.restored_step
        damaged = [s for s in ckpt.all_steps() if s > start]
        if damaged:  # set aside (kept, not deleted) so that these steps can be saved again
            moved = ckpt.set_aside(damaged)
            warnings.warn(f"damaged checkpoints moved to {', '.join(moved)}", stacklevel=2)
        print(f"resumed from {workdir}/checkpoints/{start}")
    else:
        start = 0
        if not models.is_scratch(config.model.get("pretrained", "")):
            variables = models.load_pretrained(
                config.model,
                {"params": state.params, "batch_stats": state.batch_stats},
                pretrained=pretrained,
            )
            state = state.replace(
                params=variables["params"],
                batch_stats=variables["batch_stats"],
                opt_state=tx.init(variables["params"]),
            )

    state = parallel.replicate(state, replicated)  # a restored state is process-local
    # Fixed-order cross-device sums (parallel.ordered_sum): no all-reduce whose order depends on
    # the process layout.
    ordered = bool(config.parallel.get("ordered_reductions", False)) and data_mesh.size > 1
    train_step = make_train_step(model, tx, step_cfg, preprocess, perm, data_mesh if ordered else None)
    step_fn = jit_step(train_step, replicated, split)
    if jax.process_index() == 0:
        write_crop_protocol(workdir, train_src)
    batches = batch_dataset(train_src, int(t.batch_size), int(config.seed))
    schedule = learning_rate_schedule(t)
    writer = MetricWriter(workdir, start)
    total = int(t.steps)
    bar = tqdm.tqdm(
        total=total, initial=start, disable=not bool(t.progress), dynamic_ncols=True, desc="train"
    )
    metrics, last = None, {}
    tick, tick_step = time.perf_counter(), start
    try:
        host_batches = data.prefetched(batches.__getitem__, range(start, total))  # this process's rows
        for s, host_batch in zip(range(start, total), host_batches, strict=True):
            batch = parallel.shard_batch(host_batch, split)
            state, new_metrics = step_fn(state, batch)
            if metrics is not None:  # check the previous step while this one runs
                _check_finite(metrics, s - 1, workdir)
            metrics = new_metrics
            done = s + 1
            log_now = done % int(t.log_every) == 0 or done == total
            save_now = done % int(t.checkpoint_every) == 0 or done == total
            if log_now or save_now:
                _check_finite(metrics, s, workdir)
            if log_now:
                last = {k: float(v) for k, v in jax.device_get(metrics).items()}
                now = time.perf_counter()
                last["images_per_s"] = (done - tick_step) * int(t.batch_size) / max(now - tick, 1e-9)
                updates = update_count(done, int(t.grad_accum), t.grad_accum_phase)
                last["lr"] = float(schedule(updates))
                tick, tick_step = now, done
                writer.write(done, last)
                bar.set_postfix(loss=f"{last['loss']:.3f}", img_s=f"{last['images_per_s']:.1f}")
            if save_now:
                ckpt.save(done, state, force=done == total)
            bar.update(1)
            if int(t.eval_every) > 0 and done % int(t.eval_every) == 0 and done != total:
                evaluate_and_log(model, state, eval_src, config, preprocess, writer, done)
        if metrics is not None:
            _check_finite(metrics, total - 1, workdir)
        result = dict(last)
        if int(config.eval.num_batches) != 0:
            result.update(evaluate_and_log(model, state, eval_src, config, preprocess, writer, total))
    finally:
        bar.close()
        writer.close()
        ckpt.close()
    result["step"] = int(jax.device_get(state.step))
    return result, state


def _check_categories(config) -> None:
    """Before any work: the config's category (or each of ``config.categories``) is one the built
    dataset holds (a folder in its ``meshes/``); ValueError naming the field and listing them."""
    if config.data.get("source", "tfds") != "tfds" or not is_path_value(config.data.get("data_dir")):
        return
    from nemo_jax.data.layout import dataset_dir  # noqa: PLC0415

    try:
        meshes = os.path.join(dataset_dir(config.data.name, config.data.data_dir), "meshes")
        known = sorted(n for n in os.listdir(meshes) if os.path.isdir(os.path.join(meshes, n)))
    except OSError:
        return  # no dataset (or no meshes): the readers name what is missing
    shared = tuple(config.get("categories", ()) or ())
    field, wanted = ("config.categories", shared) if shared else ("config.category", (config.category,))
    unknown = [c for c in wanted if c not in known]
    if known and unknown:
        raise ValueError(
            f"{field}: {', '.join(map(repr, unknown))} not in the dataset {config.data.name!r} in "
            f"{config.data.data_dir} (its categories: {', '.join(known)}); pick one of them or build "
            "the dataset with it (nemo-jax-build-data --option categories=...)"
        )


def _check_run_size(t, num_examples: int, config) -> None:
    """Before any compilation: ``steps`` >= 1 (:func:`resolve_steps` refuses 0 and negatives; a
    ``steps`` set from epochs may still be 0 when nothing is given), a global batch no larger than
    the training set, and a warning when the learning rate is 0 (nothing would be learnt)."""
    if int(t.steps) < 1:
        raise ValueError(f"config.train.steps: expected >= 1, got {int(t.steps)}")
    batch, where = int(t.batch_size), config.data.get("data_dir") or config.data.get("source", "")
    if batch > int(num_examples):
        raise ValueError(
            f"config.train.batch_size: {batch} is larger than the training set ({int(num_examples)} "
            f"examples{f' in {where}' if where else ''}); set --config.train.batch_size={int(num_examples)} "
            "or less"
        )
    if float(t.lr) == 0.0:
        warnings.warn("config.train.lr is 0: the parameters will not change", stacklevel=3)


def _check_finite(metrics, step: int, workdir: str) -> None:
    if not bool(jax.device_get(metrics["finite"])):
        m = jax.device_get(metrics)
        raise NonFiniteError(
            f"step {step + 1}: non-finite loss ({float(m['loss'])}), gradient norm "
            f"({float(m['grad_norm'])}) or parameters; "
            f"stopping without saving this state (last good checkpoint stays in {workdir}/checkpoints). "
            "Lower config.train.lr or set config.train.clip_norm."
        )
