"""The rasterizer-variant protocol and its registry.

A variant is one module under ``nemo_jax/render/`` (or anywhere else: a test, a research script)
that calls :func:`register_variant` at import time. ``nemo_jax.render`` imports every module of its
own package when it is imported, so a new file there is all it takes; ``render()``, the pose
search, training and the tools look variants up by name (``RasterSettings(variant=NAME)``) and
never name one.

A variant supplies:

* ``rasterize(screen, pairs, settings, attributes, pixel_table) -> RenderOutput`` for ONE view
  (batch with ``jax.vmap``; jit happens outside). Inputs:

  - ``screen``: what ``project`` returned for this view (default: a :class:`~nemo_jax.render.screen.
    ScreenMesh` of projected faces);
  - ``pairs``: the tiled (primitive, pixel) pairs of :func:`~nemo_jax.render.screen.tile_pairs`:
    every pixel of every primitive's screen box, in fixed-size tiles, ``[T, th * tw]``;
  - ``settings``: the static :class:`~nemo_jax.render.RasterSettings`; the variant's own parameters
    are ``settings.params`` (an instance of its ``params`` class);
  - ``attributes``: ``[V, C]`` per-vertex features or None; ``pixel_table``: ``[V, H*W]`` or None.

  It returns every :class:`~nemo_jax.render.output.RenderOutput` field (``face_index = -1`` and
  ``bary = 0`` where the variant has no faces) with ``overflow = pairs.overflow``. It must be
  finite for any input (mask, never NaN) and differentiable where the docstring says so.
* ``params``: a frozen dataclass of the variant's static parameters, every field with a default;
  its ``__post_init__`` raises ``ValueError`` naming the field for bad values.
* ``blur_radius(params) -> float``: pixels by which each face's screen box grows (how far a
  face reaches outside itself), used by the default projection. 0 for hard coverage.
* ``project(vertices, faces, camera, settings)`` (optional): builds ``screen`` when the primitives
  are not the mesh's faces (the ``gaussian`` variant tiles one kernel per vertex). It must return a
  PyTree with ``box [4, N]`` (inclusive pixel ranges x0, y0, x1, y1) and ``valid [N]`` fields,
  which is all :func:`~nemo_jax.render.screen.tile_pairs` reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class NoParams:
    """Parameters of a variant that has none."""


def _zero_radius(params) -> float:
    del params
    return 0.0


@dataclasses.dataclass(frozen=True)
class Variant:
    """One registered rasterizer variant (see the module docstring for the protocol)."""

    name: str
    rasterize: Callable[..., Any]
    params: type = NoParams
    blur_radius: Callable[[Any], float] = _zero_radius
    project: Callable[..., Any] | None = None
    doc: str = ""


_REGISTRY: dict[str, Variant] = {}


def register_variant(
    name: str,
    rasterize: Callable[..., Any],
    params: type = NoParams,
    blur_radius: Callable[[Any], float] = _zero_radius,
    project: Callable[..., Any] | None = None,
    doc: str = "",
    replace: bool = False,
) -> Variant:
    """Registers a variant under ``name``; returns it. Re-registering a name raises unless
    ``replace`` (a module imported twice under two names would otherwise shadow silently)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"register_variant: name must be an identifier-like string, got {name!r}")
    if not (dataclasses.is_dataclass(params) and isinstance(params, type)):
        raise TypeError(f"register_variant({name!r}): params must be a dataclass type, got {params!r}")
    if not params.__dataclass_params__.frozen:
        raise TypeError(f"register_variant({name!r}): params {params.__name__} must be frozen (hashable)")
    try:
        params()
    except TypeError as err:
        raise TypeError(
            f"register_variant({name!r}): every field of {params.__name__} needs a default"
        ) from err
    if name in _REGISTRY and not replace:
        raise ValueError(f"register_variant: {name!r} is already registered")
    variant = Variant(name, rasterize, params, blur_radius, project, doc)
    _REGISTRY[name] = variant
    return variant


def unregister_variant(name: str) -> None:
    """Removes ``name`` from the registry (tests that register toys clean up with this)."""
    _REGISTRY.pop(name, None)


def registered_variants() -> tuple[str, ...]:
    """Names of the registered variants, sorted."""
    return tuple(sorted(_REGISTRY))


def get_variant(name: str) -> Variant:
    """The variant registered as ``name``; ``ValueError`` listing the registered names otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"RasterSettings.variant: {name!r} is not a registered rasterizer variant; "
            f"registered: {', '.join(registered_variants())}"
        ) from None


def make_params(variant: Variant, params: Any):
    """The variant's parameter instance from ``None`` (defaults), a mapping of field overrides, or
    an instance of its ``params`` class; ``ValueError`` naming unknown fields."""
    cls = variant.params
    if params is None:
        return cls()
    if isinstance(params, cls):
        return params
    if isinstance(params, Mapping):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(
                f"RasterSettings.params: variant {variant.name!r} has no parameter(s) {unknown}; "
                f"its parameters: {sorted(known) or 'none'}"
            )
        return cls(**params)
    raise ValueError(
        f"RasterSettings.params: expected None, a mapping or a {cls.__name__} for variant "
        f"{variant.name!r}, got {type(params).__name__}"
    )
