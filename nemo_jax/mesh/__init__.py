"""Meshes: cuboids and CAD models (trimesh), in the CAD frame of the PASCAL3D+ annotations."""

from nemo_jax.mesh.cuboid import coverage_bounds, cuboid_mesh, single_cuboid
from nemo_jax.mesh.off import load_off, save_off

__all__ = ["coverage_bounds", "cuboid_mesh", "load_off", "save_off", "single_cuboid"]
