"""The training loop: config -> mesh, data, backbone, state -> jitted steps with checkpoints,
metrics (JSONL + TensorBoard), a progress bar, and the held-out vertex-matching evaluation.

Resume is exact: batch ``s`` is a pure function of ``(seed, s)`` (grain random access), the PRNG key
lives in the state, so a run killed at any point and restarted from its newest checkpoint ends
with the same parameters as an uninterrupted one.
"""

from __future__ import annotations

import collections
import concurrent.futures
import glob
import json
import os
import time
from collections.abc import Callable, Iterator

import grain
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from nemo_jax import mesh as mesh_lib
from nemo_jax.mesh import subtypes
from nemo_jax.render import validate_mesh
from nemo_jax.train import contrastive, parallel, subtype_data
from nemo_jax.train.checkpoint import Checkpointer
from nemo_jax.train.state import create_train_state, learning_rate_schedule, make_optimizer
from nemo_jax.train.step import BATCH_FIELDS, SUBTYPE_FIELD, StepConfig, jit_step, make_train_step, views
from nemo_jax.train.toy_data import toy_dataset


class NonFiniteError(RuntimeError):
    """The loss or gradient became NaN/inf; the run stopped without saving that state."""


def build_geometry(config) -> tuple[np.ndarray, np.ndarray]:
    """The neural mesh geometry ``(vertices [V, 3], faces [F, 3])`` from ``config.mesh``:

    * ``kind='cuboid'``: the box ``[lower, upper]`` with ~``target_vertices`` vertices.
    * ``kind='single_cuboid'``: NeMo's SingleCuboid from ``{cad_dir}/{category}/*.off``.
    * ``kind='cad'``: CAD model ``{cad_dir}/{category}/{cad_index:02d}.off`` remeshed.
    * ``kind='dataset'``: the neural mesh stored with the dataset (``nemo_jax.data.load_meshes``).

    The per-sub-type kinds (``'multi_cuboid'``, ``'cad_per_subtype'``) are built by
    :func:`nemo_jax.train.subtype_data.build_subtype_meshes` (see :func:`build_neural_mesh`).
    """
    m = config.mesh
    if m.kind == "cuboid":
        return mesh_lib.cuboid_mesh(list(m.lower), list(m.upper), int(m.target_vertices))
    if m.kind in ("single_cuboid", "cad"):
        folder = os.path.join(m.cad_dir, config.category)
        files = sorted(glob.glob(os.path.join(folder, "*.off")))
        if not files:
            raise FileNotFoundError(f"config.mesh.cad_dir: no .off files in {folder}")
        if m.kind == "cad":
            path = os.path.join(folder, f"{int(m.cad_index):02d}.off")
            return mesh_lib.remesh(*mesh_lib.load_off(path), int(m.target_vertices))
        vertex_sets = [mesh_lib.load_off(f)[0] for f in files]
        lower, upper = mesh_lib.coverage_bounds(vertex_sets, float(m.coverage))
        if m.symmetric:
            lower, upper = mesh_lib.symmetric_bounds(lower, upper)
        return mesh_lib.cuboid_mesh(lower, upper, int(m.target_vertices))
    if m.kind == "dataset":
        from nemo_jax import data  # noqa: PLC0415 (optional layer, only for this mesh kind)

        meshes = data.load_meshes(config.data.name, config.data.data_dir, [config.category])
        cat = meshes[config.category]
        return cat.neural_vertices, cat.neural_faces
    raise ValueError(
        f"config.mesh.kind: {m.kind!r} is not 'cuboid', 'single_cuboid', 'cad', 'dataset', "
        "'multi_cuboid' or 'cad_per_subtype'"
    )


