"""NeMo's pose metrics: rotation error, Acc@pi/6, Acc@pi/18, median error; results JSON and table.

The rotation error of a prediction is NeMo's ``||logm(R_pred^T R_gt)||_F / sqrt(2)`` (radians) with
``R = rotation_from_viewpoint(azimuth, elevation, theta)`` (:mod:`nemo_jax.geometry`), computed in
float64 on the host. Results are per category and occlusion level (``L0``..``L3``), plus a ``mean``
entry per level that, as in NeMo, pools the images of all categories (i.e. the mean over categories
weighted by image count; the median is taken over the pooled errors).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

ACC_THRESHOLDS = {"acc_pi6": math.pi / 6, "acc_pi18": math.pi / 18}
VIEWPOINT_KEYS = ("azimuth", "elevation", "theta")


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rotation_matrix(azimuth, elevation, theta) -> np.ndarray:
    """float64 ``[..., 3, 3]`` NeMo rotation ``Rz(theta) @ Rx(elevation - pi/2) @ Rz(-azimuth)``
    (RADIANS); the host-side twin of :func:`nemo_jax.geometry.rotation_from_viewpoint`."""
    a, e, t = (np.asarray(x, np.float64) for x in (azimuth, elevation, theta))
    a, e, t = np.broadcast_arrays(a, e, t)
    return _rz(t) @ _rx(e - np.pi / 2) @ _rz(-a)


def rotation_error(pred, true) -> np.ndarray:
    """NeMo's rotation error in RADIANS, ``[...]``, in ``[0, pi]``.

    Args:
      pred, true: ``(azimuth, elevation, theta)`` RADIANS, each a scalar or ``[...]`` array (or a
        mapping with those keys).
    """
    if isinstance(pred, Mapping):
        pred = [pred[k] for k in VIEWPOINT_KEYS]
    if isinstance(true, Mapping):
        true = [true[k] for k in VIEWPOINT_KEYS]
    r_pred = rotation_matrix(*pred)
    r_true = rotation_matrix(*true)
    rel = np.swapaxes(r_pred, -1, -2) @ r_true
    # ||logm(R)||_F / sqrt(2) is the rotation angle: atan2(|vee(R - R^T)| / 2, (tr R - 1) / 2).
    vee = np.stack(
        [rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0], rel[..., 1, 0] - rel[..., 0, 1]],
        -1,
    )
    trace = np.trace(rel, axis1=-2, axis2=-1)
    return np.arctan2(0.5 * np.linalg.norm(vee, axis=-1), 0.5 * (trace - 1.0))


def summarize(errors: Sequence[float]) -> dict:
    """``{"n", "acc_pi6", "acc_pi18", "med_err_deg"}`` of rotation errors (radians); accuracies are
    fractions in [0, 1] (``err < threshold``, as NeMo); NaN statistics for an empty list."""
    err = np.asarray(errors, np.float64).reshape(-1)
    if err.size == 0:
        return {"n": 0, "acc_pi6": float("nan"), "acc_pi18": float("nan"), "med_err_deg": float("nan")}
    out = {"n": int(err.size)}
    for name, threshold in ACC_THRESHOLDS.items():
        out[name] = float(np.mean(err < threshold))
    out["med_err_deg"] = float(np.degrees(np.median(err)))
    return out


#: Equal-width confidence bins of the expected calibration error.
ECE_BINS = 10


def expected_calibration_error(confidence, correct, bins: int = ECE_BINS) -> float:
    """Expected calibration error of confidences for binary outcomes: ``sum_b n_b / N *
    |accuracy_b - mean confidence_b|`` over ``bins`` equal-width bins of ``[0, 1]`` (bin ``k`` holds
    ``k / bins <= c < (k + 1) / bins``; ``c = 1`` falls in the last). NaN for no images.

    Args:
      confidence: ``[N]`` in ``[0, 1]``.
      correct: ``[N]`` bool (e.g. rotation error < pi/6).
    """
    c = np.asarray(confidence, np.float64).reshape(-1)
    y = np.asarray(correct, bool).reshape(-1).astype(np.float64)
    if c.shape != y.shape:
        raise ValueError(f"expected_calibration_error: {c.size} confidences but {y.size} outcomes")
    if c.size == 0:
        return float("nan")
    if not np.all((c >= 0) & (c <= 1)):
        raise ValueError("expected_calibration_error: confidences must lie in [0, 1]")
    index = np.minimum((c * bins).astype(np.int64), bins - 1)
    total = 0.0
    for k in range(bins):
        in_bin = index == k
        if in_bin.any():
            total += in_bin.sum() * abs(y[in_bin].mean() - c[in_bin].mean())
    return float(total / c.size)


def reliability_bins(confidence, correct, bins: int = ECE_BINS) -> list[dict]:
    """Per equal-width bin (as :func:`expected_calibration_error`): ``{"lo", "hi", "n",
    "confidence", "accuracy"}`` (mean confidence and accuracy of its images; None when empty)."""
    c = np.asarray(confidence, np.float64).reshape(-1)
    y = np.asarray(correct, bool).reshape(-1)
    index = np.minimum((c * bins).astype(np.int64), bins - 1)
    out = []
    for k in range(bins):
        in_bin = index == k
        n = int(in_bin.sum())
        out.append(
            {
                "lo": k / bins,
                "hi": (k + 1) / bins,
                "n": n,
                "confidence": float(c[in_bin].mean()) if n else None,
                "accuracy": float(y[in_bin].mean()) if n else None,
            }
        )
    return out


def auroc(score, positive) -> float | None:
    """Area under the ROC curve of ``score`` ``[N]`` for ``positive`` ``[N]`` bool: the probability
    that a random positive scores above a random negative, ties counting one half (the Mann-Whitney
    U statistic over ``n_pos * n_neg``, from average ranks). None when one class is absent."""
    s = np.asarray(score, np.float64).reshape(-1)
    y = np.asarray(positive, bool).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"auroc: {s.size} scores but {y.size} labels")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="stable")
    ranks = np.empty(s.size, np.float64)
    sorted_s = s[order]
    start = 0
    while start < s.size:  # average 1-based ranks over ties
        stop = start
        while stop + 1 < s.size and sorted_s[stop + 1] == sorted_s[start]:
            stop += 1
        ranks[order[start : stop + 1]] = 0.5 * (start + stop) + 1.0
        start = stop + 1
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def selective_accuracy(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy of the most confident images against the fraction kept: ``(kept [N], accuracy [N])``
    with ``kept[k] = (k + 1) / N`` and ``accuracy[k]`` the accuracy of the ``k + 1`` images of
    highest confidence (ties in the input order: a stable sort)."""
    c = np.asarray(confidence, np.float64).reshape(-1)
    y = np.asarray(correct, bool).reshape(-1).astype(np.float64)
    order = np.argsort(-c, kind="stable")
    kept = np.arange(1, c.size + 1, dtype=np.float64)
    return kept / max(c.size, 1), np.cumsum(y[order]) / kept


