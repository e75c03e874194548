"""One neural mesh per CAD sub-type (NeMo's MultiCuboid and the remeshed full CAD models).

The ``S`` sub-type meshes of a category are padded to common static sizes (``V`` vertices, ``F``
faces, see :class:`nemo_jax.mesh.MeshSet`) and stacked into ONE :class:`nemo_jax.mesh.NeuralMesh`
whose arrays carry a leading sub-type axis:

    vertices [S, V, 3], faces [S, F, 3] (padding rows -1), features [S, V, D], clutter [S, K, D]

Padding vertices sit at the origin and no face references them (:func:`vertex_mask` recovers the
real ones). A training batch updates the bank of each image's sub-type with one-hot (segment)
sums, so the update has static shapes and no data-dependent branch. Sub-type ``s`` (0-based) is
the examples' ``cad_index = s + 1`` (PASCAL3D+ numbers CAD models from 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax.mesh.cad import MeshSet, multi_cuboid, pad_meshes, remesh
from nemo_jax.mesh.cuboid import coverage_bounds, cuboid_mesh
from nemo_jax.mesh.neural import NeuralMesh, init_neural_mesh, normalize, symmetric_bounds

#: ``config.mesh.kind`` values that give one mesh per CAD sub-type.
SUBTYPE_KINDS = ("multi_cuboid", "cad_per_subtype")


def is_stacked(mesh: NeuralMesh) -> bool:
    """True for a per-sub-type neural mesh (``vertices [S, V, 3]``)."""
    return mesh.vertices.ndim == 3


def subtype_geometry(
    kind: str, cad_meshes, coverage: float = 0.99, target_vertices: int = 1000, symmetric: bool = False
) -> MeshSet:
    """The sub-type meshes of one category, padded into a :class:`MeshSet`.

    Args:
      kind: ``"multi_cuboid"`` (NeMo's MultiCuboid: per CAD model, the box covering ``coverage`` of
        its vertices per axis) or ``"cad_per_subtype"`` (each CAD model remeshed to about
        ``target_vertices`` vertices: NeMo's full-CAD row).
      cad_meshes: ``(vertices [V_s, 3], faces [F_s, 3])`` per CAD model, in ``cad_index`` order.
      symmetric: cuboids widened to be mirror-symmetric about ``x = 0`` (needed for flips).
    """
    cad_meshes = list(cad_meshes)
    if not cad_meshes:
        raise ValueError("subtype_geometry: no CAD models given")
    if kind == "multi_cuboid":
        if not symmetric:
            return multi_cuboid([v for v, _ in cad_meshes], coverage, target_vertices)
        boxes = [symmetric_bounds(*coverage_bounds([np.asarray(v)], coverage)) for v, _ in cad_meshes]
        return pad_meshes([cuboid_mesh(lo, hi, target_vertices) for lo, hi in boxes])
    if kind == "cad_per_subtype":
        return pad_meshes([remesh(v, f, target_vertices) for v, f in cad_meshes])
    raise ValueError(f"subtype_geometry: kind {kind!r} is not one of {SUBTYPE_KINDS}")


def init_subtype_meshes(key: jax.Array, meshes: MeshSet, feature_dim: int, clutter_size: int) -> NeuralMesh:
    """One neural mesh per sub-type, stacked (see the module docstring): random unit vertex and
    clutter features, each sub-type's drawn from its own key. Padding vertices get zero features."""
    keys = jax.random.split(key, meshes.num_meshes)
    parts = []
    for s in range(meshes.num_meshes):
        mask = np.asarray(meshes.vertex_mask[s])
        faces = np.asarray(meshes.faces[s])
        part = init_neural_mesh(
            keys[s], np.asarray(meshes.vertices[s])[mask], faces[faces[:, 0] >= 0], feature_dim, clutter_size
        )
        v_pad = len(mask) - int(mask.sum())
        parts.append(
            part.replace(
                vertices=jnp.asarray(meshes.vertices[s]),
                faces=jnp.asarray(faces),
                features=jnp.pad(part.features, ((0, v_pad), (0, 0))),
            )
        )
    return jax.tree.map(lambda *xs: jnp.stack(xs), *parts)


def vertex_mask(faces: jax.Array, num_vertices: int) -> jax.Array:
    """``[..., V]`` bool: vertices referenced by a real (non ``-1``) face of ``faces [..., F, 3]``."""

    def one(f):
        valid = jnp.broadcast_to((f[:, :1] >= 0), f.shape)
        return jnp.zeros(num_vertices, bool).at[jnp.clip(f, 0)].max(valid)

    flat = faces.reshape(-1, *faces.shape[-2:])
    return jax.vmap(one)(flat).reshape(*faces.shape[:-2], num_vertices)


def select_subtype(mesh: NeuralMesh, index: jax.Array) -> NeuralMesh:
    """The neural mesh of sub-type ``index`` (0-based; ``[]`` or ``[B]`` int) of a stacked mesh: a
    gather, so it works under jit and vmap."""
    return jax.tree.map(lambda x: jnp.take(x, index, axis=0), mesh)


def unstack(mesh: NeuralMesh) -> list[NeuralMesh]:
    """The ``S`` sub-type meshes of a stacked mesh, each without its padding (host arrays)."""
    out = []
    for s in range(mesh.vertices.shape[0]):
        part = jax.tree.map(lambda x, s=s: np.asarray(x[s]), mesh)
        mask = np.asarray(vertex_mask(jnp.asarray(part.faces), part.vertices.shape[0]))
        if not np.all(mask[: mask.sum()]):
            raise ValueError(f"sub-type {s + 1}: padding vertices are not at the end")
        n = int(mask.sum())
        faces = part.faces[part.faces[:, 0] >= 0]
        out.append(part.replace(vertices=part.vertices[:n], faces=faces, features=part.features[:n]))
    return out


def subtype_bank_targets(
    vertex_features: jax.Array, visible: jax.Array, subtype: jax.Array, num_subtypes: int, total=None
) -> tuple[jax.Array, jax.Array]:
    """Per sub-type and vertex, the batch mean of the features where the vertex is visible in an
    image of that sub-type (a one-hot segment sum).

    Args:
      vertex_features: ``[B, V, D]``; visible: ``[B, V]`` bool; subtype: ``[B]`` int, 0-based.
      total: for a batch split over devices, sums the partial sums over the devices
        (``nemo_jax.train.parallel.ordered_sum``).
    Returns:
      ``(mean [S, V, D], count [S, V])``; ``mean`` is 0 where ``count == 0``.
    """
    onehot = jax.nn.one_hot(subtype, num_subtypes, dtype=vertex_features.dtype)  # [B, S]
    w = onehot[:, :, None] * visible.astype(vertex_features.dtype)[:, None, :]  # [B, S, V]
    count = jnp.sum(w, 0)
    summed = jnp.einsum("bsv,bvd->svd", w, vertex_features)
    if total is not None:
        summed, count = total(summed), total(count)
    return summed / jnp.maximum(count, 1.0)[..., None], count


def push_clutter_by_subtype(queues: jax.Array, new: jax.Array, subtype: jax.Array) -> jax.Array:
    """FIFO update of every sub-type's clutter queue with the clutter samples of its own images.

    Args:
      queues: ``[S, K, D]``.
      new: ``[B, N, D]`` clutter samples per image (``B * N <= K``).
      subtype: ``[B]`` int, 0-based.
    Returns:
      ``[S, K, D]``: sub-type ``s``'s ``n_s * N`` new samples (``n_s`` its images in the batch) at
      the front, in batch order, then its oldest entries minus as many.
    """
    s, k, d = queues.shape
    b, n, _ = new.shape
    if b * n > k:
        raise ValueError(f"push_clutter_by_subtype: {b * n} new features exceed the queue size {k}")
    flat = new.reshape(b * n, d).astype(queues.dtype)
    owner = jnp.repeat(subtype, n)  # [B*N]
    slots = jnp.arange(k)

    def one(queue, label):
        mine = owner == label
        order = jnp.argsort(~mine, stable=True)  # this sub-type's samples first, batch order kept
        count = jnp.sum(mine)
        fresh = flat[order][jnp.minimum(slots, b * n - 1)]
        old = queue[jnp.clip(slots - count, 0, k - 1)]
        return jnp.where((slots < count)[:, None], fresh, old)

    return jax.vmap(one)(queues, jnp.arange(s))


def subtype_momentum_update(
    banks: jax.Array, target: jax.Array, count: jax.Array, momentum: float
) -> jax.Array:
    """:func:`nemo_jax.mesh.momentum_update` per sub-type: ``banks``, ``target`` ``[S, V, D]``,
    ``count`` ``[S, V]``; entries with ``count == 0`` keep their feature."""
    updated = normalize(momentum * banks + (1.0 - momentum) * target)
    return jnp.where((count > 0)[..., None], updated, banks)
