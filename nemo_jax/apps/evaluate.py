"""Evaluating trained models on a dataset's occlusion levels, with NeMo's metric.

NeMo: per category, the backbone's features are computed once per image, then the pose search of
``nemo_jax.inference`` runs against that category's neural mesh. The baseline classifier predicts
the viewpoint directly. Both produce the same prediction records and so the same results JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax import data as data_lib
from nemo_jax import eval as eval_lib
from nemo_jax.geometry.camera import feature_coordinates
from nemo_jax.inference import (
    SearchInputs,
    bucketed_search_inputs,
    neural_mesh_inputs,
    run_settings,
    search_batch,
    search_config_from_settings,
    search_subtypes,
    sharding,
    stacked_search_setup,
)
from nemo_jax.inference.settings import search_fields
from nemo_jax.mesh import clutter_feature, subtypes
from nemo_jax.render import RasterSettings
from nemo_jax.train.run import load_run
from nemo_jax.train.subtype_data import check_cad_indices


def level_source(dataset: str, level: int, data_dir: str) -> data_lib.Source:
    """The built split that holds occlusion level ``level`` of ``dataset`` (NeMo's protocol).

    * ``synthetic``, and ``pascal3d`` built with ``synthetic_occlusion``: ``test_l{level}``.
    * ``occluded_pascal3d``: ``test_l1..3``; L0 is the clean PASCAL3D+ val set that the occluded
      images were made from, i.e. ``pascal3d`` (``test_l0`` if built, else ``val``) in the same
      ``data_dir``.
    * ``pascal3d`` / ``objectnet3d`` without test splits: L0 is ``val``, except under
      ``pose_split='unseen'``, where ``val`` holds the seen azimuths and L0 must be ``test_l0``
      (the builders write it): a build without it is an error, not a silent seen-pose score.
    """
    split = data_lib.TEST_SPLITS[level]
    if dataset == "occluded_pascal3d" and level == 0:
        dataset = "pascal3d"
    try:
        return data_lib.load(dataset, split, data_dir)
    except ValueError:  # the dataset has no such split
        if level != 0 or dataset == "synthetic":
            raise
    source = data_lib.load(dataset, "val", data_dir)
    if (source.metadata.get("options") or {}).get("pose_split") == "unseen":
        raise ValueError(
            f"{source.path}: built with pose_split='unseen' but has no {split!r} split (the unseen "
            "azimuths' L0); rebuild it with this version of tools/build_data.py"
        )
    return source


def ensure_datasets(
    dataset: str, data_dir: str, manual_dir: str, categories: Sequence[str], options=None, log=print
) -> None:
    """Builds what evaluating ``dataset`` on L0-L3 reads, if it is not yet in ``data_dir``, from the
    local release in ``manual_dir`` (``occluded_pascal3d`` also needs ``pascal3d`` for L0).
    ``options``: overrides of the builder's options (``{"shrink": "4"}``), as ``tools/build_data.py``'s
    ``--option``; ``categories`` default to the builder's own list when empty, and an existing
    build must hold them (see :func:`nemo_jax.data.ensure_built`)."""
    names = ["pascal3d", "occluded_pascal3d"] if dataset == "occluded_pascal3d" else [dataset]
    for name in names:
        data_lib.ensure_built(
            name, data_dir, options, categories, manual_dir or None, progress=False, log=log
        )


def _examples(source, category: str | None):
    """Indices of ``source`` whose category is ``category`` (all when None)."""
    if category is None:
        return list(range(len(source)))
    return source.indices_of(category)  # labels only, no image decoded


def _batches(source, indices: Sequence[int], batch_size: int):
    """Batches of at most ``batch_size`` examples, of equal sizes where possible (20 images at 16 ->
    10 + 10, not 16 + 4): fewer batch shapes, fewer compilations of the jitted search."""
    count = max(1, -(-len(indices) // batch_size))  # batches needed
    size = max(1, -(-len(indices) // count))
    subset = data_lib.Subset(source, indices)
    return data_lib.batches(subset, size, shuffle=False, drop_remainder=False, epochs=1)


def nemo_records(
    workdir: str,
    dataset: str,
    data_dir: str,
    levels: Sequence[int] = (0, 1, 2, 3),
    batch_size: int = 16,
    inference_overrides: dict | None = None,
    on_batch: Callable[[dict, object], None] | None = None,
    dtype: str = "",
    subtype: str | None = None,
) -> list[dict]:
    """Prediction records of the NeMo run in ``workdir`` (one category) on ``levels``.

    ``on_batch(batch, result)`` is called after each batch (e.g. to draw figures). The search follows
    the run's ``inference`` settings (``config.json``), with ``inference_overrides`` (flat,
    ``{"steps": 100}`` or ``{"inference.steps": 100}``, see :func:`nemo_jax.inference.run_settings`)
    applied. ``dtype``: the backbone's compute dtype (``'float32'`` / ``'bfloat16'``; default: the
    run's ``config.model.dtype``); the search itself runs in float32 on the float32 features. A run
    with one mesh per CAD sub-type (``config.mesh.kind`` 'multi_cuboid' / 'cad_per_subtype') is
    searched as ``subtype`` says (default: the settings' ``subtype``; see
    :func:`nemo_jax.inference.search_subtypes`) and each record carries the chosen ``subtype``
    (1-based, as ``cad_index``).
    """
    config, model, variables, mesh = load_run(workdir)
    settings = run_settings(config, inference_overrides, where=os.path.join(workdir, "config.json"))
    if dtype and dtype != config.model.dtype:
        from nemo_jax import models  # noqa: PLC0415

        config.model.dtype = dtype
        model = models.build_backbone(config.model)
    category = config.category
    stacked = subtypes.is_stacked(mesh)
    if stacked:
        return _subtype_records(
            workdir, config, model, variables, mesh, dataset, data_dir, levels, batch_size,
            settings, on_batch, subtype or settings.subtype,
        )  # fmt: skip
    clutter = clutter_feature(mesh)
    features_fn = jax.jit(lambda variables, images: model.apply(variables, _preprocess(images), train=False))
    devices = sharding.image_mesh()  # every batch is spread over all local devices
    variables = sharding.replicate(variables, devices)
    records, search_config = [], None
    for level, batch, focal_px, principal in _level_batches(
        workdir, config, dataset, data_dir, levels, batch_size
    ):
        images, b = sharding.shard_images(batch["image"], devices)
        observed = features_fn(variables, images)  # [B', h, w, C], B' = b padded, split over devices
        _, h, w, _ = observed.shape
        if search_config is None:
            search_config = search_config_from_settings(
                settings,
                mesh,
                (h, w),
                float(focal_px[0]),
                principal[0],
                float(batch["distance"][0]),
                where=os.path.join(workdir, "config.json"),
            )
            vertices, faces, vertex_features, search_config = bucketed_search_inputs(
                mesh.vertices, mesh.faces, mesh.features, search_config
            )
            vertices, faces, vertex_features = sharding.replicate((vertices, faces, vertex_features), devices)
        per_image = (np.broadcast_to(np.asarray(clutter, np.float32), (b, clutter.shape[0])),)
        per_image += tuple(np.asarray(x, np.float32) for x in (focal_px, principal, batch["distance"]))
        (clutters, *camera), _ = sharding.shard_images(per_image, devices)  # padded like observed
        inputs = SearchInputs(observed, vertex_features, clutters, vertices, faces, *camera)
        result = _checked(sharding.unpad(search_batch(inputs, search_config), b))
        records += _batch_records(result, batch, category, level)
        if on_batch is not None:
            on_batch(batch, result)
    return records


def check_crop_size(workdir: str, config, source, batch) -> None:
    """Raises ValueError if the data's images are not the crop size the run was trained on."""
    want = tuple(int(s) for s in config.data.image_size)
    got = tuple(int(s) for s in np.shape(batch["image"])[1:3])
    if got != want:
        raise ValueError(
            f"{workdir}: the run was trained on {want[0]}x{want[1]} crops (config.data.image_size) but "
            f"{source.path} [{source.split}] holds {got[0]}x{got[1]} images (e.g. {batch['id'][0]!r}); "
            "evaluate on data built with the run's crop sizes"
        )


