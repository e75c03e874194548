"""Figures and overlays (matplotlib / numpy, host side)."""

from nemo_jax.viz.figures import accuracy_vs_occlusion, figure_one, mesh_overlay, occlusion_image
from nemo_jax.viz.shading import checkerboard, face_normals_camera, overlay, shade

__all__ = [
    "accuracy_vs_occlusion",
    "checkerboard",
    "face_normals_camera",
    "figure_one",
    "mesh_overlay",
    "occlusion_image",
    "overlay",
    "shade",
]
