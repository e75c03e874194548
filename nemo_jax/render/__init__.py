"""Differentiable mesh rasterizers in pure jax.numpy.

``render(vertices, faces, camera, settings, attributes=..., pixel_table=...)`` renders one view;
``settings.variant`` picks ``hard`` (z-buffer, NeMo's choice) or ``soft`` (SoftRas). See
``screen`` for the face-window tiling that keeps work proportional to the projected area, and ``visibility``
for the one vertex-visibility rule (z-buffer test inside the image).
"""

from nemo_jax.render.rasterize import RenderOutput, render, render_exact, tiles_needed, validate_mesh
from nemo_jax.render.settings import VARIANTS, RasterSettings
from nemo_jax.render.visibility import project_with_visibility, vertex_visibility

__all__ = [
    "VARIANTS",
    "RasterSettings",
    "RenderOutput",
    "project_with_visibility",
    "render",
    "render_exact",
    "tiles_needed",
    "validate_mesh",
    "vertex_visibility",
]