def check_subtypes(workdir: str, num_subtypes: int, batch) -> np.ndarray:
    """``cad_index - 1`` of a batch (from :func:`_level_batches`); raises ValueError naming the
    example and its ``cad_index`` if the run has no mesh for it (the run's sub-types do not match
    the data)."""
    where = f"{batch['source']} (run {workdir})"
    check_cad_indices(batch["cad_index"], batch["id"], num_subtypes, where)
    return (np.asarray(batch["cad_index"]).reshape(-1) - 1).astype(np.int32)


def _subtype_records(
    workdir, config, model, variables, mesh, dataset, data_dir, levels, batch_size, settings,
    on_batch, mode,
) -> list[dict]:  # fmt: skip
    """:func:`nemo_records` for a per-sub-type neural mesh (``mesh.vertices [S, V, 3]``)."""
    category = config.category
    num_subtypes = int(mesh.vertices.shape[0])
    features_fn = jax.jit(lambda images: model.apply(variables, _preprocess(images), train=False))
    records, search_config, mesh_inputs = [], None, None
    for level, batch, focal_px, principal in _level_batches(
        workdir, config, dataset, data_dir, levels, batch_size
    ):
        labels = check_subtypes(workdir, num_subtypes, batch)
        observed = features_fn(batch["image"])
        _, h, w, _ = observed.shape
        if search_config is None:
            search_config, mesh_inputs = stacked_search_setup(
                mesh, (h, w), float(focal_px[0]), principal[0], float(batch["distance"][0]),
                variant=settings.variant, **search_fields(settings),
            )  # fmt: skip
        camera = [jnp.asarray(x, jnp.float32) for x in (focal_px, principal, batch["distance"])]
        inputs = SearchInputs(observed=observed, **mesh_inputs, focal_px=camera[0], principal=camera[1],
                              distance=camera[2])  # fmt: skip
        result, chosen, _ = search_subtypes(inputs, jnp.asarray(labels), search_config, mode)
        batch_records = _batch_records(_checked(result), batch, category, level)
        for record, s, true_s in zip(batch_records, np.asarray(chosen), labels, strict=True):
            record.update(subtype=int(s) + 1, true_subtype=int(true_s) + 1, subtype_mode=mode)
        records += batch_records
        if on_batch is not None:  # figures draw the chosen sub-type's mesh
            on_batch(dict(batch, subtype=np.asarray(chosen) + 1), result)
    return records


