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
from nemo_jax import output
from nemo_jax.apps import calibrate as calibrate_lib
from nemo_jax.data.canvas import offset as canvas_offset
from nemo_jax.data.canvas import pad_batch_to_canvas
from nemo_jax.eval import occluder as occluder_lib
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
from nemo_jax.inference import confidence as confidence_lib
from nemo_jax.inference.search import pose_grid
from nemo_jax.inference.settings import search_fields
from nemo_jax.mesh import clutter_model, subtypes
from nemo_jax.render import RasterSettings
from nemo_jax.train import category_data
from nemo_jax.train.checkpoint import restored_checkpoints
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
    category_mode: str = "ground_truth",
    categories: Sequence[str] = (),
) -> list[dict]:
    """Prediction records of the NeMo run in ``workdir`` (one category, or a shared run of several:
    ``category_mode`` and ``categories`` as :func:`shared_records`) on ``levels``.

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
    if settings.clutter_clusters != 1 and (
        category_data.is_shared_config(config) or subtypes.is_stacked(mesh)
    ):
        raise ValueError(
            f"{workdir}: inference.clutter_clusters={settings.clutter_clusters} needs a run with one neural "
            "mesh (not per-sub-type or shared-category meshes)"
        )
    if category_data.is_shared_config(config):
        return shared_records(
            workdir, config, model, variables, mesh, dataset, data_dir, levels, batch_size,
            settings, on_batch, category_mode, categories,
        )  # fmt: skip
    if category_mode != "ground_truth":
        raise ValueError(
            f"{workdir}: category_mode={category_mode!r} needs a run trained on several categories "
            f"(config.categories); this run knows only {config.category!r}"
        )
    category = config.category
    if categories and list(categories) != [category]:
        unknown = [c for c in categories if c != category]
        raise ValueError(f"{workdir}: category {unknown[0]!r} is not the run's; it knows only [{category!r}]")
    stacked = subtypes.is_stacked(mesh)
    if stacked:
        return _subtype_records(
            workdir, config, model, variables, mesh, dataset, data_dir, levels, batch_size,
            settings, on_batch, subtype or settings.subtype,
        )  # fmt: skip
    clutter = clutter_model(mesh, int(settings.clutter_clusters))  # [C] or [N, C]
    features_fn = jax.jit(lambda variables, images: model.apply(variables, _preprocess(images), train=False))
    devices = sharding.image_mesh()  # every batch is spread over all local devices
    variables = sharding.replicate(variables, devices)
    records, search_config = [], None
    calibration = confidence_lib.load_calibration(workdir)
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
            # the occluder scores' stack of one mesh, on every device as the mesh is
            stack = {"vertex_features": vertex_features[None], "clutter": jnp.asarray(clutter)[None]}
            stack = sharding.replicate(dict(stack, vertices=vertices[None], faces=faces[None]), devices)
        per_image = (np.broadcast_to(np.asarray(clutter, np.float32), (b, *clutter.shape)),)
        per_image += tuple(np.asarray(x, np.float32) for x in (focal_px, principal, batch["distance"]))
        (clutters, *camera), _ = sharding.shard_images(per_image, devices)  # padded like observed
        inputs = SearchInputs(observed, vertex_features, clutters, vertices, faces, *camera)
        result = _checked(sharding.unpad(search_batch(inputs, search_config), b))
        occluder = _occluder_counts(
            batch, inputs, stack, search_config.raster, result, np.zeros(b, np.int32),
            np.zeros(b, np.int32), _stride(config), devices,
        )  # fmt: skip
        records += _batch_records(
            result, batch, category, level, pose_grid(search_config), calibration, occluder
        )
        if on_batch is not None:
            on_batch(_with_iou(batch, occluder), result)
    return records


def _stride(config) -> int:
    return int(config.model.get("stride", 8))


def _occluder_counts(
    batch, inputs, stack, settings, result, chosen, truth, stride, devices=None, offset=(0, 0)
):
    """NeMo's occluder map scored against ``batch``'s ``occluder_mask`` at the predicted and at the
    true pose (:func:`nemo_jax.eval.occluder.batch_counts`), or ``None`` when the data has no
    occluder mask. ``inputs``: the batch's :class:`SearchInputs` (``observed [B', h, w, C]``,
    ``focal_px``, ``principal``, possibly padded to ``B' >= B`` and split over ``devices``);
    ``stack``: ``vertex_features``, ``clutter``, ``vertices``, ``faces`` of the ``S`` meshes (a
    leading ``[S]`` axis); ``chosen [B]`` / ``truth [B]``: the mesh of each image's predicted pose
    (the search's choice) and of its true pose (the annotated one). A render that dropped tiles is a
    RuntimeError, as in the search."""
    if "occluder_mask" not in batch:
        return None
    b = len(batch["id"])
    pred = [np.asarray(getattr(result, k), np.float32) for k in ("azimuth", "elevation", "theta", "distance")]
    true = [np.asarray(batch[k], np.float32) for k in ("azimuth", "elevation", "theta", "distance")]
    poses = np.stack([np.stack(pred, -1), np.stack(true, -1)], 1)  # [B, 2, 4]
    index = np.stack([np.asarray(chosen), np.asarray(truth)], 1).astype(np.int32)  # [B, 2]
    if devices is not None:  # padded and split like the features
        (poses, index), _ = sharding.shard_images((poses, index), devices)
    score, obj, overflow = occluder_lib.pose_scores(
        inputs.observed, stack["vertex_features"], stack["clutter"], stack["vertices"], stack["faces"],
        inputs.focal_px, inputs.principal, jnp.asarray(poses), jnp.asarray(index), settings,
    )  # fmt: skip
    score, obj, overflow = sharding.unpad((score, obj, overflow), b)
    if int(np.max(overflow)) > 0:
        raise RuntimeError("occluder scores: tile budget overflow; raise the search tile budget")
    return occluder_lib.batch_counts(batch, score, obj, stride, offset)


def _with_iou(batch: dict, occluder) -> dict:
    """``batch`` with ``occluder_iou`` ``[B]`` (each image's occluder IoU at the predicted pose, None
    where undefined) for the figures, when ``occluder`` (:func:`_occluder_counts`) has them."""
    if occluder is None:
        return batch
    return dict(batch, occluder_iou=[occluder_lib.image_iou(o["predicted_pose"]) for o in occluder])


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
    records, setup = [], {}
    calibration = confidence_lib.load_calibration(workdir)
    for level, batch, focal_px, principal in _level_batches(
        workdir, config, dataset, data_dir, levels, batch_size
    ):
        labels = check_subtypes(workdir, num_subtypes, batch)
        observed = features_fn(batch["image"])
        result, chosen = _stacked_search(
            mesh, settings, setup, observed, batch, focal_px, principal, labels, mode
        )
        occluder = _stacked_occluder_counts(
            setup, observed, batch, focal_px, principal, result, chosen, labels, config
        )
        batch_records = _batch_records(
            result, batch, category, level, pose_grid(setup["config"]), calibration, occluder
        )
        for record, s, true_s in zip(batch_records, np.asarray(chosen), labels, strict=True):
            record.update(subtype=int(s) + 1, true_subtype=int(true_s) + 1, subtype_mode=mode)
        records += batch_records
        if on_batch is not None:  # figures draw the chosen sub-type's mesh
            on_batch(dict(_with_iou(batch, occluder), subtype=np.asarray(chosen) + 1), result)
    return records


def _stacked_search(mesh, settings, setup: dict, observed, batch, focal_px, principal, labels, mode):
    """One batch searched against a stacked neural mesh (one mesh per sub-type or category,
    :func:`nemo_jax.inference.search_subtypes` in ``mode``, ``labels [B]`` the annotated indices).
    ``setup`` caches the search config (``"config"``) and mesh inputs of the first batch. Returns
    ``(result, chosen [B])``; a tile-budget overflow is a RuntimeError."""
    if not setup:
        _, h, w, _ = observed.shape
        setup["config"], setup["mesh"] = stacked_search_setup(
            mesh, (h, w), float(focal_px[0]), principal[0], float(batch["distance"][0]),
            variant=settings.variant, **search_fields(settings),
        )  # fmt: skip
    camera = [jnp.asarray(x, jnp.float32) for x in (focal_px, principal, batch["distance"])]
    inputs = SearchInputs(
        observed, **setup["mesh"], focal_px=camera[0], principal=camera[1], distance=camera[2]
    )
    result, chosen, _ = search_subtypes(inputs, jnp.asarray(labels), setup["config"], mode)
    return _checked(result), chosen


def _stacked_occluder_counts(
    setup, observed, batch, focal_px, principal, result, chosen, labels, config, offset=(0, 0)
):  # fmt: skip
    """:func:`_occluder_counts` after :func:`_stacked_search` (``setup`` as it fills it): the
    predicted pose renders the chosen mesh, the true pose the annotated one (``labels [B]``)."""
    if "occluder_mask" not in batch:
        return None
    camera = [jnp.asarray(x, jnp.float32) for x in (focal_px, principal, batch["distance"])]
    inputs = SearchInputs(
        observed, **setup["mesh"], focal_px=camera[0], principal=camera[1], distance=camera[2]
    )
    return _occluder_counts(
        batch, inputs, setup["mesh"], setup["config"].raster, result, chosen, labels, _stride(config),
        offset=offset,
    )  # fmt: skip


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


def _batch_records(
    result, batch, category, level: int, grid=None, calibration=None, occluder=None
) -> list[dict]:
    """Prediction records of one searched batch (see :func:`nemo_jax.eval.records_from_search`);
    ``category``: one name for the batch or a list, one per image. With the search's ``grid``
    (:func:`nemo_jax.inference.pose_grid`) each record gets its confidence features and, with a
    ``calibration``, its ``confidence`` (:mod:`nemo_jax.inference.confidence`). ``occluder``: per
    image, the occluder map's counts at the predicted and the true pose (:func:`_occluder_counts`),
    stored as each record's ``occluder``."""
    b = len(batch["id"])
    names = [category] * b if isinstance(category, str) else list(category)
    confidence = None if grid is None else confidence_lib.batch_outputs(result, grid, calibration)
    truth = (batch["azimuth"], batch["elevation"], batch["theta"])
    ids, levels = batch["id"], [level] * b
    records = eval_lib.records_from_search(result, ids, names, levels, *truth, confidence=confidence)
    for record, counts in zip(records, occluder or [None] * b, strict=True):
        if counts is not None:
            record["occluder"] = counts
    return records


CATEGORY_MODES = ("ground_truth", "search")


def shared_records(
    workdir, config, model, variables, mesh, dataset, data_dir, levels, batch_size, settings,
    on_batch=None, category_mode="ground_truth", categories=(),
) -> list[dict]:  # fmt: skip
    """:func:`nemo_records` for a run with one backbone and one neural mesh per category
    (``config.categories``; ``mesh.vertices [C, V, 3]``): every category's images from one checkpoint.

    ``category_mode``: ``"ground_truth"`` searches each image against its annotated category's mesh;
    ``"search"`` searches every category's mesh and keeps the lowest loss (the category is
    inferred). Records carry ``category_mode``, and in ``"search"`` ``pred_category`` (the chosen
    mesh's category) beside ``category`` (the annotation). ``categories``: a subset of the run's
    to evaluate (default: all); a name the run does not know is a ValueError listing the known ones.
    Images smaller than the run's canvas (``config.data.image_size``) are pasted onto it as in
    training (:mod:`nemo_jax.data.canvas`).
    """
    if category_mode not in CATEGORY_MODES:
        raise ValueError(f"category_mode {category_mode!r} is not one of {CATEGORY_MODES}")
    known = category_data.shared_categories(config)
    for name in categories:
        category_data.category_index(known, name, f"{workdir} (mesh.json)")
    wanted = list(categories) or list(known)
    canvas = tuple(int(s) for s in config.data.image_size)
    stride = int(config.model.get("stride", 8))
    features_fn = jax.jit(lambda images: model.apply(variables, _preprocess(images), train=False))
    calibration = confidence_lib.load_calibration(workdir)
    records, setup = [], {}
    for level in levels:
        source = level_source(dataset, level, data_dir)
        indices = []
        for name in wanted:  # every category's images in one sequence: mixed batches, one shape
            idx = _examples(source, name)
            if not idx:
                raise ValueError(f"{source.path}: no {name!r} examples in split {source.split}")
            indices += idx
        for batch in _batches(source, indices, batch_size):
            got = tuple(int(v) for v in np.shape(batch["image"])[1:3])
            if got[0] > canvas[0] or got[1] > canvas[1]:
                raise ValueError(
                    f"{source.path} [{source.split}]: images of {got[0]}x{got[1]} are larger than the "
                    f"run's {canvas[0]}x{canvas[1]} canvas (config.data.image_size, {workdir})"
                )
            offset = canvas_offset(got, canvas)  # where the crop's masks lie on the canvas
            batch = pad_batch_to_canvas(batch, canvas)
            observed = features_fn(batch["image"])
            names = [source.categories[int(c)] for c in np.asarray(batch["category"]).reshape(-1)]
            labels = np.array([known.index(n) for n in names], np.int32)
            focal_px = batch["focal"] * batch["viewport"] / stride
            principal = feature_coordinates(np.stack([batch["px"], batch["py"]], -1), stride)
            result, chosen = _stacked_search(
                mesh, settings, setup, observed, batch, focal_px, principal, labels, category_mode
            )
            occluder = _stacked_occluder_counts(
                setup, observed, batch, focal_px, principal, result, chosen, labels, config, offset
            )
            batch_records = _batch_records(
                result, batch, names, level, pose_grid(setup["config"]), calibration, occluder
            )
            for record, c in zip(batch_records, np.asarray(chosen), strict=True):
                record["category_mode"] = category_mode
                if category_mode == "search":  # the inferred category (else the annotated one)
                    record["pred_category"] = known[int(c)]
            records += batch_records
            if on_batch is not None:  # figures draw the searched (chosen) category's mesh
                on_batch(
                    dict(_with_iou(batch, occluder), subtype=np.asarray(chosen) + 1, category=names), result
                )
    return records


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
    """Prediction records of the baseline saved in ``workdir``, either variant
    (:func:`nemo_jax.baseline.load_predictor`): Res50-General (one classifier run) or Res50-Specific
    (one run per category in ``workdir/<category>/``, each category's images scored by its own
    classifier). ``categories`` default: those a Specific baseline has classifiers for, else every
    category of the data; a category without a classifier is a ValueError naming ``workdir``."""
    from nemo_jax.baseline import load_predictor

    records, predictor = [], None
    for level in levels:
        source = level_source(dataset, level, data_dir)
        if predictor is None:
            predictor = load_predictor(workdir, tuple(source[0]["image"].shape))
        for category in categories or predictor.categories or source.categories:
            indices = _examples(source, category)
            for batch in _batches(source, indices, batch_size):
                az, el, th = predictor(batch["image"], category)
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
    """NeMo's Figure 1 for example ``index`` of an evaluated ``batch`` (``run = load_run(...)``);
    the title gives the rotation error and, where the data has occluder masks, the image's occluder
    IoU at the predicted pose (``batch["occluder_iou"]``, as :func:`nemo_records` passes it)."""
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
        title=f"{batch['id'][index]}: error {_error_deg(pose, true_pose):.1f} deg{_iou_text(batch, index)}",
    )


