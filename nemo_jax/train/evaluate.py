"""Held-out evaluation during training: nearest-vertex matching of backbone features against the
neural mesh's memory bank."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax.data.batching import Subset, batches
from nemo_jax.geometry.camera import feature_coordinates
from nemo_jax.train import contrastive
from nemo_jax.train.step import BATCH_FIELDS, OPTIONAL_FIELDS, StepConfig, views


def evaluate(model, variables, neural_mesh, source, config, preprocess, batch_size: int = 8) -> dict:
    """Nearest-vertex matching on held-out images.

    For every visible vertex, the backbone feature at its projection is matched to the most similar
    memory-bank feature. Reports ``vertex_accuracy`` (the match is the vertex itself; chance
    ``1 / V``) and ``near_accuracy`` (the match projects within ``config.eval.match_px`` image pixels
    of the vertex) with its chance level ``near_chance`` (mean fraction of vertices that near).
    """
    cfg = StepConfig.from_config(config)
    thr = float(config.eval.match_px)

    @jax.jit
    def match(batch):
        view = views(neural_mesh, batch, cfg)
        feats = model.apply(variables, preprocess(batch["image"]), train=False)
        pts = feature_coordinates(view.points, cfg.feature_stride)
        vfeat = contrastive.unit_samples(jax.vmap(contrastive.bilinear_sample)(feats, pts))
        best = jnp.argmax(jnp.einsum("bvd,ud->bvu", vfeat, neural_mesh.features), -1)  # [B, V]
        v = vfeat.shape[1]
        exact = best == jnp.arange(v)
        pred_pts = jnp.take_along_axis(view.points, best[..., None], axis=1)
        near = jnp.linalg.norm(pred_pts - view.points, axis=-1) <= thr
        d = jnp.linalg.norm(view.points[:, :, None] - view.points[:, None], axis=-1)
        chance = jnp.mean(d <= thr, -1)
        w = view.visible.astype(jnp.float32)
        return jnp.stack([jnp.sum(exact * w), jnp.sum(near * w), jnp.sum(chance * w), jnp.sum(w)])

    totals = np.zeros(4)
    n = len(source) - len(source) % batch_size if len(source) >= batch_size else 0
    if n == 0:
        raise ValueError(f"evaluate: {len(source)} held-out examples < eval batch size {batch_size}")
    for batch in batches(source, batch_size, shuffle=False, drop_remainder=True, epochs=1):
        fields = {k: jnp.asarray(v) for k, v in batch.items() if k in (*BATCH_FIELDS, *OPTIONAL_FIELDS)}
        totals += np.asarray(match(fields))
    visible = max(totals[3], 1.0)
    v = neural_mesh.vertices.shape[0]
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
