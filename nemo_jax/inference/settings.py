"""The ``inference`` section of a NeMo config: the pose search's settings, stored with the run.

Every ml_collections NeMo config (``nemo_jax/defaults.py:base``) holds ``config.inference =
default_settings()``; training writes it into the run's ``config.json``. Evaluation and pose
estimation read it back (:func:`run_settings`, defaults filling keys that older runs lack), apply
``--config.inference.X=...`` overrides, and turn it into the search's static
:class:`nemo_jax.inference.SearchConfig` with :func:`search_config_from_settings`.

Keys (NeMo's values as defaults, but for the parametrization, chosen on validation data):
  azimuths_deg, elevations_deg, thetas_deg: the initial pose grid, DEGREES (12 x 4 x 3 = 144).
  num_starts: grid poses refined (NeMo: 1, the best).
  start_separation_deg: DEGREES; 0 (NeMo): the ``num_starts`` lowest-loss grid poses; else chosen
    greedily by loss, skipping poses closer than this rotation angle to a chosen start
    (:func:`nemo_jax.inference.search.select_starts`).
  steps, lr, b1, b2, decay_every, decay_rate: Adam refinement (300, 0.05, 0.4, 0.6, x0.2 every 100).
    ``lr`` is in the parameters' units: radians for ``"angles"``, CAD units of the camera centre
    for ``"camera_position"``, where one step turns the view by about ``lr / distance`` radians
    (NeMo's 0.05 at its render distances of 3.75-8).
  parametrization: ``"angles"`` (default: azimuth, elevation, theta at the given distance) or
    ``"camera_position"`` (NeMo: camera centre C in R^3 + theta, the distance moves); see
    :mod:`nemo_jax.inference.parametrization`.
  optimize_distance: ``"angles"`` only: also refine the distance.
  early_stop_tol, early_stop_patience: optional early stop (0 = off, NeMo).
  subtype: ``"ground_truth"`` (NeMo: the mesh of the annotated CAD sub-type) or ``"search"`` (every
    sub-type's mesh is searched, the lowest loss wins). Read by the callers that hold several meshes.
  variant: rasterizer, ``"hard"`` (NeMo), ``"soft"`` or any registered variant
    (:func:`nemo_jax.render.variant_names`).
  tile_budget: rasterizer tiles per render; 0 sizes it from the mesh and camera.
  clutter_clusters: the clutter model: 1 (NeMo) the normalised mean of the trained clutter queue;
    N > 1 the queue's N spherical k-means centres, a pixel's clutter similarity its best over them
    (:func:`nemo_jax.mesh.clutter_model`). Read by the callers that build the search inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import ml_collections

from nemo_jax.inference.category import search_config_for
from nemo_jax.inference.parametrization import PARAMETRIZATIONS
from nemo_jax.inference.search import NEMO_AZIMUTHS_DEG, NEMO_ELEVATIONS_DEG, NEMO_THETAS_DEG, SearchConfig
from nemo_jax.render import variant_names

SUBTYPE_MODES = ("ground_truth", "search")
# Keys of the section that are not SearchConfig fields.
_OTHER_KEYS = ("subtype", "variant", "tile_budget", "clutter_clusters")
_GRID_KEYS = ("azimuths_deg", "elevations_deg", "thetas_deg")


def default_settings(**overrides) -> ml_collections.ConfigDict:
    """The ``inference`` section with NeMo's search (``overrides``: keys to change)."""
    c = ml_collections.ConfigDict()
    c.azimuths_deg = NEMO_AZIMUTHS_DEG
    c.elevations_deg = NEMO_ELEVATIONS_DEG
    c.thetas_deg = NEMO_THETAS_DEG
    c.num_starts = 1
    c.start_separation_deg = 0.0
    c.steps = 300
    c.lr = 0.05
    c.b1 = 0.4
    c.b2 = 0.6
    c.decay_every = 100
    c.decay_rate = 0.2
    # NeMo refines the camera position ("camera_position"); on validation data (README, "Pose
    # refinement") the angles with the annotated distance were as accurate at the same time per image,
    # so they are the default. "camera_position" is for crops whose distance is not known exactly.
    c.parametrization = "angles"
    c.optimize_distance = False
    c.early_stop_tol = 0.0
    c.early_stop_patience = 10
    c.subtype = "ground_truth"
    c.variant = "hard"
    c.tile_budget = 0
    c.clutter_clusters = 1
    unknown = sorted(set(overrides) - set(c.keys()))
    if unknown:
        raise ValueError(f"config.inference: unknown key(s) {unknown}; expected {sorted(c.keys())}")
    c.update(overrides)
    return c


