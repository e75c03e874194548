"""Memory a render needs, estimated before compiling it (to refuse sizes that cannot fit).

:func:`peak_bytes` traces a function to a jaxpr (abstract shapes: nothing is allocated or
compiled) and replays it in program order, adding each value when it is produced and removing it
after its last use; the largest total is the estimate. XLA fuses element-wise chains, so the
compiled program usually needs less (it never keeps more values alive than this replay does, save
for buffers it pads); the estimate is meant as a "will not fit" check, not an exact figure.
"""

from __future__ import annotations

import os

import jax
import numpy as np


def _nbytes(var) -> int:
    aval = getattr(var, "aval", None)
    shape, dtype = getattr(aval, "shape", None), getattr(aval, "dtype", None)
    if shape is None or dtype is None:
        return 0
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        items = value if isinstance(value, tuple | list) else (value,)
        for item in items:
            inner = getattr(item, "jaxpr", item)  # ClosedJaxpr -> Jaxpr
            if hasattr(inner, "eqns"):
                yield inner


def _is_var(v) -> bool:
    return hasattr(v, "aval") and not hasattr(v, "val")  # a Var, not a Literal


def _peak(jaxpr) -> int:
    """Peak live bytes of ``jaxpr`` (a ``jax.core.Jaxpr``), its inputs included."""
    last_use = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.invars:
            if _is_var(v):
                last_use[v] = i
    for v in jaxpr.outvars:
        if _is_var(v):
            last_use[v] = len(jaxpr.eqns)
    live = sum(_nbytes(v) for v in (*jaxpr.invars, *jaxpr.constvars))
    peak = live
    for i, eqn in enumerate(jaxpr.eqns):
        inputs = sum(_nbytes(v) for v in eqn.invars if _is_var(v))
        inner = max((_peak(sub) for sub in _sub_jaxprs(eqn)), default=0)
        produced = sum(_nbytes(v) for v in eqn.outvars)
        # A nested computation's own peak counts its inputs, already in ``live``.
        peak = max(peak, live + produced + max(inner - inputs, 0))
        live += produced
        freed = {v for v in eqn.invars if _is_var(v) and last_use.get(v) == i}
        live -= sum(_nbytes(v) for v in freed)
        live -= sum(_nbytes(v) for v in eqn.outvars if v not in last_use)  # unused results
    return peak


def peak_bytes(fn, *args, **kwargs) -> int:
    """Estimated peak memory (bytes) of ``fn(*args, **kwargs)``; arrays may be given as
    ``jax.ShapeDtypeStruct``. Traces ``fn`` only: nothing is compiled or allocated."""
    closed = jax.make_jaxpr(fn)(*args, **kwargs)
    return _peak(closed.jaxpr)


def render_bytes(num_vertices: int, num_faces: int, settings, camera, attribute_dim: int = 0) -> int:
    """Estimated peak memory (bytes) of one :func:`nemo_jax.render.render` of a mesh with
    ``num_vertices`` and ``num_faces`` at ``settings`` (``attribute_dim`` > 0: with ``[V, C]``
    vertex attributes)."""
    from nemo_jax.render.rasterize import render  # noqa: PLC0415 (rasterize imports nothing from here)

    verts = jax.ShapeDtypeStruct((int(num_vertices), 3), np.float32)
    faces = jax.ShapeDtypeStruct((int(num_faces), 3), np.int32)
    attrs = jax.ShapeDtypeStruct((int(num_vertices), attribute_dim), np.float32) if attribute_dim else None
    return peak_bytes(lambda v, f, c, a: render(v, f, c, settings, attributes=a), verts, faces, camera, attrs)


def available_bytes(device=None) -> int | None:
    """Memory the computation can use on ``device`` (default: the first device): the accelerator's
    limit where jax reports one, else the host's available RAM (``MemAvailable``); None if unknown."""
    device = device or jax.devices()[0]
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 (CPU devices may not implement it)
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_render_fits(
    num_vertices: int, num_faces: int, settings, camera, available: float | None = None
) -> int:
    """Raises ``MemoryError`` with a message when :func:`render_bytes` exceeds ``available`` bytes
    (default: :func:`available_bytes`); returns the estimate otherwise."""
    need = render_bytes(num_vertices, num_faces, settings, camera)
    available = available_bytes() if available is None else available
    if available is not None and need > available:
        raise MemoryError(
            f"a {settings.height} x {settings.width} render of {num_faces} faces needs up to "
            f"{need / 1e9:.1f} GB (estimated before compiling) but {available / 1e9:.1f} GB available; "
            "render a smaller image"
        )
    return need