def _iou_text(batch: dict, index: int) -> str:
    """``", occluder IoU 0.53"`` for Figure 1's title when the evaluation scored the image's
    occluder map (``batch["occluder_iou"]``, :func:`_with_iou`; ``n/a`` when neither the predicted
    nor the true occluded region has a cell), else nothing."""
    ious = batch.get("occluder_iou")
    if ious is None:
        return ""
    iou = ious[index]
    return ", occluder IoU " + ("n/a" if iou is None else f"{iou:.2f}")


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
        names = batch.get("category", [category] * len(batch["id"]))  # a shared run: per image
        for index, name in enumerate(names):
            if (name, level) in state:
                continue
            state[(name, level)] = True
            if "run" not in state:
                state["run"] = load_run(run_dir)
            os.makedirs(out_dir, exist_ok=True)
            figure_for_example(
                os.path.join(out_dir, f"figure1_{name}_L{level}.png"), state["run"], batch, index, result
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
    calibrate: bool = False,
    category_mode: str = "ground_truth",
) -> dict:
    """NeMo (or the baseline) on ``dataset``'s occlusion ``levels``: NeMo's results dict
        (:func:`nemo_jax.eval.evaluate_records`).

    Confidence (NeMo): a run with a ``calibration.json`` gives every prediction a ``confidence``
    and the results their ECE and AUROC; ``calibrate=True`` first fits that file on these images
    (a validation set, :mod:`nemo_jax.apps.calibrate`), replacing the run's. ``figures_dir`` then
    also gets ``reliability.png`` and ``selective_accuracy.png``.

    ``workdir``: one NeMo training run (``config.json`` + checkpoints), a folder of runs (one per
    category), or the baseline's run (``method="baseline"``; ``categories`` then selects a subset).
    With ``manual_dir`` (a local release, as ``nemo-jax-build-data``'s), what ``data_dir`` lacks is
    built first with the builder ``options``. ``figures_dir``: NeMo's Figure 1 for the first image
    of each level and, on data with occluder masks, :func:`occluder_figure`.
    ``inference_overrides``: keys of the runs' ``inference`` settings to change (``{"steps": 100}``;
    :mod:`nemo_jax.inference.settings`). ``dtype``: NeMo's backbone compute
    dtype (default: each run's own, see :func:`nemo_records`). ``subtype``: ``"ground_truth"`` or
    ``"search"`` for runs with one mesh per CAD sub-type (default: the runs' ``inference.subtype``).
    A run of one backbone for several categories (``config.categories``) scores all of them (or
    ``categories``); ``category_mode="search"`` then infers each image's category too (records'
    ``pred_category``, the results' ``category_acc``; see :func:`shared_records`).
    ``categories`` names a category no run knows: a ValueError listing the known ones.
    """
    if method not in ("nemo", "baseline"):
        raise ValueError(f"evaluate: method must be 'nemo' or 'baseline', got {method!r}")
    check_method(workdir, method)
    if method == "nemo":
        if os.path.isfile(os.path.join(workdir, "config.json")):
            runs = {os.path.basename(os.path.normpath(workdir)): workdir}
        else:
            runs = nemo_workdirs(workdir)
    cats = list(categories)
    run_cats = {}
    if method == "nemo":
        for name, run_dir in runs.items():
            with open(os.path.join(run_dir, "config.json")) as fh:
                stored = json.load(fh)
            run_cats[name] = list(stored.get("categories") or [stored["category"]])
        known = [c for names in run_cats.values() for c in names]
        for name in cats:
            if name not in known:
                raise ValueError(f"{workdir}: category {name!r} is not one of the run's categories {known}")
        if cats:  # only the runs holding a requested category
            runs = {k: v for k, v in runs.items() if set(run_cats[k]) & set(cats)}
    if manual_dir:
        if method == "nemo":
            cats = cats or [c for k in runs for c in run_cats[k]]
        ensure_datasets(dataset, data_dir, manual_dir, cats, options)
    if calibrate and method == "nemo":
        for run_dir in runs.values():
            calibrate_lib.check_not_training_data(run_dir, data_dir)
    with (
        output.output_folder(figures_dir if method == "nemo" else "", "evaluate", "--figures") as figures,
        restored_checkpoints() as scored,
    ):
        results = _evaluate(
            workdir, dataset, data_dir, method, levels, cats, runs if method == "nemo" else {}, run_cats,
            figures, inference_overrides, dtype, subtype, calibrate, category_mode,
        )  # fmt: skip
    results["checkpoints"] = scored  # [{"workdir", "step", "path"}]: what was scored
    return results