def ece_if_calibrated(confidence, bins: int = ECE_BINS, draws: int = 200, seed: int = 0) -> float:
    """The ECE that exactly calibrated confidences would show on this many images: the mean
    :func:`expected_calibration_error` over ``draws`` outcome sets drawn as ``Bernoulli(confidence)``
    (fixed ``seed``: deterministic). Sampling noise alone gives this much; an ECE near it is as good
    as the image count can show (about 0.09 for 80 images, 0.04 for 400, at typical confidences)."""
    c = np.asarray(confidence, np.float64).reshape(-1)
    if c.size == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    return float(
        np.mean([expected_calibration_error(c, rng.uniform(size=c.size) < c, bins) for _ in range(draws)])
    )


def confidence_summary(confidence, correct, bins: int = ECE_BINS) -> dict:
    """``{"n", "accuracy", "mean_confidence", "ece", "ece_if_calibrated", "auroc", "bins"}`` of
    confidences for "rotation error < pi/6" outcomes (``auroc`` None when every image is right, or
    every image wrong; :func:`ece_if_calibrated`: the ECE sampling noise alone gives)."""
    y = np.asarray(correct, bool).reshape(-1)
    c = np.asarray(confidence, np.float64).reshape(-1)
    return {
        "n": int(y.size),
        "accuracy": float(y.mean()) if y.size else float("nan"),
        "mean_confidence": float(c.mean()) if c.size else float("nan"),
        "ece": expected_calibration_error(c, y, bins),
        "ece_if_calibrated": ece_if_calibrated(c, bins),
        "auroc": auroc(c, y),
        "bins": bins,
    }


