"""Figures and overlays (matplotlib / numpy, host side)."""

from nemo_jax.viz.figures import (
    OCCLUSION_CLASSES,
    OCCLUSION_COLORS,
    accuracy_vs_occlusion,
    draw_figure_one,
    figure_one,
    mesh_overlay,
    occluder_vs_occlusion,
    occlusion_image,
    occlusion_labels,
    reliability_diagram,
    selective_accuracy_curve,
)
from nemo_jax.viz.shading import checkerboard, face_normals_camera, overlay, shade

__all__ = [
    "OCCLUSION_CLASSES",
    "OCCLUSION_COLORS",
    "accuracy_vs_occlusion",
    "checkerboard",
    "draw_figure_one",
    "face_normals_camera",
    "figure_one",
    "mesh_overlay",
    "occlusion_image",
    "occlusion_labels",
    "occluder_vs_occlusion",
    "overlay",
    "reliability_diagram",
    "selective_accuracy_curve",
    "shade",
]