def run_settings(
    run_config, overrides: Mapping | None = None, where: str = "config"
) -> ml_collections.ConfigDict:
    """A run's ``inference`` section with ``overrides`` applied, checked.

    Args:
      run_config: the run's config (``ConfigDict`` or dict, e.g. from ``config.json``); keys it lacks
        (runs written before the section existed, or before a key was added) take the defaults.
      overrides: flat ``{"steps": 100}`` or ``{"inference.steps": 100}`` (as
        ``config_flags.get_override_values`` returns ``--config.inference.steps=100``).
      where: names the source in error messages (e.g. the run's ``config.json`` path).
    Raises:
      ValueError naming ``where`` and the key: unknown keys, values out of range.
    """
    settings = default_settings()
    stored = run_config.get("inference", None) if run_config is not None else None
    for name, source, values in (
        (where, f"{where}: inference", stored),
        ("overrides", "overrides", overrides),
    ):
        values = dict(values or {})
        flat = {k.removeprefix("inference."): v for k, v in values.items()}
        unknown = sorted(set(flat) - set(settings.keys()))
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {unknown}; expected {sorted(settings.keys())}")
        for key, value in flat.items():
            if key in _GRID_KEYS:
                value = tuple(float(v) for v in value)
            try:
                settings[key] = value
            except TypeError as err:
                raise ValueError(f"{source}.{key}: {err}") from err
        check_settings(settings, name)
    return settings


def check_settings(settings, where: str = "config") -> None:
    """Raises ValueError naming the key for a value the search cannot use."""
    if settings.parametrization not in PARAMETRIZATIONS:
        raise ValueError(
            f"{where}: inference.parametrization: expected one of {PARAMETRIZATIONS}, "
            f"got {settings.parametrization!r}"
        )
    if settings.subtype not in SUBTYPE_MODES:
        raise ValueError(
            f"{where}: inference.subtype: expected one of {SUBTYPE_MODES}, got {settings.subtype!r}"
        )
    if settings.variant not in variant_names():
        raise ValueError(
            f"{where}: inference.variant: expected one of {variant_names()}, got {settings.variant!r}"
        )
    if settings.tile_budget < 0:
        raise ValueError(
            f"{where}: inference.tile_budget: expected >= 0 (0 = sized), got {settings.tile_budget}"
        )
    if int(settings.clutter_clusters) != settings.clutter_clusters or settings.clutter_clusters < 1:
        raise ValueError(
            f"{where}: inference.clutter_clusters: expected an integer >= 1, got {settings.clutter_clusters}"
        )
    separation = float(settings.start_separation_deg)
    if not (0 <= separation <= 180):
        raise ValueError(
            f"{where}: inference.start_separation_deg: expected 0..180 degrees, got {separation}"
        )
    for key in _GRID_KEYS:
        if not tuple(settings[key]):
            raise ValueError(f"{where}: inference.{key}: the pose grid needs at least one value")


def search_config_from_settings(
    settings, neural_mesh, feature_hw, focal_px, principal, distance, where: str = "config"
) -> SearchConfig:
    """The search's static :class:`SearchConfig` from an ``inference`` section.

    The one place settings become a search: the grid, Adam, parametrization and early-stop keys map
    to the fields of the same name, ``variant`` to ``raster.variant``; the rasterizer's tiles and
    back-face culling are chosen for the mesh (:func:`nemo_jax.inference.search_config_for`), and
    ``tile_budget`` (0: sized over the grid for this mesh and camera) to ``raster.tile_budget``.

    Args:
      settings: an ``inference`` section (:func:`default_settings` / :func:`run_settings`).
      neural_mesh: anything with ``vertices [V, 3]`` and ``faces [F, 3]``.
      feature_hw: ``(h, w)`` of the feature map.
      focal_px, principal, distance: one image's camera (feature-map pixels, CAD units), as in
        :class:`nemo_jax.inference.SearchInputs`, used to size the tile budget.
      where: names the source in error messages.
    """
    check_settings(settings, where)
    config = search_config_for(
        neural_mesh,
        feature_hw,
        focal_px,
        principal,
        distance,
        variant=settings.variant,
        **search_fields(settings),
    )
    if settings.tile_budget > 0:
        raster = dataclasses.replace(config.raster, tile_budget=int(settings.tile_budget))
        config = dataclasses.replace(config, raster=raster)
    return config


def search_fields(settings) -> dict:
    """The :class:`SearchConfig` fields of an ``inference`` section (``raster`` excluded)."""
    names = {f.name for f in dataclasses.fields(SearchConfig)} - {"raster"}
    missing = sorted(names - set(settings.keys()) - set(_OTHER_KEYS))
    if missing:
        raise ValueError(f"inference settings: missing SearchConfig field(s) {missing}")
    fields = {k: settings[k] for k in names}
    fields["start_separation_deg"] = float(fields["start_separation_deg"])
    for key in _GRID_KEYS:
        fields[key] = tuple(float(v) for v in fields[key])
    return fields


__all__ = [
    "SUBTYPE_MODES",
    "check_settings",
    "default_settings",
    "run_settings",
    "search_config_from_settings",
    "search_fields",
]