def check_method(workdir: str, method: str) -> None:
    """A ValueError saying which ``--method`` fits when ``workdir`` holds the other kind of run: a
    NeMo run has a ``mesh.json`` beside its ``config.json``, the baseline's has none."""
    config = os.path.join(workdir, "config.json")
    if not os.path.isfile(config):
        return  # a folder of runs, or nothing: named by the readers
    nemo = os.path.isfile(os.path.join(workdir, "mesh.json"))
    if method == "baseline" and nemo:
        raise ValueError(
            f"--workdir {workdir}: holds a NeMo run (mesh.json), not the baseline's; "
            "drop --method baseline (or pass --method nemo)"
        )
    if method == "nemo" and not nemo:
        raise ValueError(
            f"--workdir {workdir}: holds no NeMo run (no mesh.json beside config.json), e.g. the "
            "baseline's; pass --method baseline"
        )


def _evaluate(
    workdir, dataset, data_dir, method, levels, cats, runs, run_cats, figures_dir, inference_overrides,
    dtype, subtype, calibrate, category_mode,
) -> dict:  # fmt: skip
    """:func:`evaluate` after its checks; figures (if ``figures_dir``) written there."""
    if method == "baseline":
        records = baseline_records(workdir, dataset, data_dir, levels, cats or None)
    else:
        records = []
        for category, run_dir in runs.items():
            hook = figure_hook(run_dir, figures_dir, category) if figures_dir else None
            run_records = nemo_records(
                run_dir,
                dataset,
                data_dir,
                levels,
                inference_overrides=inference_overrides,
                on_batch=hook,
                dtype=dtype,
                subtype=subtype,
                category_mode=category_mode,
                categories=[c for c in cats if c in run_cats[category]],
            )
            if calibrate:
                sources = [level_source(dataset, level, data_dir) for level in levels]
                fitted = calibrate_lib.fitted_on(dataset, data_dir, levels, sources)
                run_records = calibrate_lib.calibrate_run(run_dir, run_records, fitted)
            records += run_records
    results = eval_lib.evaluate_records(records)
    if figures_dir and method == "nemo":
        calibrate_lib.confidence_figures(figures_dir, results)
        occluder_figure(figures_dir, results, title=f"NeMo on {dataset}, all categories")
    return results


#: The file name of :func:`occluder_figure` in a figures folder.
OCCLUDER_FIGURE = "occluder_vs_occlusion.png"


def occluder_figure(
    figures_dir: str, nemo: dict, baseline: dict | None = None, title: str = ""
) -> str | None:
    """``figures_dir/occluder_vs_occlusion.png``: NeMo's occluder AUROC (at the predicted and the true
    pose) and Acc@pi/6 against occlusion level, the baseline's accuracy beside it if given
    (:func:`nemo_jax.viz.occluder_vs_occlusion`); nothing (``None``) when the results hold no
    occluder measures (data without occluder masks)."""
    from nemo_jax import viz  # noqa: PLC0415 (matplotlib only when drawing)

    if not any("occluder_auroc" in r for r in nemo["results"]["mean"].values()):
        return None
    return viz.occluder_vs_occlusion(os.path.join(figures_dir, OCCLUDER_FIGURE), nemo, baseline, title=title)
