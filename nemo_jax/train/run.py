"""A training run's setup, shared by training and by the apps that load a trained run:
config -> neural-mesh geometry, backbone, the checkpoint's mesh record, and :func:`load_run`.
"""

from __future__ import annotations

import glob
import json
import os

import jax
import ml_collections
import numpy as np

from nemo_jax import defaults
from nemo_jax import mesh as mesh_lib
from nemo_jax.mesh import subtypes
from nemo_jax.render import validate_mesh
from nemo_jax.train import category_data, subtype_data
from nemo_jax.train.checkpoint import Checkpointer, step_dirs
from nemo_jax.train.state import create_train_state, make_optimizer
from nemo_jax.train.step import StepConfig


def build_geometry(config) -> tuple[np.ndarray, np.ndarray]:
    """The neural mesh geometry ``(vertices [V, 3], faces [F, 3])`` from ``config.mesh``:

    * ``kind='cuboid'``: the box ``[lower, upper]`` with ~``target_vertices`` vertices.
    * ``kind='single_cuboid'``: NeMo's SingleCuboid from ``{cad_dir}/{category}/*.off``.
    * ``kind='cad'``: CAD model ``{cad_dir}/{category}/{cad_index:02d}.off`` remeshed.
    * ``kind='dataset'``: the neural mesh stored with the dataset (``nemo_jax.data.load_meshes``).

    The per-sub-type kinds (``'multi_cuboid'``, ``'cad_per_subtype'``) are built by
    :func:`nemo_jax.train.subtype_data.build_subtype_meshes` (see :func:`build_neural_mesh`).
    """
    m = config.mesh
    if m.kind == "cuboid":
        return mesh_lib.cuboid_mesh(list(m.lower), list(m.upper), int(m.target_vertices))
    if m.kind in ("single_cuboid", "cad"):
        folder = os.path.join(m.cad_dir, config.category)
        files = sorted(glob.glob(os.path.join(folder, "*.off")))
        if not files:
            raise FileNotFoundError(f"config.mesh.cad_dir: no .off files in {folder}")
        if m.kind == "cad":
            path = os.path.join(folder, f"{int(m.cad_index):02d}.off")
            return mesh_lib.remesh(*mesh_lib.load_off(path), int(m.target_vertices))
        vertex_sets = [mesh_lib.load_off(f)[0] for f in files]
        lower, upper = mesh_lib.coverage_bounds(vertex_sets, float(m.coverage))
        if m.symmetric:
            lower, upper = mesh_lib.symmetric_bounds(lower, upper)
        return mesh_lib.cuboid_mesh(lower, upper, int(m.target_vertices))
    if m.kind == "dataset":
        from nemo_jax import data  # noqa: PLC0415 (optional layer, only for this mesh kind)

        meshes = data.load_meshes(config.data.name, config.data.data_dir, [config.category])
        cat = meshes[config.category]
        return cat.neural_vertices, cat.neural_faces
    raise ValueError(
        f"config.mesh.kind: {m.kind!r} is not 'cuboid', 'single_cuboid', 'cad', 'dataset', "
        "'multi_cuboid' or 'cad_per_subtype'"
    )


def build_neural_mesh(config, key: jax.Array, check_flips: bool = False):
    """``(neural_mesh, geometry, perm)``: the initial neural mesh of ``config.mesh``.

    One mesh (``geometry = (vertices [V, 3], faces [F, 3])``), or for the per-sub-type kinds one
    per CAD sub-type stacked (``geometry`` a :class:`nemo_jax.mesh.MeshSet`, arrays ``[S, ...]``,
    see :mod:`nemo_jax.mesh.subtypes`). ``perm``: the mirror permutation when ``check_flips``
    (single mesh; ``None`` for sub-types, whose meshes are each checked to be symmetric).
    """
    dim, size = int(config.model.feature_dim), int(config.train.clutter_size)
    if category_data.is_shared_config(config):  # one mesh per category, stacked like sub-types
        meshes = build_category_meshes(config)
        for c, name in enumerate(category_data.shared_categories(config)):
            v, f = subtype_data.unpadded(meshes, c)
            validate_mesh(v, f, f"config.mesh (kind={config.mesh.kind!r}, category {name!r})")
            if check_flips:
                mesh_lib.mirror_permutation(v)
        return subtypes.init_subtype_meshes(key, meshes, dim, size), meshes, None
    if subtype_data.is_subtype_config(config):
        meshes = subtype_data.build_subtype_meshes(config)
        for s in range(meshes.num_meshes):
            v, f = subtype_data.unpadded(meshes, s)
            validate_mesh(v, f, f"config.mesh (kind={config.mesh.kind!r}, cad_index {s + 1})")
            if check_flips:
                mesh_lib.mirror_permutation(v)
        return subtypes.init_subtype_meshes(key, meshes, dim, size), meshes, None
    vertices, faces = build_geometry(config)
    validate_mesh(vertices, faces, f"config.mesh (kind={config.mesh.kind!r})")
    perm = mesh_lib.mirror_permutation(vertices) if check_flips else None
    return mesh_lib.init_neural_mesh(key, vertices, faces, dim, size), (vertices, faces), perm