def build_neural_mesh(config, key: jax.Array, check_flips: bool = False):
    """``(neural_mesh, geometry, perm)``: the initial neural mesh of ``config.mesh``.

    One mesh (``geometry = (vertices [V, 3], faces [F, 3])``), or for the per-sub-type kinds one
    per CAD sub-type stacked (``geometry`` a :class:`nemo_jax.mesh.MeshSet`, arrays ``[S, ...]``,
    see :mod:`nemo_jax.mesh.subtypes`). ``perm``: the mirror permutation when ``check_flips``
    (single mesh; ``None`` for sub-types, whose meshes are each checked to be symmetric).
    """
    dim, size = int(config.model.feature_dim), int(config.train.clutter_size)
    if subtype_data.is_subtype_config(config):
        meshes = subtype_data.build_subtype_meshes(config)
        for s in range(meshes.num_meshes):
            v, f = subtype_data.unpadded(meshes, s)
            validate_mesh(v, f, f"config.mesh (kind={config.mesh.kind!r}, cad_index {s + 1})")
            if check_flips:
                mesh_lib.mirror_permutation(v)
        return subtypes.init_subtype_meshes(key, meshes, dim, size), meshes, None
    vertices, faces = build_geometry(config)
    validate_mesh(vertices, faces, f"config.mesh (kind={config.mesh.kind!r})")
    perm = mesh_lib.mirror_permutation(vertices) if check_flips else None
    return mesh_lib.init_neural_mesh(key, vertices, faces, dim, size), (vertices, faces), perm


class _Subset:
    """Random-access view of ``source`` restricted to ``indices`` and the train-step fields."""

    def __init__(self, source, indices, fields=BATCH_FIELDS):
        self.source, self.indices, self.fields = source, np.asarray(indices), tuple(fields)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        ex = self.source[int(self.indices[i])]
        return {k: np.asarray(ex[k], np.uint8 if k == "image" else np.float32) for k in self.fields}


def build_sources(config, vertices, faces, perm):
    """``(train, eval)`` random-access sources of examples with the train-step fields.

    For per-sub-type meshes pass the :class:`nemo_jax.mesh.MeshSet` as ``vertices`` (``faces``
    unused): the examples then carry ``cad_index``, each checked to have a mesh.
    """
    d = config.data
    size = tuple(int(s) for s in d.image_size)
    if isinstance(vertices, mesh_lib.MeshSet):
        return _subtype_sources(config, vertices, size)
    if d.source == "toy":
        train = toy_dataset(
            vertices, faces, perm, int(d.num_train), size, seed=int(d.seed), distance=float(d.distance)
        )
        held = toy_dataset(
            vertices, faces, perm, int(d.num_eval), size, seed=int(d.seed) + 1, distance=float(d.distance)
        )
        return _Subset(train, range(len(train))), _Subset(held, range(len(held)))
    if d.source == "tfds":
        from nemo_jax import data  # noqa: PLC0415

        out = []
        for split in (d.train_split, d.eval_split):
            src = data.load(d.name, split, d.data_dir)
            if config.category not in src.categories:
                raise ValueError(f"config.category: {config.category!r} not in {src.path} ({src.categories})")
            label = src.categories.index(config.category)
            idx = [i for i in range(len(src)) if int(src[i]["category"]) == label]
            if not idx:
                raise ValueError(f"{src.path} [{split}]: no examples of category {config.category!r}")
            shape = tuple(src[idx[0]]["image"].shape[:2])
            if shape != size:
                raise ValueError(
                    f"{src.path} [{split}]: images are {shape}, config.data.image_size is {size}"
                )
            out.append(_Subset(src, idx))
        return tuple(out)
    raise ValueError(f"config.data.source: {d.source!r} is not 'toy' or 'tfds'")


def _subtype_sources(config, meshes, size):
    d, n_sub, fields = config.data, meshes.num_meshes, (*BATCH_FIELDS, SUBTYPE_FIELD)
    if d.source == "toy":
        out = []
        for num, seed in ((int(d.num_train), int(d.seed)), (int(d.num_eval), int(d.seed) + 1)):
            src = subtype_data.toy_subtype_dataset(meshes, num, size, seed, float(d.distance))
            out.append(_Subset(src, range(len(src)), fields))
        return tuple(out)
    if d.source != "tfds":
        raise ValueError(f"config.data.source: {d.source!r} is not 'toy' or 'tfds'")
    from nemo_jax import data  # noqa: PLC0415

    out = []
    for split in (d.train_split, d.eval_split):
        src = data.load(d.name, split, d.data_dir)
        if config.category not in src.categories:
            raise ValueError(f"config.category: {config.category!r} not in {src.path} ({src.categories})")
        label = src.categories.index(config.category)
        idx = [i for i in range(len(src)) if int(src[i]["category"]) == label]
        if not idx:
            raise ValueError(f"{src.path} [{split}]: no examples of category {config.category!r}")
        exs = [src[i] for i in idx]
        shape = tuple(exs[0]["image"].shape[:2])
        if shape != size:
            raise ValueError(f"{src.path} [{split}]: images are {shape}, config.data.image_size is {size}")
        subtype_data.check_cad_indices(
            [e["cad_index"] for e in exs], [e.get("id", i) for e, i in zip(exs, idx, strict=True)],
            n_sub, f"{src.path} [{split}]",
        )  # fmt: skip
        out.append(_Subset(src, idx, fields))
    return tuple(out)


