"""Meshes: cuboids and CAD models (trimesh), in the CAD frame of the PASCAL3D+ annotations."""

from nemo_jax.mesh.cuboid import cuboid_mesh
from nemo_jax.mesh.off import load_off, save_off

__all__ = ["cuboid_mesh", "load_off", "save_off"]
