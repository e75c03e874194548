"""Per-image confidence of a pose search: features of the search's outcome and a calibration map.

The confidence of a prediction is an estimate of ``P(rotation error < pi/6)``. It is computed from
what :func:`nemo_jax.inference.search_single` returns (a :class:`~nemo_jax.inference.PoseResult`)
and the search's pose grid:

* ``loss``: NeMo's loss at the returned pose (lower: the rendered features fit better).
* ``flip_gap``: the lowest loss among the grid poses at least 90 degrees (rotation geodesic) away
  from the returned pose, minus ``loss``. Front/back flips are NeMo's main failure: a small gap says
  a very different pose explains the image almost as well.
* ``occluder_fraction``: the fraction of the rendered object's pixels where the clutter model wins
  (the occluder map over the object mask).
* ``evidence``: ``null_loss - loss``, the loss gained over leaving every pixel to the clutter model.
* ``object_fraction``: the fraction of the feature map covered by the rendered object.

A :class:`Calibration` (logistic regression on standardised features, fitted on a validation set
with :func:`fit_calibration`, host side, NumPy) maps the features to ``[0, 1]`` with
:func:`apply_calibration`. :func:`features` and :func:`apply_calibration` (and :func:`confidence`,
both at once) are pure ``jax.numpy``: jittable and vmappable, for an exported estimator as well.
:func:`save_calibration` / :func:`load_calibration` store the map as ``calibration.json`` in a run's
folder, with the feature names and what it was fitted on.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax.geometry import geodesic_distance, rotation_from_viewpoint

#: Feature order of :func:`features` (the columns of its ``[F]`` / ``[B, F]`` output).
FEATURE_NAMES = ("loss", "flip_gap", "occluder_fraction", "evidence", "object_fraction")
#: Grid poses at least this far (rotation geodesic, RADIANS) from the prediction count as "flipped".
FLIP_ANGLE = math.pi / 2
#: What the confidence estimates: ``P(rotation error < CORRECT_BELOW)``, RADIANS.
CORRECT_BELOW = math.pi / 6
#: The calibration's floor: ``P(rotation error < CORRECT_BELOW)`` for a rotation drawn uniformly at
#: random, ``(a - sin a) / pi`` for ``a = CORRECT_BELOW`` (the rotation angle's density is
#: ``(1 - cos t) / pi`` on ``[0, pi]``). A crop that carries no evidence (flagged, e.g. a uniform
#: image) is worth no more than a guess: its confidence is clipped to this (:func:`clip_flagged`).
CONFIDENCE_FLOOR = (CORRECT_BELOW - math.sin(CORRECT_BELOW)) / math.pi
#: The file in a run's folder holding its calibration.
FILENAME = "calibration.json"
FORMAT = "nemo_jax.confidence/logistic-v1"


@flax.struct.dataclass
class Calibration:
    """Logistic calibration on standardised features (all float32).

    ``confidence = sigmoid(sum_f weights[f] * (features[f] - mean[f]) / scale[f] + bias)``.

    Attributes:
      mean, scale: ``[F]`` the standardisation (``scale > 0``), in :data:`FEATURE_NAMES` order.
      weights: ``[F]``.
      bias: ``[]``.
    """

    mean: jax.Array
    scale: jax.Array
    weights: jax.Array
    bias: jax.Array


def features(result, grid: jax.Array) -> jax.Array:
    """The confidence features of ONE image's search result (pure, jittable; vmap for a batch).

    Args:
      result: a :class:`~nemo_jax.inference.PoseResult` of one image (no batch axis): ``azimuth``,
        ``elevation``, ``theta`` RADIANS, ``loss``, ``null_loss``, ``grid_loss [G]``, ``occluder``
        and ``object_mask`` ``[h, w]`` bool.
      grid: ``[G, 3]`` the search's grid poses (azimuth, elevation, theta) RADIANS, in the order of
        ``grid_loss`` (:func:`nemo_jax.inference.pose_grid` of the search's config).

    Returns:
      ``[F]`` float32 in :data:`FEATURE_NAMES` order. Non-finite when the search's loss is (a pose
      that never had a finite loss); :func:`apply_calibration` gives such an image confidence 0.
    """
    loss = jnp.asarray(result.loss, jnp.float32)
    grid_loss = jnp.asarray(result.grid_loss, jnp.float32)
    rot = rotation_from_viewpoint(result.azimuth, result.elevation, result.theta)
    grid_rot = rotation_from_viewpoint(grid[:, 0], grid[:, 1], grid[:, 2])
    far = (geodesic_distance(grid_rot, rot) >= FLIP_ANGLE) & jnp.isfinite(grid_loss)
    # No far grid pose with a finite loss (a tiny grid): nothing competes, the gap is the null gap.
    far_best = jnp.where(jnp.any(far), jnp.min(jnp.where(far, grid_loss, jnp.inf)), result.null_loss)
    mask = jnp.asarray(result.object_mask, jnp.float32)
    covered = jnp.sum(mask)
    occluded = jnp.sum(jnp.asarray(result.occluder, jnp.float32) * mask)
    return jnp.stack(
        [
            loss,
            far_best - loss,
            occluded / jnp.maximum(covered, 1.0),
            result.null_loss - loss,
            covered / mask.size,
        ]
    ).astype(jnp.float32)


def batch_features(result, grid: jax.Array) -> jax.Array:
    """:func:`features` of a batched result (leading ``[B]`` on every field) -> ``[B, F]``."""
    return jax.vmap(features, in_axes=(0, None))(result, grid)


def apply_calibration(calibration: Calibration, feats: jax.Array) -> jax.Array:
    """Confidence in ``[0, 1]`` from features ``[..., F]`` -> ``[...]`` (pure, jittable). An image
    with a non-finite feature gets 0."""
    z = (feats - calibration.mean) / calibration.scale
    logit = jnp.sum(z * calibration.weights, axis=-1) + calibration.bias
    finite = jnp.all(jnp.isfinite(feats), axis=-1)
    return jnp.where(finite, jax.nn.sigmoid(jnp.where(finite, logit, 0.0)), 0.0)


def confidence(result, grid: jax.Array, calibration: Calibration) -> jax.Array:
    """``[]`` confidence of ONE image's search result (:func:`features`, then
    :func:`apply_calibration`); pure and jittable."""
    return apply_calibration(calibration, features(result, grid))


#: The reasons not to trust a pose that :func:`flag_bits` computes in-graph, in its column order:
#: the search's (:func:`nemo_jax.inference.trust_flags`) and the crop's uniform pixels
#: (:data:`nemo_jax.data.images.UNIFORM_IMAGE`).
FLAG_NAMES = ("uniform features", "no object evidence", "uniform image")


def flag_bits(result, crops: jax.Array) -> jax.Array:
    """bool ``[B, len(FLAG_NAMES)]``: per crop, which of :data:`FLAG_NAMES` hold (pure, jittable;
    the same tests as the host-side :func:`nemo_jax.inference.trust_flags` and
    :func:`nemo_jax.data.images.is_uniform`, the pixel spread vmapped over the crops).

    Args:
      result: a batched :class:`~nemo_jax.inference.PoseResult` (leading ``[B]``).
      crops: ``[B, H, W, 3]`` the searched crops, 0..255.
    """
    from nemo_jax.data.images import is_uniform  # noqa: PLC0415
    from nemo_jax.inference.search import UNIFORM_FEATURES  # noqa: PLC0415

    spread = jnp.asarray(result.feature_spread, jnp.float32).reshape(-1)
    loss = jnp.asarray(result.loss, jnp.float32).reshape(-1)
    null = jnp.asarray(result.null_loss, jnp.float32).reshape(-1)
    uniform_features = ~(spread >= UNIFORM_FEATURES)
    no_evidence = ~(loss < null - 1e-6)
    uniform_image = jax.vmap(is_uniform)(crops)
    return jnp.stack([uniform_features, no_evidence, uniform_image], axis=-1)


def clip_flagged(conf: jax.Array, flagged: jax.Array) -> jax.Array:
    """``conf`` ``[...]`` with the entries where ``flagged`` (bool, broadcastable) is true clipped
    to at most :data:`CONFIDENCE_FLOOR` (pure, jittable): a pose from a crop that carries no
    evidence never reads as confident, whatever the search's outputs."""
    conf = jnp.asarray(conf)
    return jnp.where(flagged, jnp.minimum(conf, jnp.asarray(CONFIDENCE_FLOOR, conf.dtype)), conf)


