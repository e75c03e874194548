"""A trained baseline on disk, read back as one predictor whatever its variant.

* Res50-General: ``workdir`` is one classifier run (``config.json`` + ``checkpoints/``).
* Res50-Specific: ``workdir`` holds one classifier run per category, ``workdir/<category>/``, each
  trained on its category alone (``config.variant = 'specific'``, ``config.data.categories`` that
  one category); a single such run directory also reads as a predictor for its category.

:func:`load_predictor` gives ``predictor(images, category) -> (azimuth, elevation, theta)``
(RADIANS, ``[B]``): the general classifier for any category, or the category's own classifier.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable

import numpy as np

from nemo_jax.baseline.train import chosen_categories, load_baseline, make_predict, variant_of


def _stored_config(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "config.json")) as fh:
        return json.load(fh)


def specific_runs(workdir: str) -> dict[str, str]:
    """``{category: run directory}`` of a Res50-Specific workdir (its sub-folders holding a
    'specific' run of one category); empty when there are none."""
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"{workdir}: no such folder")
    runs = {}
    for name in sorted(os.listdir(workdir)):
        run_dir = os.path.join(workdir, name)
        if not os.path.isfile(os.path.join(run_dir, "config.json")):
            continue
        stored = _stored_config(run_dir)
        cats = list((stored.get("data") or {}).get("categories") or ())
        if stored.get("variant") != "specific" or len(cats) != 1:
            raise ValueError(f"{run_dir}/config.json: not a Res50-Specific run of one category")
        if cats[0] in runs:
            raise ValueError(f"{workdir}: two runs for category {cats[0]!r} ({runs[cats[0]]}, {run_dir})")
        runs[cats[0]] = run_dir
    return runs


@dataclasses.dataclass(frozen=True)
class Predictor:
    """``predictor(images uint8 [B, h, w, 3], category) -> (azimuth, elevation, theta)`` ``[B]``
    RADIANS. ``variant``: 'general' or 'specific'; ``categories``: the categories it has a
    classifier for (empty: any, the general classifier)."""

    variant: str
    categories: tuple[str, ...]
    workdir: str
    _runs: dict[str, tuple[Callable, dict]] = dataclasses.field(repr=False)

    def __call__(self, images, category: str):
        if self.variant == "general":
            if self.categories and category not in self.categories:
                raise ValueError(f"{self.workdir}: trained on {list(self.categories)}, not on {category!r}")
            predict, variables = self._runs[""]
        else:
            if category not in self._runs:
                known = list(self.categories)
                raise ValueError(
                    f"{self.workdir}: no Res50-Specific classifier for {category!r} (has {known})"
                )
            predict, variables = self._runs[category]
        return tuple(np.asarray(x) for x in predict(variables, images))


def load_predictor(workdir: str, image_shape) -> Predictor:
    """The baseline saved in ``workdir`` (either variant, see the module docstring) as a
    :class:`Predictor`; ``image_shape``: ``(h, w, 3)`` of the images it will be given (resized to
    each run's ``data.input_size`` when that is set). FileNotFoundError / ValueError naming the
    folder when it holds no baseline."""
    if os.path.isfile(os.path.join(workdir, "config.json")):
        config, module, variables = load_baseline(workdir, image_shape)
        variant = variant_of(config)
        cats = chosen_categories(config)
        key = "" if variant == "general" else cats[0]
        return Predictor(variant, cats, workdir, {key: (make_predict(config, module), variables)})
    runs = specific_runs(workdir)
    if not runs:
        raise FileNotFoundError(
            f"{workdir}: not a baseline run (no config.json, and no per-category Res50-Specific runs)"
        )
    loaded = {}
    for cat, run_dir in runs.items():
        config, module, variables = load_baseline(run_dir, image_shape)
        loaded[cat] = (make_predict(config, module), variables)
    return Predictor("specific", tuple(runs), workdir, loaded)