def _level_batches(workdir, config, dataset, data_dir, levels, batch_size):
    """Yields ``(level, batch, focal_px [B], principal [B, 2])`` over the run's category's examples
    of each occlusion level, each batch checked against the run's crop size; ``focal_px`` and
    ``principal`` in feature-map pixels (PASCAL3D+-style focal (1) x viewport (3000) image pixels,
    divided by the backbone's stride). ``batch["source"]`` names the split for error messages."""
    category = config.category
    stride = int(config.model.get("stride", 8))
    for level in levels:
        source = level_source(dataset, level, data_dir)
        indices = _examples(source, category)
        if not indices:
            raise ValueError(f"{source.path}: no {category!r} examples in split {source.split}")
        for batch in _batches(source, indices, batch_size):
            check_crop_size(workdir, config, source, batch)
            focal_px = batch["focal"] * batch["viewport"] / stride
            principal = feature_coordinates(np.stack([batch["px"], batch["py"]], -1), stride)
            yield level, dict(batch, source=f"{source.path} [{source.split}]"), focal_px, principal


def _checked(result):
    """``result`` of a pose search; raises RuntimeError if any render overflowed its tile budget."""
    if int(np.max(np.asarray(result.overflow))) > 0:
        raise RuntimeError("pose search: tile budget overflow; raise the search tile budget")
    return result