def level_name(level) -> str:
    """``0`` / ``"L0"`` -> ``"L0"``."""
    if isinstance(level, str):
        if not (level.startswith("L") and level[1:].isdigit()):
            raise ValueError(f"occlusion level {level!r}: expected 'L<k>' or an int")
        return level
    return f"L{int(level)}"


def _viewpoint(record: Mapping, key: str) -> dict:
    value = record.get(key)
    if not isinstance(value, Mapping) or any(k not in value for k in VIEWPOINT_KEYS):
        raise ValueError(
            f"prediction record {record.get('id', '?')!r}: field {key!r} must be a mapping with "
            f"{VIEWPOINT_KEYS} (radians), got {value!r}"
        )
    out = {k: float(value[k]) for k in VIEWPOINT_KEYS}
    if not all(math.isfinite(x) for x in out.values()):
        raise ValueError(f"prediction record {record.get('id', '?')!r}: field {key!r} is not finite: {out}")
    return out


def normalize_record(record: Mapping) -> dict:
    """A prediction record with its error: ``{"id", "category", "level", "pred", "true",
    "error_rad", "error_deg", ...}``. ``pred`` / ``true`` are ``{azimuth, elevation, theta}``
    RADIANS; extra keys (e.g. ``distance``, ``loss``) are kept. Raises ValueError naming the field."""
    for key in ("id", "category", "level"):
        if key not in record:
            raise ValueError(f"prediction record {dict(record)!r}: missing field {key!r}")
    pred = _viewpoint(record, "pred")
    true = _viewpoint(record, "true")
    error = float(rotation_error(pred, true))
    if record.get("confidence") is not None:
        conf = record["confidence"]
        if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0.0 <= float(conf) <= 1.0:
            raise ValueError(
                f"prediction record {record['id']!r}: field 'confidence' must be a number in [0, 1], "
                f"got {conf!r}"
            )
    out = dict(record)
    out.update(
        id=str(record["id"]),
        category=str(record["category"]),
        level=level_name(record["level"]),
        pred=pred,
        true=true,
        error_rad=error,
        error_deg=math.degrees(error),
    )
    return out