def batch_dataset(source, batch_size: int, seed: int):
    """Infinite, reshuffled-every-epoch batches with random access: ``ds[step]`` is batch ``step``."""
    if len(source) < batch_size:
        raise ValueError(f"data: {len(source)} examples < batch size {batch_size}")
    return (
        grain.MapDataset.source(source)
        .seed(seed)
        .shuffle()
        .repeat(None)
        .batch(batch_size, drop_remainder=True)
    )


def prefetched(batches, start: int, stop: int, ahead: int = 2) -> Iterator:
    """Yields ``host_slice(batches[s])`` for ``s`` in ``[start, stop)``, reading up to ``ahead``
    batches in a background thread while the device runs the current step (reading and decoding a
    batch is ~15 % of a CPU train step). The order, and so every batch, is unchanged."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        fetch = lambda s: parallel.host_slice(batches[s])
        pending = collections.deque(pool.submit(fetch, s) for s in range(start, min(stop, start + ahead)))
        for s in range(start, stop):
            batch = pending.popleft().result()
            if s + ahead < stop:
                pending.append(pool.submit(fetch, s + ahead))
            yield batch


def build_model(config):
    """``(module, preprocess)`` from ``config.model`` (see ``nemo_jax.models.default_config``)."""
    from nemo_jax import models  # noqa: PLC0415

    return models.build_backbone(config.model), models.preprocess


def evaluate(model, variables, neural_mesh, source, config, preprocess, batch_size: int = 8) -> dict:
    """Nearest-vertex matching on held-out images.

    For every visible vertex, the backbone feature at its projection is matched to the most similar
    memory-bank feature. Reports ``vertex_accuracy`` (the match is the vertex itself; chance
    ``1 / V``) and ``near_accuracy`` (the match projects within ``config.eval.match_px`` image pixels
    of the vertex) with its chance level ``near_chance`` (mean fraction of vertices that near).
    """
    cfg = StepConfig.from_config(config)
    thr = float(config.eval.match_px)
    stacked = subtypes.is_stacked(neural_mesh)
    fields = (*BATCH_FIELDS, SUBTYPE_FIELD) if stacked else BATCH_FIELDS

    @jax.jit
    def match(batch):
        if stacked:  # each image against its own sub-type's mesh; padding never matches
            mesh = subtypes.select_subtype(neural_mesh, batch[SUBTYPE_FIELD].astype(jnp.int32) - 1)
            real = subtypes.vertex_mask(mesh.faces, mesh.vertices.shape[1])
            view, vfeat = vfeat_of(mesh, batch)
            sims = jnp.einsum("bvd,bud->bvu", vfeat, mesh.features) - 4.0 * ~real[:, None, :]
        else:
            view, vfeat = vfeat_of(neural_mesh, batch)
            sims = jnp.einsum("bvd,ud->bvu", vfeat, neural_mesh.features)
        best = jnp.argmax(sims, -1)  # [B, V]
        v = best.shape[1]
        exact = best == jnp.arange(v)
        pred_pts = jnp.take_along_axis(view.points, best[..., None], axis=1)
        near = jnp.linalg.norm(pred_pts - view.points, axis=-1) <= thr
        d = jnp.linalg.norm(view.points[:, :, None] - view.points[:, None], axis=-1)
        chance = jnp.mean(d <= thr, -1)
        w = view.visible.astype(jnp.float32)
        return jnp.stack([jnp.sum(exact * w), jnp.sum(near * w), jnp.sum(chance * w), jnp.sum(w)])

    def vfeat_of(mesh, batch):
        view = views(mesh, batch, cfg)
        feats = model.apply(variables, preprocess(batch["image"]), train=False)
        pts = contrastive.feature_coordinates(view.points, cfg.feature_stride)
        return view, contrastive.unit_samples(jax.vmap(contrastive.bilinear_sample)(feats, pts))

    totals = np.zeros(4)
    n = len(source) - len(source) % batch_size if len(source) >= batch_size else 0
    if n == 0:
        raise ValueError(f"evaluate: {len(source)} held-out examples < eval batch size {batch_size}")
    for start in range(0, n, batch_size):
        exs = [source[i] for i in range(start, start + batch_size)]
        batch = {k: jnp.asarray(np.stack([e[k] for e in exs])) for k in fields}
        totals += np.asarray(match(batch))
    visible = max(totals[3], 1.0)
    v = neural_mesh.vertices.shape[-2]
    return {
        "vertex_accuracy": totals[0] / visible,
        "vertex_chance": 1.0 / v,
        "near_accuracy": totals[1] / visible,
        "near_chance": totals[2] / visible,
        "eval_images": n,
        "eval_visible_vertices": int(totals[3]),
    }


class MetricWriter:
    """Appends metrics to ``workdir/metrics.jsonl`` and TensorBoard events in ``workdir/tb``."""

    def __init__(self, workdir: str, resume_step: int):
        from tensorboardX import SummaryWriter  # noqa: PLC0415

        self.path = os.path.join(workdir, "metrics.jsonl")
        if os.path.exists(self.path):  # drop rows a killed run wrote after its last checkpoint
            with open(self.path) as fh:
                rows = [json.loads(line) for line in fh if line.strip()]
            with open(self.path, "w") as fh:
                for row in rows:
                    if row.get("step", 0) <= resume_step:
                        fh.write(json.dumps(row) + "\n")
        self.tb = SummaryWriter(os.path.join(workdir, "tb"))

    def write(self, step: int, metrics: dict, prefix: str = "train") -> None:
        row = {"step": int(step), "split": prefix, **{k: float(v) for k, v in metrics.items()}}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        for k, v in metrics.items():
            self.tb.add_scalar(f"{prefix}/{k}", float(v), int(step))
        self.tb.flush()

    def close(self):
        self.tb.close()


def train(config, workdir: str, model=None, preprocess: Callable | None = None) -> dict:
    """Trains a neural mesh + backbone as ``config`` says, in ``workdir`` (resuming if possible).

    Args:
      config: an ``ml_collections.ConfigDict`` like ``configs/common.py``'s ``base()``.
      workdir: run directory (created; resumed from when it holds a compatible checkpoint).
      model, preprocess: optional backbone module and image normalisation (default: from
        ``config.model`` via ``nemo_jax.models``).
    Returns:
      ``(metrics, state)``: the last logged train metrics plus the held-out matching accuracies
      (:func:`evaluate`), and the final :class:`TrainState` (``state.mesh`` is the trained neural mesh).
    """
    parallel.maybe_initialize_distributed(config.parallel)
    t = config.train
    key = jax.random.PRNGKey(int(config.seed))
    k_mesh, k_state = jax.random.split(key)
    neural, geometry, perm = build_neural_mesh(config, k_mesh, check_flips=float(t.flip_prob) > 0)
    if model is None:
        model, default_pre = build_model(config)
        preprocess = preprocess or default_pre
    if preprocess is None:
        raise ValueError("train: pass preprocess with a custom model")
    step_cfg = StepConfig.from_config(config)
    tx = make_optimizer(t)
    ckpt = Checkpointer(
        workdir,
        config.to_dict(),
        _mesh_info(config, neural),
        int(t.checkpoint_every),
        int(t.max_to_keep),
    )
    state = create_train_state(k_state, model, neural, tx, step_cfg.image_size)
    start = ckpt.latest_step()
    if start is not None:
        state = ckpt.restore(state)
        print(f"resumed from {workdir}/checkpoints/{start}")
    else:
        start = 0
        if config.model.get("pretrained", ""):
            from nemo_jax import models  # noqa: PLC0415

            variables = models.load_pretrained(
                config.model, {"params": state.params, "batch_stats": state.batch_stats}
            )
            state = state.replace(
                params=variables["params"],
                batch_stats=variables["batch_stats"],
                opt_state=tx.init(variables["params"]),
            )

    dmesh = parallel.data_mesh()
    replicated, split = parallel.shardings(dmesh)
    state = jax.device_put(state, replicated)
    step_fn = jit_step(make_train_step(model, tx, step_cfg, preprocess, perm), replicated, split)
    if isinstance(geometry, mesh_lib.MeshSet):
        train_src, eval_src = build_sources(config, geometry, None, perm)
    else:
        train_src, eval_src = build_sources(config, *geometry, perm)
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
        for s, host_batch in zip(range(start, total), prefetched(batches, start, total), strict=True):
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
                last["lr"] = float(schedule(done // int(t.grad_accum)))
                tick, tick_step = now, done
                writer.write(done, last)
                bar.set_postfix(loss=f"{last['loss']:.3f}", img_s=f"{last['images_per_s']:.1f}")
            if save_now:
                ckpt.save(done, state, force=done == total)
            bar.update(1)
            if int(t.eval_every) > 0 and done % int(t.eval_every) == 0 and done != total:
                _evaluate_and_log(model, state, eval_src, config, preprocess, writer, done)
        if metrics is not None:
            _check_finite(metrics, total - 1, workdir)
        result = dict(last)
        if int(config.eval.num_batches) != 0:
            result.update(_evaluate_and_log(model, state, eval_src, config, preprocess, writer, total))
    finally:
        bar.close()
        writer.close()
        ckpt.close()
    result["step"] = int(jax.device_get(state.step))
    return result, state


def _check_finite(metrics, step: int, workdir: str) -> None:
    if not bool(jax.device_get(metrics["finite"])):
        m = jax.device_get(metrics)
        raise NonFiniteError(
            f"step {step + 1}: non-finite loss ({float(m['loss'])}), gradient norm "
            f"({float(m['grad_norm'])}) or parameters; "
            f"stopping without saving this state (last good checkpoint stays in {workdir}/checkpoints). "
            "Lower config.train.lr or set config.train.clip_norm."
        )


def _evaluate_and_log(model, state, source, config, preprocess, writer, step):
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    bs = int(config.eval.batch_size)
    if int(config.eval.num_batches) > 0:
        n = min(len(source), bs * int(config.eval.num_batches))
        source = _Subset(source, range(n), getattr(source, "fields", BATCH_FIELDS))
    result = evaluate(model, variables, state.mesh, source, config, preprocess, bs)
    writer.write(step, result, prefix="eval")
    print(
        f"eval @ step {step}: nearest-vertex accuracy {result['vertex_accuracy']:.3f} "
        f"(chance {result['vertex_chance']:.3f}), within {config.eval.match_px} px "
        f"{result['near_accuracy']:.3f} (chance {result['near_chance']:.3f}) on "
        f"{result['eval_images']} held-out images"
    )
    return result


def load_run(workdir: str, step: int | None = None):
    """A trained run for inference: ``(config, model, variables, neural_mesh)``.

    Rebuilds the state structure from ``workdir/config.json`` and restores the newest checkpoint
    (or ``step``). ``variables`` is ``{'params', 'batch_stats'}`` for ``model.apply``;
    ``neural_mesh`` holds the vertices, faces, vertex features ``[V, D]`` and clutter ``[K, D]``.
    """
    import ml_collections  # noqa: PLC0415

    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not a training workdir (no config.json)")
    with open(path) as fh:
        config = ml_collections.ConfigDict(json.load(fh))
    for name in ("data", "mesh"):  # JSON turned tuples into lists
        for key, value in config[name].items():
            if isinstance(value, list):
                config[name][key] = tuple(value)
    model, _ = build_model(config)
    tx = make_optimizer(config.train)
    neural, _, _ = build_neural_mesh(config, jax.random.PRNGKey(0))
    # Only the structure, shapes and dtypes are needed to restore into: eval_shape compiles nothing
    # (a real init compiled the backbone's init, ~4 s per run on a 2-core CPU).
    state = jax.eval_shape(
        lambda: create_train_state(
            jax.random.PRNGKey(0), model, neural, tx, StepConfig.from_config(config).image_size
        )
    )
    ckpt = Checkpointer(workdir, config.to_dict(), _mesh_info(config, neural), 1, 1000)
    try:
        if ckpt.latest_step() is None:
            raise FileNotFoundError(f"{workdir}/checkpoints: no checkpoint to load")
        state = ckpt.restore(state, step)
    finally:
        ckpt.close()
    return config, model, {"params": state.params, "batch_stats": state.batch_stats}, state.mesh


def _mesh_info(config, neural) -> dict:
    info = {
        "num_vertices": int(neural.vertices.shape[-2]),
        "num_faces": int(neural.faces.shape[-2]),
        "feature_dim": int(config.model.feature_dim),
        "clutter_size": int(config.train.clutter_size),
    }
    if subtypes.is_stacked(neural):  # per-sub-type banks (padded sizes above)
        info["num_subtypes"] = int(neural.vertices.shape[0])
    return info