def _batch_records(result, batch, category: str, level: int) -> list[dict]:
    """Prediction records of one searched batch (see :func:`nemo_jax.eval.records_from_search`)."""
    b = len(batch["id"])
    return eval_lib.records_from_search(
        result, batch["id"], [category] * b, [level] * b, batch["azimuth"], batch["elevation"], batch["theta"]
    )


def _preprocess(images):
    from nemo_jax import models

    return models.preprocess(images)


def baseline_records(
    workdir: str,
    dataset: str,
    data_dir: str,
    levels: Sequence[int] = (0, 1, 2, 3),
    categories: Sequence[str] | None = None,
    batch_size: int = 32,
) -> list[dict]:
    """Prediction records of the baseline classifier saved in ``workdir``."""
    from nemo_jax.baseline import load_baseline, make_predict

    records, predict, variables = [], None, None
    for level in levels:
        source = level_source(dataset, level, data_dir)
        if predict is None:
            config, module, variables = load_baseline(workdir, tuple(source[0]["image"].shape))
            predict = make_predict(config, module)
        for category in categories or source.categories:
            indices = _examples(source, category)
            for batch in _batches(source, indices, batch_size):
                az, el, th = (np.asarray(x) for x in predict(variables, batch["image"]))
                for i, example_id in enumerate(batch["id"]):
                    records.append(
                        {
                            "id": example_id,
                            "category": category,
                            "level": level,
                            "pred": {"azimuth": az[i], "elevation": el[i], "theta": th[i]},
                            "true": {
                                "azimuth": batch["azimuth"][i],
                                "elevation": batch["elevation"][i],
                                "theta": batch["theta"][i],
                            },
                        }
                    )
    return records


def nemo_workdirs(root: str) -> dict[str, str]:
    """``{category: workdir}`` for a folder holding one NeMo training run per category."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: no such folder")
    runs = {
        name: os.path.join(root, name)
        for name in sorted(os.listdir(root))
        if os.path.isfile(os.path.join(root, name, "config.json"))
    }
    if not runs:
        raise FileNotFoundError(f"{root}: no training runs (sub-folders with config.json)")
    return runs


def figure_for_example(path: str, run, batch: dict, index: int, result) -> str:
    """NeMo's Figure 1 for example ``index`` of an evaluated ``batch`` (``run = load_run(...)``)."""
    from nemo_jax import viz
    from nemo_jax.inference.landscape import loss_landscape

    config, model, variables, mesh = run
    stride = int(config.model.get("stride", 8))
    if subtypes.is_stacked(mesh):  # one mesh per sub-type: the one the search chose
        mesh = subtypes.unstack(mesh)[int(batch["subtype"][index]) - 1]
    image = batch["image"][index]
    observed = model.apply(variables, _preprocess(image[None]), train=False)[0]
    focal_image_px = float(batch["focal"][index] * batch["viewport"][index])  # image pixels
    principal = np.array([batch["px"][index], batch["py"][index]], np.float32)
    pose = tuple(
        float(np.asarray(getattr(result, k))[index]) for k in ("azimuth", "elevation", "theta", "distance")
    )
    true_pose = tuple(float(batch[k][index]) for k in ("azimuth", "elevation", "theta", "distance"))
    h, w = observed.shape[:2]
    settings = RasterSettings(height=h, width=w, tile_height=4, tile_width=4, tile_budget=4 * len(mesh.faces))
    inputs = neural_mesh_inputs(
        mesh, observed, focal_image_px / stride, feature_coordinates(principal, stride), true_pose[3]
    )
    # Around the ground truth, as the paper draws it (the ground truth at each x-axis' centre).
    landscape = loss_landscape(
        inputs,
        true_pose,
        settings,
        num=41,
    )
    return viz.figure_one(
        path,
        image,
        np.asarray(mesh.vertices),
        np.asarray(mesh.faces),
        pose,
        focal_image_px,
        principal,
        np.asarray(result.occluder)[index],
        np.asarray(result.object_mask)[index],
        landscape=landscape,
        true_pose=true_pose,
        title=f"{batch['id'][index]}: error {_error_deg(pose, true_pose):.1f} deg",
    )