def evaluate_records(records: Iterable[Mapping]) -> dict:
    """Prediction records -> the results JSON (``results.json`` of ``nemo-jax-evaluate``).

    Returns:
      ``{"results": {category: {level: entry}, "mean": {level: entry}}, "predictions": [...]}``:
      each ``entry`` is ``{"n", "acc_pi6", "acc_pi18", "med_err_deg"}`` of one category and
      occlusion level (``"L0"``, ...); ``predictions`` holds the normalised records. ``mean``
      pools all categories per level (NeMo's image-count-weighted mean over categories). When
      every record has a ``confidence``, a ``"confidence"`` entry holds its ECE and AUROC
      (:func:`confidence_results`). Records with ``pred_category`` (the category a shared
      model's search chose) add ``category_acc`` to each entry: the fraction of images whose
      chosen category is their annotated one. Records with an ``occluder``
      entry (NeMo's occluder map scored against the true occluder mask,
      :func:`nemo_jax.eval.occluder.batch_counts`) add ``occluder_auroc``, ``occluder_iou``,
      ``occluder_auroc_true_pose`` and ``occluder_iou_true_pose`` to each entry (``None`` where
      undefined), an ``"occluder"`` entry with the histograms pooled per level
      (:func:`occluder_results`), and keep only their IoU counts in ``predictions``
      (:func:`nemo_jax.eval.occluder.compact`): the stored predictions give the IoU again, not
      the AUROC.
    """
    preds = [normalize_record(r) for r in records]
    if not preds:
        raise ValueError("evaluate_records: no prediction records (empty dataset split?)")
    levels = sorted({p["level"] for p in preds}, key=lambda s: int(s[1:]))
    categories = sorted({p["category"] for p in preds})
    if "mean" in categories:
        raise ValueError("evaluate_records: 'mean' is reserved and cannot be a category name")
    with_category = any("pred_category" in p for p in preds)
    occluder = None
    if any(p.get("occluder") for p in preds):
        from nemo_jax.eval import occluder  # noqa: PLC0415 (jax; only for records that need it)

    def entry(chosen: list[dict]) -> dict:
        out = summarize([p["error_rad"] for p in chosen])
        if with_category:
            out["category_acc"] = float(np.mean([p.get("pred_category") == p["category"] for p in chosen]))
        scored = [p["occluder"] for p in chosen if p.get("occluder")]
        if scored:
            out.update(occluder.level_entry(scored))
        return out

    results = {}
    for cat in categories:
        results[cat] = {}
        for level in levels:
            chosen = [p for p in preds if p["category"] == cat and p["level"] == level]
            if chosen:
                results[cat][level] = entry(chosen)
    results["mean"] = {level: entry([p for p in preds if p["level"] == level]) for level in levels}
    out = {"results": results}
    if all(p.get("confidence") is not None for p in preds):
        out["confidence"] = confidence_results(preds)
    if occluder is not None:
        out["occluder"] = occluder_results(preds, levels)
        for p in preds:  # the stored predictions keep their IoU counts, not their histograms
            if p.get("occluder"):
                p["occluder"] = occluder.compact(p["occluder"])
    out["predictions"] = preds
    return out


def occluder_results(preds: Sequence[Mapping], levels: Sequence[str]) -> dict:
    """The results JSON's ``"occluder"`` entry: the score histograms' bins and, per level (all
    categories pooled), each pose's summed histograms and IoU counts with the pooled AUROC and IoU
    (:func:`nemo_jax.eval.occluder.pooled_histograms`); levels without occluder records are left out."""
    from nemo_jax.eval import occluder  # noqa: PLC0415

    out = {
        "score": "clutter similarity - rendered object similarity, per feature cell",
        "bins": {"lo": float(occluder.EDGES[0]), "hi": float(occluder.EDGES[-1]), "count": occluder.BINS},
        "levels": {},
    }
    for level in levels:
        scored = [p["occluder"] for p in preds if p["level"] == level and p.get("occluder")]
        if scored and all("occluded" in o["predicted_pose"] for o in scored):
            out["levels"][level] = occluder.pooled_histograms(scored)
    return out


def confidence_results(preds: Sequence[Mapping]) -> dict:
    """ECE and AUROC of the predictions' ``confidence`` for "rotation error < pi/6": ``{"target",
    "bins", "all": summary, "levels": {level: summary}, "categories": {category: summary}}``
    (:func:`confidence_summary`; normalised records, :func:`normalize_record`)."""
    threshold = ACC_THRESHOLDS["acc_pi6"]

    def summary(subset):
        conf = [float(p["confidence"]) for p in subset]
        return confidence_summary(conf, [p["error_rad"] < threshold for p in subset])

    levels = sorted({p["level"] for p in preds}, key=lambda s: int(s[1:]))
    return {
        "target": "rotation error < pi/6",
        "bins": f"{ECE_BINS} equal-width bins of [0, 1]",
        "all": summary(preds),
        "levels": {lv: summary([p for p in preds if p["level"] == lv]) for lv in levels},
        "categories": {
            c: summary([p for p in preds if p["category"] == c])
            for c in sorted({p["category"] for p in preds})
        },
    }


