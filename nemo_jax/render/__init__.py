"""Differentiable mesh rasterizers in pure jax.numpy.

``render(vertices, faces, camera, settings, attributes=..., pixel_table=...)`` renders one view;
``settings.variant`` names the rasterizer variant: ``hard`` (z-buffer, NeMo's choice), ``soft``
(SoftRas), ``pytorch3d`` (PyTorch3D's K-faces-per-pixel soft raster), ``gaussian`` (VoGE's vertex
Gaussians), or any variant registered with :func:`register_variant` (see
:mod:`nemo_jax.render.variants` for the protocol). See ``screen`` for the face-window tiling that
keeps work proportional to the projected area, and ``visibility`` for the one vertex-visibility rule
(z-buffer test inside the image).

The variant modules register themselves when imported; this package imports each by name below, so
``import nemo_jax.render`` makes every built-in variant available.
"""

# The built-in rasterizer variants, imported for their register_variant() calls. A new variant module
# adds one name here.
from nemo_jax.render import gaussian, hard, pytorch3d, soft  # noqa: F401
from nemo_jax.render.output import RenderOutput
from nemo_jax.render.rasterize import project_primitives, render, render_exact, tiles_needed, validate_mesh
from nemo_jax.render.settings import RasterSettings, variant_names
from nemo_jax.render.variants import (
    NoParams,
    Variant,
    get_variant,
    register_variant,
    registered_variants,
    unregister_variant,
)
from nemo_jax.render.visibility import project_with_visibility, vertex_visibility

__all__ = [
    "NoParams",
    "RasterSettings",
    "RenderOutput",
    "Variant",
    "get_variant",
    "project_primitives",
    "project_with_visibility",
    "register_variant",
    "registered_variants",
    "render",
    "render_exact",
    "tiles_needed",
    "unregister_variant",
    "validate_mesh",
    "variant_names",
    "vertex_visibility",
]
