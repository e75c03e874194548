"""Figures and overlays (matplotlib / numpy, host side)."""

from nemo_jax.viz.shading import checkerboard, face_normals_camera, overlay, shade

__all__ = ["checkerboard", "face_normals_camera", "overlay", "shade"]