def format_table(results: Mapping, title: str = "") -> str:
    """A plain-text table of ``results`` (the ``"results"`` entry, or the whole JSON): one row per
    category and level with n, Acc@pi/6 and Acc@pi/18 in percent and the median error in degrees;
    with occluder measures, ``OccAUROC``: the occluder map's AUROC at the predicted pose (``-``
    where undefined: no occluded or no visible object cell, or no occluder mask)."""
    results = results.get("results", results)
    lines = [title] if title else []
    with_category = any("category_acc" in r for c in results.values() for r in c.values())
    with_occluder = any("occluder_auroc" in r for c in results.values() for r in c.values())
    header = f"{'category':<14}{'level':<7}{'n':>6}{'Acc@pi/6':>10}{'Acc@pi/18':>11}{'MedErr':>9}"
    header += f"{'CatAcc':>9}" if with_category else ""
    header += f"{'OccAUROC':>10}" if with_occluder else ""
    lines += [header, "-" * len(header)]
    names = [c for c in results if c != "mean"] + (["mean"] if "mean" in results else [])
    for cat in names:
        for level, r in results[cat].items():
            line = (
                f"{cat:<14}{level:<7}{r['n']:>6}{100 * r['acc_pi6']:>10.1f}"
                f"{100 * r['acc_pi18']:>11.1f}{r['med_err_deg']:>9.2f}"
            )
            if with_category:
                line += f"{100 * r.get('category_acc', float('nan')):>9.1f}"
            if with_occluder:
                auroc = r.get("occluder_auroc")
                line += f"{'-':>10}" if auroc is None else f"{auroc:>10.3f}"
            lines.append(line)
    return "\n".join(lines)


def _trust_flags(result, n: int) -> list[list[str]]:
    """:func:`nemo_jax.inference.trust_flags` of ``result``, or no flags for results without the
    fields it reads (e.g. a duck-typed result)."""
    if not all(hasattr(result, k) for k in ("null_loss", "feature_spread")):
        return [[] for _ in range(n)]
    from nemo_jax.inference.search import trust_flags  # noqa: PLC0415 (eval sits beside inference)

    return trust_flags(result)


def records_from_search(
    result, ids, categories, levels, true_azimuth, true_elevation, true_theta, confidence=None
) -> list[dict]:
    """Prediction records from a batched :class:`nemo_jax.inference.PoseResult` (leading ``[B]``)
    and the ground truth (``[B]`` arrays, RADIANS); ``ids``, ``categories`` (names), ``levels``
    are length-``B`` sequences. Adds ``distance`` and ``loss`` of the prediction, and ``flags``: the
    reasons not to trust it (:func:`nemo_jax.inference.trust_flags`; empty when none).
    ``confidence``: optional ``{"features": {name: [B]}, "confidence": [B] or None}`` (see
    :mod:`nemo_jax.inference.confidence`), stored as each record's ``confidence_features`` and
    ``confidence``."""
    arrays = {
        k: np.asarray(getattr(result, k), np.float64).reshape(-1)
        for k in (*VIEWPOINT_KEYS, "distance", "loss")
    }
    truth = [np.asarray(x, np.float64).reshape(-1) for x in (true_azimuth, true_elevation, true_theta)]
    n = len(arrays["azimuth"])
    flags = _trust_flags(result, n)
    for name, seq in (("ids", ids), ("categories", categories), ("levels", levels), ("true", truth[0])):
        if len(seq) != n:
            raise ValueError(f"records_from_search: {name} has length {len(seq)}, the result has {n} images")
    records = [
        {
            "id": str(ids[i]),
            "category": str(categories[i]),
            "level": level_name(levels[i]),
            "pred": {k: float(arrays[k][i]) for k in VIEWPOINT_KEYS},
            "true": {k: float(truth[j][i]) for j, k in enumerate(VIEWPOINT_KEYS)},
            "distance": float(arrays["distance"][i]),
            "loss": float(arrays["loss"][i]),
            "flags": flags[i],
        }
        for i in range(n)
    ]
    if confidence is not None:
        feats = {k: np.asarray(v, np.float64).reshape(-1) for k, v in confidence["features"].items()}
        conf = confidence.get("confidence")
        conf = None if conf is None else np.asarray(conf, np.float64).reshape(-1)
        for i, record in enumerate(records):
            record["confidence_features"] = {k: float(v[i]) for k, v in feats.items()}
            if conf is not None:
                record["confidence"] = float(conf[i])
    return records