# ---------------------------------------------------------------------------------------------
# Host side: fitting, metrics of the fit, storage.


def fit_calibration(
    feats: np.ndarray, correct: np.ndarray, l2: float = 1e-2, iterations: int = 50
) -> Calibration:
    """Logistic regression of ``correct`` on standardised ``feats`` (NumPy, float64, Newton's method
    with an L2 penalty ``l2 * |weights|^2 / 2`` per image on the weights, not the bias; deterministic).

    Args:
      feats: ``[N, F]`` finite features (rows with a non-finite value are dropped).
      correct: ``[N]`` bool, ``rotation error < pi/6``.
      l2: the penalty; keeps the fit finite when a feature separates the classes perfectly.
      iterations: Newton steps (it converges in far fewer).

    Raises:
      ValueError: fewer than 2 finite rows or a shape mismatch. With one class only (e.g. every
      image correct) the weights are 0 and the bias the smoothed log-odds of the base rate.
    """
    x = np.asarray(feats, np.float64)
    y = np.asarray(correct, bool).reshape(-1)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"fit_calibration: features {x.shape} and labels {y.shape} do not match ([N, F], [N])"
        )
    keep = np.all(np.isfinite(x), axis=1)
    x, y = x[keep], y[keep].astype(np.float64)
    n, f = x.shape
    if n < 2:
        raise ValueError(f"fit_calibration: {n} images with finite features; need at least 2")
    mean = x.mean(0)
    scale = x.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = np.concatenate([(x - mean) / scale, np.ones((n, 1))], 1)
    beta = np.zeros(f + 1)
    beta[-1] = math.log((y.sum() + 0.5) / (n - y.sum() + 0.5))
    if 0 < y.sum() < n:
        penalty = np.diag(np.r_[np.full(f, l2 * n), 0.0])
        for _ in range(iterations):
            p = 1.0 / (1.0 + np.exp(-(z @ beta)))
            grad = z.T @ (p - y) + penalty @ beta
            hess = (z * (p * (1 - p))[:, None]).T @ z + penalty + 1e-9 * np.eye(f + 1)
            step = np.linalg.solve(hess, grad)
            beta = beta - step
            if np.max(np.abs(step)) < 1e-10:
                break
    return Calibration(
        mean=jnp.asarray(mean, jnp.float32),
        scale=jnp.asarray(scale, jnp.float32),
        weights=jnp.asarray(beta[:f], jnp.float32),
        bias=jnp.asarray(beta[f], jnp.float32),
    )


