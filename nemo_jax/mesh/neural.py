"""Neural meshes: a fixed mesh plus one learned unit feature per vertex and a clutter feature queue.

NeMo represents an object category by a mesh whose vertices carry feature vectors. During training
these vertex features are a momentum "memory bank" (not gradient-trained): each step they move
towards the backbone's features at the vertices' projections. Background ("clutter") features are
kept in a FIFO queue of recent samples. Both are part of the saved model: inference scores poses
with ``features`` and models the background with ``clutter``.

Everything here is a PyTree with static sizes: ``V`` vertices, ``F`` faces, ``D`` feature channels,
``K`` clutter entries.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import scipy.spatial


@flax.struct.dataclass
class NeuralMesh:
    """A neural mesh in the CAD frame of the PASCAL3D+ annotations.

    Attributes:
      vertices: ``[V, 3]`` float32 vertex positions (CAD units).
      faces: ``[F, 3]`` int32 vertex indices, counter-clockwise seen from outside.
      features: ``[V, D]`` unit vertex features (the memory bank).
      clutter: ``[K, D]`` unit clutter (background) features, newest first.
    """

    vertices: jax.Array
    faces: jax.Array
    features: jax.Array
    clutter: jax.Array

    @property
    def num_vertices(self) -> int:
        return self.vertices.shape[0]

    @property
    def feature_dim(self) -> int:
        return self.features.shape[1]


def normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    """``x / max(||x||, eps)`` along ``axis`` (as ``torch.nn.functional.normalize``)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)


def clutter_feature(mesh: NeuralMesh) -> jax.Array:
    """NeMo's clutter model at inference: the normalised mean of the clutter queue, ``[D]``."""
    return normalize(jnp.mean(mesh.clutter, axis=0))


def cluster_clutter(queue: jax.Array, clusters: int, iterations: int = 10) -> jax.Array:
    """Spherical k-means of the clutter queue ``[K, D]`` (unit rows) into ``[N, D]`` unit features.

    Deterministic: the first centre is the queue's normalised mean (NeMo's single clutter feature),
    each next one the queue row least similar to the centres so far (farthest-point seeding); then
    ``iterations`` rounds of assigning every row to its most similar centre (cosine) and setting
    each centre to the normalised sum of its rows (a centre with no rows stays). ``N = 1`` returns
    ``[1, D]``, the normalised mean, whatever ``iterations``.
    """
    k = queue.shape[0]
    if not 1 <= clusters <= k:
        raise ValueError(f"cluster_clutter: clusters must be in 1..{k} (queue size), got {clusters}")
    queue = jnp.asarray(queue, jnp.float32)
    mean = normalize(jnp.mean(queue, axis=0))
    if clusters == 1:
        return mean[None]

    def seed(i, centres):
        sim = jnp.where(jnp.arange(clusters)[None] < i, queue @ centres.T, -jnp.inf)  # [K, N]
        return centres.at[i].set(queue[jnp.argmin(jnp.max(sim, axis=1))])

    centres = jnp.zeros((clusters, queue.shape[1]), jnp.float32).at[0].set(mean)
    centres = jax.lax.fori_loop(1, clusters, seed, centres)

    def update(_, centres):
        assign = jax.nn.one_hot(jnp.argmax(queue @ centres.T, axis=1), clusters, dtype=queue.dtype)  # [K, N]
        sums = assign.T @ queue  # [N, D]
        return jnp.where(jnp.sum(assign, axis=0)[:, None] > 0, normalize(sums), centres)

    return jax.lax.fori_loop(0, iterations, update, centres)


def clutter_model(mesh: NeuralMesh, clusters: int = 1) -> jax.Array:
    """The clutter model the pose search scores against: NeMo's :func:`clutter_feature` ``[D]``
    for ``clusters = 1``; else ``[N, D]`` unit features from :func:`cluster_clutter` (a pixel's
    clutter similarity is then its best over them)."""
    if clusters == 1:
        return clutter_feature(mesh)
    return cluster_clutter(mesh.clutter, clusters)


