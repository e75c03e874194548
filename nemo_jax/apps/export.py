"""A trained NeMo run as ONE self-contained file for serving: the whole estimator as serialized
StableHLO (:mod:`jax.export`), loadable with jax and numpy alone (:mod:`nemo_jax.serving`).

The exported function maps uint8 crops ``[b, H, W, 3]`` of the run's crop size (``b`` symbolic:
any batch size) through the estimator as :mod:`nemo_jax.apps.estimate` runs it:

1. ImageNet normalisation (:func:`nemo_jax.models.preprocess`) and the run's backbone (inference
   mode, its trained weights baked in as constants);
2. the pose search with the run's ``inference`` settings (:mod:`nemo_jax.inference.settings`:
   the initial grid, the refinement, the rasterizer variant) against the run's neural mesh, in the
   crop's camera (focal 3000 image pixels, principal point at the crop's centre ``(W / 2, H / 2)``,
   the run's ``data.distance``);
3. the confidence, one separate step on the search's outputs (:func:`confidence_step`).

Outputs, a dict of arrays with leading ``[b]``: ``azimuth`` (``[0, 2 pi)``), ``elevation``,
``theta`` (RADIANS, PASCAL3D+ convention), ``distance`` (CAD units), ``loss`` (NeMo's),
``confidence`` (``[0, 1]``), ``occluder`` and ``object_mask`` (``[b, h, w]`` bool at the backbone's
feature resolution: object pixels where the clutter model wins, and the rendered object) and
``flags`` (:data:`FLAGS`: the reasons not to trust each pose, as the library gives them, the
uniform-image test included; a flagged crop's confidence is clipped to
:data:`nemo_jax.inference.confidence.CONFIDENCE_FLOOR`).

The artifact is a zip file (:data:`FORMAT`) of:

* ``estimator.stablehlo``: ``jax.export.Exported.serialize()`` bytes;
* ``meshes.npz``: the neural mesh (``vertices [V, 3]``, ``faces [F, 3]``, ``features [V, D]``,
  ``clutter [K, D]``), for drawing or inspecting the poses (the estimator holds its own copy);
* ``metadata.json``: category, crop size, angle units, camera convention, inference settings,
  confidence kind, jax version, platforms;
* ``manifest.json``: the format version and the SHA-256 of every other member, so a truncated or
  altered file is refused by name (the zip's CRC-32 covers the manifest itself).

Confidence. A run that stores a calibration (``calibration.json``,
:mod:`nemo_jax.inference.confidence`) exports the calibrated confidence (metadata ``"confidence":
"calibrated"``); for a run without one export fails unless ``allow_uncalibrated``, which exports
the documented uncalibrated score :func:`uncalibrated_confidence` and says ``"confidence":
"uncalibrated"`` in the metadata.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax import output

FORMAT = "nemo_jax.export/1"
ESTIMATOR, MESHES, METADATA, MANIFEST = "estimator.stablehlo", "meshes.npz", "metadata.json", "manifest.json"
CALIBRATION = "calibration.json"
OUTPUTS = ("azimuth", "elevation", "theta", "distance", "loss", "confidence", "occluder", "object_mask")
#: The output holding the reasons not to trust each pose (bool ``[B, F]``, names in the metadata's
#: ``flags``; :data:`nemo_jax.inference.confidence.FLAG_NAMES`); ``nemo_jax.serving`` turns it
#: into a list of names per crop. A flagged crop's confidence is clipped to the calibration's floor.
FLAGS = "flags"
#: Grid poses at least this far (radians) from the winner count as "far" in the confidence score.
FAR_ANGLE = np.pi / 2


def uncalibrated_confidence(result, grid: jax.Array) -> jax.Array:
    """The uncalibrated confidence ``[B]`` in ``[0, 1]`` of a batched search result.

    ``clip((far_loss - loss) / (null_loss - loss), 0, 1)``: how far the best initial-grid pose at
    least 90 degrees (geodesic) from the returned pose stays above the returned pose's loss, as a
    fraction of the returned pose's margin over no object at all (``null_loss``, every pixel left
    to the clutter model). 0: a pose 90+ degrees away (e.g. the front/back flip) explains the
    image as well, or the pose has no object evidence (``loss >= null_loss``); 1: no pose 90+
    degrees away beats an empty image. Not a probability: rank images with it, or calibrate.

    Args:
      result: :class:`nemo_jax.inference.PoseResult` with a leading ``[B]`` axis.
      grid: ``[G, 3]`` the search's initial grid (:func:`nemo_jax.inference.pose_grid`), radians.
    """
    from nemo_jax.geometry import geodesic_distance, rotation_from_viewpoint

    winner = rotation_from_viewpoint(result.azimuth, result.elevation, result.theta)  # [B, 3, 3]
    grid_rot = rotation_from_viewpoint(grid[:, 0], grid[:, 1], grid[:, 2])  # [G, 3, 3]
    far = geodesic_distance(winner[:, None], grid_rot[None]) >= FAR_ANGLE - 1e-4  # [B, G]
    far_loss = jnp.min(jnp.where(far, result.grid_loss, jnp.inf), axis=1)
    far_loss = jnp.minimum(far_loss, result.null_loss)  # none far (a one-pose grid): the empty image
    margin = result.null_loss - result.loss
    score = (far_loss - result.loss) / jnp.where(margin > 0, margin, 1.0)
    score = jnp.where((margin > 0) & jnp.isfinite(score), score, 0.0)
    return jnp.clip(score, 0.0, 1.0)


def _calibration_lib():
    """:mod:`nemo_jax.inference.confidence` (calibrated confidence), or None where this version of
    the package has none."""
    try:
        from nemo_jax.inference import confidence
    except ImportError:
        return None
    return confidence


def confidence_step(result, grid: jax.Array, calibration=None) -> jax.Array:
    """The estimator's confidence ``[B]`` in ``[0, 1]`` from the search's outputs: the run's
    calibration applied to the search's confidence features
    (:mod:`nemo_jax.inference.confidence`), or with ``calibration=None`` the uncalibrated score
    (:func:`uncalibrated_confidence`).

    Args:
      result: batched :class:`nemo_jax.inference.PoseResult`.
      grid: ``[G, 3]`` the search's initial grid, radians.
      calibration: ``nemo_jax.inference.confidence.Calibration`` or None.
    """
    if calibration is None:
        return uncalibrated_confidence(result, grid)
    lib = _calibration_lib()
    return lib.apply_calibration(calibration, lib.batch_features(result, grid))


def run_calibration(workdir: str, allow_uncalibrated: bool):
    """``(kind, calibration)``: ``("calibrated", Calibration)`` for a run that stores one
    (``calibration.json``; ``ValueError`` naming the file if it cannot be applied), else
    ``("uncalibrated", None)`` if ``allow_uncalibrated``, else ``ValueError`` naming the run and
    the way out."""
    path = os.path.join(workdir, CALIBRATION)
    if os.path.isfile(path):  # applied, or refused: never silently left out
        lib = _calibration_lib()
        if lib is None:
            raise ValueError(f"{path}: this version of nemo_jax cannot apply a stored calibration")
        return "calibrated", lib.load_calibration(path)  # ValueError naming the field if malformed
    if allow_uncalibrated:
        return "uncalibrated", None
    raise ValueError(
        f"{workdir}: the run stores no confidence calibration ({CALIBRATION}); calibrate it, or pass "
        "--allow_uncalibrated to export the uncalibrated confidence (metadata 'confidence': 'uncalibrated')"
    )


def check_run(workdir: str, category: str | None) -> None:
    """``ValueError`` (``FileNotFoundError`` for a missing run) naming the file before any work: a
    ``category`` the run was not trained for, or a per-sub-type run (several meshes)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not a training workdir (no config.json)")
    with open(path) as fh:
        known = [json.load(fh)["category"]]
    if category is not None and category not in known:
        raise ValueError(f"{path}: the run knows the category {known[0]!r} only, not {category!r}")
    mesh_json = os.path.join(workdir, "mesh.json")
    if os.path.isfile(mesh_json):
        with open(mesh_json) as fh:
            if "num_subtypes" in json.load(fh):
                raise ValueError(f"{mesh_json}: a per-sub-type run (num_subtypes); export takes one mesh")