def build_category_meshes(config) -> mesh_lib.MeshSet:
    """A shared run's meshes: :func:`build_geometry` for each of ``config.categories``, padded to
    common sizes (:class:`nemo_jax.mesh.MeshSet`, in ``config.categories`` order).
    ``config.mesh.category_overrides`` (optional) ``{category: {mesh field: value}}`` changes a
    category's mesh fields, e.g. its cuboid ``lower`` / ``upper`` for ``kind='cuboid'``."""
    overrides = dict(config.mesh.get("category_overrides", {}) or {})
    cats = category_data.check_shared_config(config)
    unknown = sorted(set(overrides) - set(cats))
    if unknown:
        raise ValueError(f"config.mesh.category_overrides: {unknown} not in config.categories {list(cats)}")
    parts = []
    for name in cats:
        one = config.copy_and_resolve_references()
        one.category = name
        for field, value in dict(overrides.get(name, {})).items():
            if field not in one.mesh:
                raise ValueError(f"config.mesh.category_overrides.{name}: no mesh field {field!r}")
            one.mesh[field] = value
        parts.append(build_geometry(one))
    return mesh_lib.pad_meshes(parts)


def build_model(config):
    """``(module, preprocess)`` from ``config.model`` (see ``nemo_jax.models.default_config``)."""
    from nemo_jax import models  # noqa: PLC0415

    return models.build_backbone(config.model), models.preprocess


def base_config() -> ml_collections.ConfigDict:
    """A fresh copy of ``base()`` (:mod:`nemo_jax.defaults`): every key a training config has, with
    its default."""
    return defaults.base()


def is_nemo_run_config(stored) -> bool:
    """Whether a stored ``config.json`` (dict or ConfigDict) is a NeMo training run's (it has a
    ``mesh`` section), not a baseline classifier's (``bins``)."""
    return "mesh" in stored and "bins" not in stored


#: ``(section, key, value)``: keys whose ``base()`` default differs from how runs trained before
#: the key existed: such a run is filled with the old behaviour, not the new default. Training
#: visibility was always limited to the object's box before ``train.visibility_in_box``.
BEHAVIOUR_BEFORE_KEY = (("train", "visibility_in_box", True),)


def upgrade_config(stored) -> ml_collections.ConfigDict:
    """A NeMo run's stored config (``config.json`` as a dict or ConfigDict) with every key it lacks
    filled from ``base()`` (:mod:`nemo_jax.defaults`), values it holds kept.

    A run written before a key existed was trained as that key's default says (e.g. a 0.1.0 run,
    before ``train.optimizer``, ``train.epochs``, ``train.grad_accum_phase`` and
    ``train.lr_decay_epochs``: 'adamw', 0, 'end', 0), so filling the default reads it back as it
    was trained; a key whose default changed when it was added reads as the old behaviour
    (:data:`BEHAVIOUR_BEFORE_KEY`). Keys ``base()`` does not have (``categories``, per-config
    model fields) are kept.
    """
    out = ml_collections.ConfigDict(stored.to_dict() if hasattr(stored, "to_dict") else dict(stored))

    def fill(into: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict) -> None:
        for key, value in defaults.items():
            if key not in into:
                into[key] = value.to_dict() if hasattr(value, "to_dict") else value
            elif isinstance(value, ml_collections.ConfigDict) and isinstance(
                into[key], ml_collections.ConfigDict
            ):
                fill(into[key], value)

    for section, key, value in BEHAVIOUR_BEFORE_KEY:
        if section in out and key not in out[section]:
            out[section][key] = value
    fill(out, base_config())
    return out