def init_neural_mesh(
    key: jax.Array, vertices, faces, feature_dim: int = 128, clutter_size: int = 2560
) -> NeuralMesh:
    """A neural mesh with random unit vertex and clutter features.

    Args:
      key: PRNG key.
      vertices: ``[V, 3]`` CAD-frame vertices; faces: ``[F, 3]`` int vertex indices.
      feature_dim: ``D``; clutter_size: ``K`` (NeMo: ``num_noise * max_group`` per category).
    """
    vertices = np.asarray(vertices, np.float32)
    faces = np.asarray(faces, np.int32)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise ValueError(f"init_neural_mesh: vertices must be [V > 0, 3], got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError(f"init_neural_mesh: faces must be [F, 3] indices into {len(vertices)} vertices")
    if feature_dim <= 0 or clutter_size <= 0:
        raise ValueError(
            f"init_neural_mesh: need feature_dim, clutter_size > 0, got {feature_dim}, {clutter_size}"
        )
    k1, k2 = jax.random.split(key)
    return NeuralMesh(
        vertices=jnp.asarray(vertices),
        faces=jnp.asarray(faces),
        features=normalize(jax.random.normal(k1, (len(vertices), feature_dim))),
        clutter=normalize(jax.random.normal(k2, (clutter_size, feature_dim))),
    )


def momentum_update(bank: jax.Array, new: jax.Array, weight: jax.Array, momentum: float) -> jax.Array:
    """NeMo's memory-bank update ``normalize(m * bank + (1 - m) * new)``, only where ``weight > 0``.

    Args:
      bank: ``[V, D]`` unit features.
      new: ``[V, D]`` the batch's features per vertex (e.g. the mean over images where visible).
      weight: ``[V]``; vertices with ``weight == 0`` (seen in no image) keep their feature.
      momentum: ``m`` in [0, 1] (NeMo: 0.9).
    Returns:
      ``[V, D]`` updated unit features.
    """
    updated = normalize(momentum * bank + (1.0 - momentum) * new)
    return jnp.where((weight > 0)[:, None], updated, bank)


def push_clutter(queue: jax.Array, new: jax.Array) -> jax.Array:
    """FIFO update: ``[N, D]`` new features go to the front of the ``[K, D]`` queue, the oldest
    ``N`` leave. ``N <= K``."""
    k, n = queue.shape[0], new.shape[0]
    if n > k:
        raise ValueError(f"push_clutter: {n} new features exceed the queue size {k}")
    return jnp.concatenate([new.astype(queue.dtype), queue[: k - n]], axis=0)


def mirror_permutation(vertices, axis: int = 0, tolerance: float = 1e-4) -> np.ndarray:
    """The vertex re-indexing a horizontal image flip needs: ``perm[i]`` is the vertex at vertex
    ``i``'s mirror image across the plane ``x[axis] = 0``.

    A horizontal flip of the image is the same as viewing the object mirrored across its symmetry
    plane (PASCAL3D+ CAD frame: ``x = 0``) with azimuth and in-plane rotation negated. For a mesh
    symmetric about that plane, ``perm`` is an involution (``perm[perm] == arange(V)``).

    Args:
      vertices: ``[V, 3]``.
      axis: the coordinate negated by the mirror.
      tolerance: largest allowed distance (CAD units, relative to the mesh extent) between a
        mirrored vertex and its match.
    Raises:
      ValueError: the mesh is not mirror-symmetric within ``tolerance``.
    """
    vertices = np.asarray(vertices, np.float64)
    mirrored = vertices.copy()
    mirrored[:, axis] *= -1
    dist, perm = scipy.spatial.cKDTree(vertices).query(mirrored)
    extent = float(np.ptp(vertices, axis=0).max()) or 1.0
    if dist.max() > tolerance * extent:
        bad = int(np.argmax(dist))
        raise ValueError(
            f"mirror_permutation: mesh is not symmetric about x[{axis}] = 0: vertex {bad} at "
            f"{vertices[bad].tolist()} has no mirror partner (nearest at {dist[bad]:.3g}); use a "
            "symmetric mesh (e.g. symmetric_bounds) or disable flip augmentation"
        )
    perm = perm.astype(np.int32)
    if not np.array_equal(perm[perm], np.arange(len(perm))):
        raise ValueError("mirror_permutation: the vertex matching is not an involution (duplicate vertices?)")
    return perm


def symmetric_bounds(lower, upper, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Widens ``[lower, upper]`` on ``axis`` to ``[-a, a]``, ``a = max(|lower|, |upper|)``, so a
    cuboid built from it is mirror-symmetric (needed for flip augmentation)."""
    lower = np.array(lower, np.float64)
    upper = np.array(upper, np.float64)
    a = max(abs(lower[axis]), abs(upper[axis]))
    lower[axis], upper[axis] = -a, a
    return lower, upper