def build_estimator(workdir: str, category: str | None = None, inference_overrides=None, step=None):
    """``(estimate, metadata, neural_mesh, grid)``: the run's estimator up to the confidence as one
    jittable function ``estimate(images uint8 [B, H, W, 3]) -> (outputs, result)`` (``outputs``:
    every entry of :data:`OUTPUTS` but ``confidence``; ``result``: the search's batched
    :class:`nemo_jax.inference.PoseResult`, for :func:`confidence_step`), the metadata describing
    it, the run's neural mesh and the search's initial grid ``[G, 3]`` (radians).

    ``category``, if given, must be the run's (``ValueError`` naming the run's otherwise)."""
    from nemo_jax import models
    from nemo_jax.geometry.camera import feature_coordinates
    from nemo_jax.inference import (
        pose_grid,
        run_settings,
        search_batch_unchecked,
        search_config_from_settings,
    )
    from nemo_jax.inference.search import SearchInputs
    from nemo_jax.mesh import clutter_feature
    from nemo_jax.train.run import load_run

    check_run(workdir, category)
    config, model, variables, mesh = load_run(workdir, step)
    where = os.path.join(workdir, "config.json")
    settings = run_settings(config, inference_overrides, where=where)
    for name, tree in (("weights", variables), ("neural mesh", mesh)):
        if not all(
            bool(np.all(np.isfinite(x))) for x in jax.tree.leaves(tree) if np.issubdtype(x.dtype, np.floating)
        ):
            raise ValueError(f"{workdir}: the checkpoint's {name} hold non-finite values")
    size = tuple(int(s) for s in config.data.image_size)
    stride = int(config.model.get("stride", 8))
    focal_px = 3000.0 / stride  # NeMo's focal 1 x viewport 3000 crop pixels, at feature resolution
    principal = np.asarray(feature_coordinates(np.array([size[1] / 2, size[0] / 2]), stride), np.float32)
    distance = float(config.data.distance)
    feature_shape = jax.eval_shape(
        lambda x: model.apply(variables, models.preprocess(x), train=False),
        jax.ShapeDtypeStruct((1, *size, 3), jnp.uint8),
    ).shape
    search_config = search_config_from_settings(
        settings, mesh, feature_shape[1:3], focal_px, principal, distance, where=where
    )
    grid = pose_grid(search_config)
    clutter = clutter_feature(mesh)

    def estimate(images):
        observed = model.apply(variables, models.preprocess(images), train=False)
        b = observed.shape[0]
        inputs = SearchInputs(
            observed=observed,
            vertex_features=mesh.features,
            clutter=jnp.broadcast_to(clutter, (b, clutter.shape[-1])),
            vertices=mesh.vertices,
            faces=mesh.faces.astype(jnp.int32),
            focal_px=jnp.full((b,), focal_px, jnp.float32),
            principal=jnp.broadcast_to(jnp.asarray(principal), (b, 2)),
            distance=jnp.full((b,), distance, jnp.float32),
        )
        result = search_batch_unchecked(inputs, search_config)
        out = {k: getattr(result, k) for k in OUTPUTS if k != "confidence"}
        return out, result

    metadata = {
        "format": FORMAT,
        "category": config.category,
        "image_size": list(size),
        "input": "uint8 [B, H, W, 3] RGB crops, B any size >= 1",
        "angle_units": "radians",
        "camera_convention": (
            "PASCAL3D+ viewpoint (azimuth, elevation, theta; NeMo's rotation Rz(theta) Rx(elevation - pi/2) "
            "Rz(-azimuth)), camera looking at the CAD origin from `distance` CAD units; crop camera: focal "
            f"3000 px, principal point at the crop centre (W / 2, H / 2) = ({size[1] / 2}, {size[0] / 2}) "
            "in pixel-centre coordinates"
        ),
        "distance_start": distance,
        "feature_map": [int(feature_shape[1]), int(feature_shape[2])],
        "stride": stride,
        "outputs": {
            "azimuth": "[B] radians in [0, 2 pi)",
            "elevation": "[B] radians",
            "theta": "[B] radians",
            "distance": "[B] CAD units",
            "loss": "[B] NeMo's loss at the pose",
            "confidence": "[B] in [0, 1]",
            "occluder": "[B, h, w] bool at feature resolution: object pixels the clutter model explains",
            "object_mask": "[B, h, w] bool at feature resolution: the rendered object",
        },
        "inference": {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.to_dict().items()},
        "run": os.path.basename(os.path.abspath(workdir)),  # the folder name, no local path
    }
    return estimate, metadata, mesh, grid


