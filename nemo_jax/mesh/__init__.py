"""Meshes: cuboids and CAD models (trimesh), in the CAD frame of the PASCAL3D+ annotations, and the
neural-mesh state (vertex feature memory bank + clutter queue), and padding to static shapes."""

from nemo_jax.mesh.cad import MeshSet, multi_cuboid, pad_meshes, remesh
from nemo_jax.mesh.cuboid import coverage_bounds, cuboid_mesh, single_cuboid
from nemo_jax.mesh.neural import (
    NeuralMesh,
    cluster_clutter,
    clutter_feature,
    clutter_model,
    init_neural_mesh,
    mirror_permutation,
    momentum_update,
    normalize,
    push_clutter,
    symmetric_bounds,
)
from nemo_jax.mesh.off import load_off, save_off
from nemo_jax.mesh.padding import pad_mesh, pad_rows, pad_to_common, round_up

__all__ = [
    "MeshSet",
    "NeuralMesh",
    "coverage_bounds",
    "cuboid_mesh",
    "init_neural_mesh",
    "load_off",
    "mirror_permutation",
    "momentum_update",
    "multi_cuboid",
    "clutter_feature",
    "clutter_model",
    "cluster_clutter",
    "normalize",
    "pad_mesh",
    "pad_meshes",
    "pad_rows",
    "pad_to_common",
    "push_clutter",
    "remesh",
    "round_up",
    "save_off",
    "single_cuboid",
    "symmetric_bounds",
]
