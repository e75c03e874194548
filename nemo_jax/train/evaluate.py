"""Held-out evaluation during training: nearest-vertex matching of backbone features against the
neural mesh's memory bank."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax.data.batching import Subset, batch_dataset, prefetched
from nemo_jax.geometry.camera import feature_coordinates
from nemo_jax.mesh import subtypes
from nemo_jax.train import contrastive, parallel
from nemo_jax.train.step import (
    BATCH_FIELDS,
    CATEGORY_FIELD,
    OPTIONAL_FIELDS,
    SUBTYPE_FIELD,
    StepConfig,
    stack_index,
    views,
)


def evaluate(model, variables, neural_mesh, source, config, preprocess, batch_size: int = 8) -> dict:
    """Nearest-vertex matching on held-out images.

    For every visible vertex, the backbone feature at its projection is matched to the most similar
    memory-bank feature. Reports ``vertex_accuracy`` (the match is the vertex itself; chance
    ``1 / V``) and ``near_accuracy`` (the match projects within ``config.eval.match_px`` image pixels
    of the vertex) with its chance level ``near_chance`` (mean fraction of vertices that near).
    A per-sub-type mesh matches each image against its own ``cad_index``'s bank, a shared
    multi-category run against its ``category_index``'s.

    Each batch of ``batch_size`` images is split over all devices (of all processes: each process
    reads only its rows), padded with masked rows up to a multiple of the local device count.
    """
    cfg = StepConfig.from_config(config)
    thr = float(config.eval.match_px)
    stacked = subtypes.is_stacked(neural_mesh)
    used = (*BATCH_FIELDS, *OPTIONAL_FIELDS, *((SUBTYPE_FIELD, CATEGORY_FIELD) if stacked else ()))

    def vertex_features(variables, mesh, batch):
        view = views(mesh, batch, cfg)
        feats = model.apply(variables, preprocess(batch["image"]), train=False)
        pts = feature_coordinates(view.points, cfg.feature_stride)
        return view, contrastive.unit_samples(jax.vmap(contrastive.bilinear_sample)(feats, pts))

    @jax.jit
    def match(variables, neural_mesh, batch, valid):
        if stacked:  # each image against its own sub-type's bank; padding entries never match
            mesh = subtypes.select_subtype(neural_mesh, stack_index(batch))
            real = subtypes.vertex_mask(mesh.faces, mesh.vertices.shape[1])
            view, vfeat = vertex_features(variables, mesh, batch)
            sims = jnp.einsum("bvd,bud->bvu", vfeat, mesh.features) - 4.0 * ~real[:, None, :]
        else:
            view, vfeat = vertex_features(variables, neural_mesh, batch)
            sims = jnp.einsum("bvd,ud->bvu", vfeat, neural_mesh.features)
        best = jnp.argmax(sims, -1)  # [B, V]
        v = vfeat.shape[1]
        exact = best == jnp.arange(v)
        pred_pts = jnp.take_along_axis(view.points, best[..., None], axis=1)
        near = jnp.linalg.norm(pred_pts - view.points, axis=-1) <= thr
        d = jnp.linalg.norm(view.points[:, :, None] - view.points[:, None], axis=-1)
        chance = jnp.mean(d <= thr, -1)
        w = view.visible.astype(jnp.float32) * valid[:, None]
        return jnp.stack([jnp.sum(exact * w), jnp.sum(near * w), jnp.sum(chance * w), jnp.sum(w)])

    totals = np.zeros(4)
    n = len(source) - len(source) % batch_size if len(source) >= batch_size else 0
    if n == 0:
        raise ValueError(f"evaluate: {len(source)} held-out examples < eval batch size {batch_size}")
    replicated, split = parallel.shardings(parallel.data_mesh())
    variables, neural_mesh = jax.device_put((variables, neural_mesh), replicated)
    n_proc, n_dev = jax.process_count(), jax.local_device_count()
    if batch_size % n_proc:
        raise ValueError(f"config.eval.batch_size={batch_size} is not divisible by the {n_proc} processes")
    local = batch_size // n_proc
    padded = -(-local // n_dev) * n_dev
    valid = (np.arange(padded) < local).astype(np.float32)
    ds = batch_dataset(
        source, batch_size, shuffle=False, epochs=1, process_index=jax.process_index(), process_count=n_proc
    )
    for batch in prefetched(ds.__getitem__, range(len(ds))):
        # padded rows repeat the last image (a zero camera would make NaNs that a 0 weight keeps)
        batch = {
            k: np.concatenate([batch[k], np.repeat(batch[k][-1:], padded - local, 0)])
            for k in used
            if k in batch
        }
        batch = parallel.shard_batch({**batch, "valid": valid}, split)
        totals += np.asarray(match(variables, neural_mesh, batch, batch.pop("valid")))
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


def evaluate_and_log(model, state, source, config, preprocess, writer, step):
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    bs = int(config.eval.batch_size)
    if int(config.eval.num_batches) > 0:
        source = Subset(source, range(min(len(source), bs * int(config.eval.num_batches))))
    result = evaluate(model, variables, state.mesh, source, config, preprocess, bs)
    writer.write(step, result, prefix="eval")
    print(
        f"eval @ step {step}: nearest-vertex accuracy {result['vertex_accuracy']:.3f} "
        f"(chance {result['vertex_chance']:.3f}), within {config.eval.match_px} px "
        f"{result['near_accuracy']:.3f} (chance {result['near_chance']:.3f}) on "
        f"{result['eval_images']} held-out images"
    )
    return result