def export_run(
    workdir: str,
    out: str,
    category: str | None = None,
    allow_uncalibrated: bool = False,
    inference_overrides=None,
    platforms: tuple[str, ...] = ("cpu", "cuda"),
    step: int | None = None,
    log=print,
) -> dict:
    """Writes the run in ``workdir`` as one artifact ``out`` (see the module docstring); returns
    its metadata. ``platforms``: see :func:`lower` (a platform that jax cannot lower for here is
    dropped, its reason in the metadata's ``platforms_skipped``). The file appears whole or not at
    all, mode 0644 (less the umask); an existing ``out`` is replaced only if it is an earlier
    artifact (:func:`is_artifact`), and ``out`` is checked before anything is compiled."""
    out = output.check_output_file(out, "--out", is_artifact)
    check_run(workdir, category)
    check_platforms(platforms)
    kind, calibration = run_calibration(workdir, allow_uncalibrated)
    estimate, metadata, mesh, grid = build_estimator(workdir, category, inference_overrides, step)

    from nemo_jax.inference.confidence import FLAG_NAMES, clip_flagged, flag_bits

    def estimator(images):
        out, result = estimate(images)
        bits = flag_bits(result, images)  # [b, len(FLAG_NAMES)], as the library flags a crop
        # a flagged crop is worth no more than a guess, as in nemo_jax.apps.estimate
        out["confidence"] = clip_flagged(confidence_step(result, grid, calibration), jnp.any(bits, -1))
        out[FLAGS] = bits
        return {k: out[k] for k in (*OUTPUTS, FLAGS)}

    size = metadata["image_size"]
    args = jax.ShapeDtypeStruct(jax.export.symbolic_shape(f"b, {size[0]}, {size[1]}, 3"), jnp.uint8)
    exported, skipped = lower(estimator, args, platforms, log)
    metadata["outputs"][FLAGS] = "[B, F] bool: which of the metadata's 'flags' hold per crop"
    metadata.update(
        flags=list(FLAG_NAMES),
        confidence=kind,
        platforms=list(exported.platforms),
        platforms_skipped=skipped,
        jax_version=jax.__version__,
    )
    write_artifact(
        out, exported, {k: getattr(mesh, k) for k in ("vertices", "faces", "features", "clutter")}, metadata
    )
    return metadata


PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


def check_platforms(platforms) -> None:
    """``ValueError`` naming platform names jax.export does not know (jax itself accepts any)."""
    unknown = sorted(set(platforms) - set(PLATFORMS))
    if unknown:
        raise ValueError(f"platforms: unknown {unknown}; expected names from {list(PLATFORMS)}")


def lower(fn, args, platforms=("cpu", "cuda"), log=print):
    """``(exported, skipped)``: ``jax.export`` of ``jax.jit(fn)`` at ``args`` for ``platforms``
    (names from :data:`PLATFORMS`; ``cpu`` always included); if that fails, for ``cpu`` alone,
    with ``skipped = {platform: why}`` for the others (reported through ``log``)."""
    check_platforms(platforms)
    wanted = ("cpu", *(p for p in dict.fromkeys(platforms) if p != "cpu"))
    try:
        return jax.export.export(jax.jit(fn), platforms=wanted)(args), {}
    except Exception as err:  # noqa: BLE001 (lowering errors come in many types)
        if wanted == ("cpu",):
            raise
        why = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
        skipped = {p: why for p in wanted[1:]}
        log(f"export: cannot lower for {list(wanted[1:])} with jax {jax.__version__} ({why}); cpu only")
    return jax.export.export(jax.jit(fn), platforms=("cpu",))(args), skipped


def is_artifact(path: str) -> bool:
    """Whether ``path`` is a zip whose manifest says it is an artifact of this format family (an
    earlier export, which ``export_run`` may replace)."""
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read(MANIFEST))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    return isinstance(manifest, dict) and str(manifest.get("format", "")).startswith(FORMAT.split("/")[0])


def write_artifact(out: str, exported, meshes: dict, metadata: dict) -> None:
    """Writes the zip ``out`` (see the module docstring) from a :class:`jax.export.Exported`, the
    mesh arrays and the metadata; atomically (a scratch file renamed into place)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in meshes.items()})
    members = {
        ESTIMATOR: bytes(exported.serialize()),
        MESHES: buffer.getvalue(),
        METADATA: json.dumps(metadata, indent=1).encode(),
    }
    manifest = {"format": FORMAT, "sha256": {k: hashlib.sha256(v).hexdigest() for k, v in members.items()}}
    out = os.path.abspath(out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fd, scratch = tempfile.mkstemp(prefix=f".{os.path.basename(out)}-", dir=os.path.dirname(out))
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(MANIFEST, json.dumps(manifest, indent=1))
            for name, payload in members.items():
                zf.writestr(name, payload)
        output.replace_file(scratch, out)
    except OSError as err:  # disk full, permissions: name the path, not the scratch file
        raise OSError(f"--out {out}: cannot write the artifact ({err.strerror or err})") from None
    finally:
        if os.path.exists(scratch):
            os.remove(scratch)