def _error_deg(pose, true_pose) -> float:
    pred = dict(zip(("azimuth", "elevation", "theta"), pose[:3], strict=True))
    true = dict(zip(("azimuth", "elevation", "theta"), true_pose[:3], strict=True))
    return float(np.degrees(eval_lib.rotation_error(pred, true)))


def figure_hook(run_dir: str, out_dir: str, category: str):
    """An ``on_batch`` callback for :func:`nemo_records` drawing Figure 1 for the first image of
    each occlusion level into ``out_dir/figure1_{category}_L{level}.png``."""
    state = {}

    def on_batch(batch, result):
        level = int(batch["occlusion_level"][0])
        if level in state:
            return
        state[level] = True
        if "run" not in state:
            state["run"] = load_run(run_dir)
        os.makedirs(out_dir, exist_ok=True)
        figure_for_example(
            os.path.join(out_dir, f"figure1_{category}_L{level}.png"), state["run"], batch, 0, result
        )

    return on_batch


def evaluate(
    workdir: str,
    dataset: str,
    data_dir: str,
    method: str = "nemo",
    levels: Sequence[int] = (0, 1, 2, 3),
    categories: Sequence[str] = (),
    manual_dir: str = "",
    options: dict | None = None,
    figures_dir: str = "",
    inference_overrides: dict | None = None,
    dtype: str = "",
    subtype: str | None = None,
) -> dict:
    """NeMo (or the baseline) on ``dataset``'s occlusion ``levels``: NeMo's results dict
        (:func:`nemo_jax.eval.evaluate_records`).

    ``workdir``: one NeMo training run (``config.json`` + checkpoints), a folder of runs (one per
    category), or the baseline's run (``method="baseline"``; ``categories`` then selects a subset).
    With ``manual_dir`` (a local release, as ``nemo-jax-build-data``'s), what ``data_dir`` lacks is
    built first with the builder ``options``. ``figures_dir``: NeMo's Figure 1 for the first image
    of each level. ``inference_overrides``: keys of the runs' ``inference`` settings to change
    (``{"steps": 100}``; :mod:`nemo_jax.inference.settings`). ``dtype``: NeMo's backbone compute
    dtype (default: each run's own, see :func:`nemo_records`). ``subtype``: ``"ground_truth"`` or
    ``"search"`` for runs with one mesh per CAD sub-type (default: the runs' ``inference.subtype``).
    """
    if method not in ("nemo", "baseline"):
        raise ValueError(f"evaluate: method must be 'nemo' or 'baseline', got {method!r}")
    if method == "nemo":
        if os.path.isfile(os.path.join(workdir, "config.json")):
            runs = {os.path.basename(os.path.normpath(workdir)): workdir}
        else:
            runs = nemo_workdirs(workdir)
    cats = list(categories)
    if manual_dir:
        if method == "nemo":
            cats = []
            for run_dir in runs.values():
                with open(os.path.join(run_dir, "config.json")) as fh:
                    cats.append(json.load(fh)["category"])
        ensure_datasets(dataset, data_dir, manual_dir, cats, options)
    if method == "baseline":
        records = baseline_records(workdir, dataset, data_dir, levels, cats or None)
    else:
        records = []
        for category, run_dir in runs.items():
            hook = figure_hook(run_dir, figures_dir, category) if figures_dir else None
            records += nemo_records(
                run_dir,
                dataset,
                data_dir,
                levels,
                inference_overrides=inference_overrides,
                on_batch=hook,
                dtype=dtype,
                subtype=subtype,
            )
    return eval_lib.evaluate_records(records)
