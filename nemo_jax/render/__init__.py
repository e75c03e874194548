"""Differentiable mesh rasterizers in pure jax.numpy.

``render(vertices, faces, camera, settings, attributes=..., pixel_table=...)`` renders one view;
``settings.variant`` picks ``hard`` (z-buffer, NeMo's choice) or ``soft`` (SoftRas). See
``screen`` for the face-window tiling that keeps work proportional to the projected area.
"""

from nemo_jax.render.rasterize import RenderOutput, render, render_exact, tiles_needed, validate_mesh
from nemo_jax.render.settings import VARIANTS, RasterSettings

__all__ = [
    "VARIANTS",
    "RasterSettings",
    "RenderOutput",
    "render",
    "render_exact",
    "tiles_needed",
    "validate_mesh",
]