def load_run(workdir: str, step: int | None = None):
    """A trained run for inference: ``(config, model, variables, neural_mesh)``.

    Rebuilds the state structure from ``workdir/config.json`` and ``mesh.json`` and restores the
    newest intact checkpoint (or ``step``), the neural mesh included: neither the dataset nor the
    working directory the run was trained from is read, and nothing is written. Config keys newer
    than the run read as their defaults (:func:`upgrade_config`). ``variables`` is
    ``{'params', 'batch_stats'}`` for ``model.apply``;
    ``neural_mesh`` holds the vertices, faces, vertex features ``[V, D]`` and clutter ``[K, D]``.
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not a training workdir (no config.json)")
    with open(path) as fh:
        config = upgrade_config(json.load(fh))  # keys newer than the run: their defaults
    for name in ("data", "mesh"):  # JSON turned tuples into lists
        for key, value in config[name].items():
            if isinstance(value, list):
                config[name][key] = tuple(value)
    # The mesh comes from the checkpoint (state.mesh): only its size is needed to restore into, so
    # a run does not depend on the dataset or CAD folder it was trained from.
    mesh_path = os.path.join(workdir, "mesh.json")
    if not os.path.isfile(mesh_path):
        raise FileNotFoundError(f"{mesh_path}: not a training workdir (no mesh.json)")
    with open(mesh_path) as fh:
        saved_mesh = json.load(fh)
    if not step_dirs(os.path.join(workdir, "checkpoints")):
        raise FileNotFoundError(f"{workdir}/checkpoints: no checkpoint to load")
    model, _ = build_model(config)
    tx = make_optimizer(config.train)
    neural = _mesh_structure(saved_mesh, int(config.model.feature_dim), int(config.train.clutter_size))
    # Only the structure, shapes and dtypes are needed to restore into: eval_shape compiles nothing
    # (a real init compiled the backbone's init, ~4 s per run on a 2-core CPU).
    state = jax.eval_shape(
        lambda: create_train_state(
            jax.random.PRNGKey(0), model, neural, tx, StepConfig.from_config(config).image_size
        )
    )
    ckpt = Checkpointer(workdir, config.to_dict(), saved_mesh, 1, 1000, read_only=True)
    try:
        state = ckpt.restore(state, step)  # damaged newest: warned about, an older one restored
    finally:
        ckpt.close()
    return config, model, {"params": state.params, "batch_stats": state.batch_stats}, state.mesh


def _mesh_structure(saved_mesh: dict, feature_dim: int, clutter_size: int) -> mesh_lib.NeuralMesh:
    """A neural mesh of the sizes in ``mesh.json`` (values unused: the checkpoint fills them); with
    ``num_subtypes`` (or ``categories``, a shared run), stacked per sub-type (category)."""
    v, f = int(saved_mesh["num_vertices"]), int(saved_mesh["num_faces"])
    lead = ()
    if "categories" in saved_mesh:  # a shared run: one mesh per category
        lead = (len(saved_mesh["categories"]),)
    elif "num_subtypes" in saved_mesh:
        lead = (int(saved_mesh["num_subtypes"]),)
    return mesh_lib.NeuralMesh(
        vertices=np.zeros((*lead, v, 3), np.float32),
        faces=np.zeros((*lead, f, 3), np.int32),
        features=np.zeros((*lead, v, feature_dim), np.float32),
        clutter=np.zeros((*lead, clutter_size, feature_dim), np.float32),
    )


def mesh_info(config, neural) -> dict:
    """The checkpoint's mesh record (``mesh.json``) of an initial neural mesh."""
    info = {
        "num_vertices": int(neural.vertices.shape[-2]),
        "num_faces": int(neural.faces.shape[-2]),
        "feature_dim": int(config.model.feature_dim),
        "clutter_size": int(config.train.clutter_size),
    }
    if category_data.is_shared_config(config):  # one bank per category (padded sizes above)
        info["categories"] = list(category_data.shared_categories(config))
    elif subtypes.is_stacked(neural):  # per-sub-type banks (padded sizes above)
        info["num_subtypes"] = int(neural.vertices.shape[0])
    return info
