"""Meshes: cuboids and CAD models (trimesh), in the CAD frame of the PASCAL3D+ annotations."""

from nemo_jax.mesh.cuboid import cuboid_mesh

__all__ = ["cuboid_mesh"]