def save_calibration(path: str, calibration: Calibration, fitted_on: Mapping) -> None:
    """Writes ``calibration`` as JSON to ``path`` (a file, or a run's folder: ``FILENAME`` in it):
    the format, :data:`FEATURE_NAMES`, the target, the parameters and ``fitted_on`` (what it was
    fitted on: dataset, splits, image ids, metrics; any JSON-serialisable mapping)."""
    if os.path.isdir(path):
        path = os.path.join(path, FILENAME)
    doc = {
        "format": FORMAT,
        "target": f"P(rotation error < {CORRECT_BELOW!r} rad)",
        "features": list(FEATURE_NAMES),
        **{k: np.asarray(getattr(calibration, k), np.float64).tolist() for k in ("mean", "scale", "weights")},
        "bias": float(calibration.bias),
        "fitted_on": dict(fitted_on),
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1)
    os.replace(tmp, path)


def load_calibration(path: str) -> Calibration | None:
    """The :class:`Calibration` in ``path`` (a file, or a run's folder holding ``FILENAME``); None
    if there is none. ``ValueError`` naming the file and the field if it is malformed or made for
    other features."""
    if os.path.isdir(path):
        path = os.path.join(path, FILENAME)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: field 'format' is {doc.get('format')!r}, expected {FORMAT!r}")
    if doc.get("features") != list(FEATURE_NAMES):
        raise ValueError(
            f"{path}: field 'features' is {doc.get('features')!r}, this version computes "
            f"{list(FEATURE_NAMES)}; recalibrate the run"
        )
    arrays = {}
    for key, shape in (("mean", (len(FEATURE_NAMES),)), ("scale", (len(FEATURE_NAMES),)),
                       ("weights", (len(FEATURE_NAMES),)), ("bias", ())):  # fmt: skip
        try:
            value = np.asarray(doc[key], np.float64)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: field {key!r} is missing or not numeric") from None
        if value.shape != shape or not np.all(np.isfinite(value)):
            raise ValueError(f"{path}: field {key!r} must be {len(shape) and shape or 'a'} finite number(s)")
        arrays[key] = jnp.asarray(value, jnp.float32)
    if not np.all(np.asarray(arrays["scale"]) > 0):
        raise ValueError(f"{path}: field 'scale' must be > 0")
    return Calibration(**arrays)


def feature_table(records: Sequence[Mapping]) -> np.ndarray:
    """``[N, F]`` features of prediction records (their ``confidence_features`` mapping, keyed by
    :data:`FEATURE_NAMES`); ``ValueError`` naming the record that lacks one."""
    rows = []
    for r in records:
        f = r.get("confidence_features")
        if not isinstance(f, Mapping) or any(k not in f for k in FEATURE_NAMES):
            raise ValueError(
                f"prediction record {r.get('id', '?')!r}: no 'confidence_features' with {FEATURE_NAMES}"
            )
        rows.append([float(f[k]) for k in FEATURE_NAMES])
    return np.asarray(rows, np.float64).reshape(-1, len(FEATURE_NAMES))


@jax.jit
def _batch_outputs(result, grid, calibration):
    feats = batch_features(result, grid)
    conf = None if calibration is None else apply_calibration(calibration, feats)
    return feats, conf


def batch_outputs(result, grid, calibration: Calibration | None = None) -> dict:
    """Host-side wrapper for evaluation records: ``{"features": {name: [B]}, "confidence": [B] or
    None}`` (NumPy) of a batched result (jitted :func:`batch_features` and, with a calibration,
    :func:`apply_calibration`)."""
    feats, conf = jax.device_get(_batch_outputs(result, jnp.asarray(grid, jnp.float32), calibration))
    return {
        "features": {name: np.asarray(feats[:, i]) for i, name in enumerate(FEATURE_NAMES)},
        "confidence": None if conf is None else np.asarray(conf),
    }
