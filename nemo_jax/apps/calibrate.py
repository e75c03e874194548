"""Fitting a run's confidence calibration on evaluated validation images, and the confidence figures.

``nemo-jax-evaluate --calibrate`` evaluates a run on a validation set, fits the logistic map of
:mod:`nemo_jax.inference.confidence` from the predictions' features to "rotation error < pi/6",
stores it as ``calibration.json`` in the run's folder (with the images it was fitted on) and from
then on every evaluation and ``nemo-jax-estimate-pose`` of that run reports a ``confidence``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from nemo_jax import eval as eval_lib
from nemo_jax.inference import confidence as confidence_lib

#: What to run when a run has no calibration (``{run}`` is the run's folder).
HOW_TO_CALIBRATE = (
    "{run}: no {file}, so predictions carry no 'confidence'. Fit one on a validation set (images "
    "not used for testing), e.g. nemo-jax-build-data --dataset synthetic --data_dir VAL --option seed=1 "
    "--option test_per_category=100, then nemo-jax-evaluate --workdir {run} --data_dir VAL --calibrate"
)


def how_to_calibrate(run_dir: str) -> str:
    """The message for a run without ``calibration.json``: how to create one."""
    return HOW_TO_CALIBRATE.format(run=run_dir, file=confidence_lib.FILENAME)


def correct(records: Sequence[Mapping]) -> np.ndarray:
    """``[N]`` bool: rotation error < pi/6 of prediction records (with ``pred`` and ``true``)."""
    threshold = eval_lib.ACC_THRESHOLDS["acc_pi6"]
    return np.array([eval_lib.normalize_record(r)["error_rad"] < threshold for r in records], bool)


def add_confidence(records: Sequence[Mapping], calibration: confidence_lib.Calibration) -> list[dict]:
    """Copies of ``records`` with ``confidence`` from their ``confidence_features``."""
    feats = jnp.asarray(confidence_lib.feature_table(records), jnp.float32)
    conf = np.asarray(confidence_lib.apply_calibration(calibration, feats), np.float64)
    return [dict(r, confidence=float(c)) for r, c in zip(records, conf, strict=True)]


def calibrate_run(run_dir: str, records: Sequence[Mapping], fitted_on: Mapping) -> list[dict]:
    """Fits the confidence calibration of the run in ``run_dir`` on its prediction ``records`` (with
    ``confidence_features``), writes ``run_dir/calibration.json`` (with ``fitted_on``, the records'
    ids and the fit's accuracy, ECE and AUROC on these same images) and returns the records with
    ``confidence``. ``ValueError`` for fewer than 2 records."""
    if len(records) < 2:
        raise ValueError(f"{run_dir}: calibrating needs at least 2 validation images, got {len(records)}")
    labels = correct(records)
    calibration = confidence_lib.fit_calibration(confidence_lib.feature_table(records), labels)
    out = add_confidence(records, calibration)
    summary = eval_lib.confidence_summary([r["confidence"] for r in out], labels)
    fitted = dict(fitted_on)
    fitted.update(fit=summary, ids=[str(r["id"]) for r in records])
    confidence_lib.save_calibration(run_dir, calibration, fitted)
    return out


def fitted_on(dataset: str, data_dir: str, levels: Sequence[int], sources: Sequence) -> dict:
    """The ``fitted_on`` facts of a calibration: dataset, data folder, splits and builder options
    (``sources``: the :class:`nemo_jax.data.Source` of each level)."""
    options = []
    for s in sources:  # usually one build for every level: stored once
        o = (s.metadata or {}).get("options")
        if o not in options:
            options.append(o)
    return {
        "dataset": dataset,
        "data_dir": os.path.abspath(data_dir),
        "levels": [int(lv) for lv in levels],
        "splits": [s.split for s in sources],
        "options": options[0] if len(options) == 1 else options,
    }


def check_not_training_data(run_dir: str, data_dir: str) -> None:
    """``ValueError`` if ``data_dir`` is the run's own training data (``config.data.data_dir``):
    its ``test_l*`` splits are the run's test images, which a calibration must not be fitted on."""
    with open(os.path.join(run_dir, "config.json")) as fh:
        trained_on = (json.load(fh).get("data") or {}).get("data_dir") or ""
    if trained_on and os.path.abspath(trained_on) == os.path.abspath(data_dir):
        raise ValueError(
            f"--calibrate: {data_dir} is the data {run_dir} was trained on (config.json data.data_dir); its "
            "test splits are the test images. Calibrate on a validation set, e.g. one built with "
            "--option seed=1"
        )


def confidence_figures(out_dir: str, results: Mapping) -> list[str]:
    """The reliability diagram and the selective-accuracy curve of the results JSON's predictions
    (all levels pooled) as ``out_dir/reliability.png`` and ``out_dir/selective_accuracy.png``;
    nothing (``[]``) when the predictions carry no confidence."""
    from nemo_jax import viz  # noqa: PLC0415 (matplotlib only when drawing)

    preds = results["predictions"]
    if not preds or any(p.get("confidence") is None for p in preds):
        return []
    conf = np.array([p["confidence"] for p in preds], np.float64)
    labels = correct(preds)
    return [
        viz.reliability_diagram(os.path.join(out_dir, "reliability.png"), conf, labels),
        viz.selective_accuracy_curve(os.path.join(out_dir, "selective_accuracy.png"), conf, labels),
    ]
