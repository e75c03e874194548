"""The train step: augment -> project + visibility -> backbone -> contrastive loss -> AdamW update,
memory-bank momentum update and clutter-queue push. One pure function of ``(state, batch)``, jitted
once at the outermost level with the state donated.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import PartitionSpec

from nemo_jax.geometry.camera import camera_from_viewpoint, feature_coordinates
from nemo_jax.mesh import subtypes
from nemo_jax.mesh.neural import momentum_update, push_clutter
from nemo_jax.models import layers
from nemo_jax.train import augment, contrastive, occluders, parallel
from nemo_jax.train.state import TrainState
from nemo_jax.train.visibility import vertex_view

BATCH_FIELDS = ("image", "azimuth", "elevation", "theta", "distance", "px", "py", "focal", "viewport")
# The extra field a per-sub-type mesh reads (1-based, as PASCAL3D+'s cad_index).
SUBTYPE_FIELD = "cad_index"
# The extra field a shared multi-category run reads (0-based index into ``config.categories``); it
# selects the image's neural mesh from the stacked meshes as ``cad_index`` does for sub-types.
CATEGORY_FIELD = "category_index"
#: Batch fields the step uses when present: ``box [B, 4]`` (x0, y0, x1, y1) image pixels, the region
#: where a vertex may count as visible when ``StepConfig.visibility_in_box`` (the object's box within
#: the image; default: the whole image).
OPTIONAL_FIELDS = ("box",)


def full_box(height: int, width: int) -> np.ndarray:
    """``[4]`` float32 box covering every pixel of an ``(height, width)`` image (pixel extents)."""
    return np.array([-0.5, -0.5, width - 0.5, height - 0.5], np.float32)


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Static settings of the train step (hashable). Angles in radians, distances in image pixels
    unless stated."""

    image_size: tuple[int, int]
    feature_stride: int = 8
    render_stride: int = 2
    render_tile: int = 8
    visibility_tolerance: float = 0.5  # mean mesh edge lengths
    temperature: float = 0.07
    distance_thr: float = 48.0  # image pixels between projections
    clutter_weight: float = 5e-3
    reg_weight: float = 0.1
    momentum: float = 0.9
    clutter_per_image: int = 5
    flip_prob: float = 0.5
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    # Random shift (pixels, uniform per axis) and zoom (log-uniform in ``scale_range``) of the image
    # about its centre, the camera moved with it (:func:`nemo_jax.train.augment.shift_scale_example`).
    # ``shift_px = 0`` and ``scale_range = (1, 1)``: off (no draws, the step as without the option).
    shift_px: float = 0.0
    scale_range: tuple[float, float] = (1.0, 1.0)
    # Shared multi-category runs: other categories' vertices as negatives, and per-category flip
    # probabilities (``None``: ``flip_prob`` for every image).
    cross_category_negatives: bool = False
    category_flip_probs: tuple[float, ...] | None = None
    # NeMo's rule: a vertex counts as visible only inside the example's ``box`` field (when the batch
    # has one), grown by ``visibility_box_margin`` times the box's width / height on each side.
    # False: the whole image bounds visibility and the box is not read.
    visibility_in_box: bool = False
    visibility_box_margin: float = 0.0
    # Occluder augmentation (:mod:`nemo_jax.train.occluders`): with probability ``occluder_prob`` an
    # image gets a patch of another batch image pasted over its object through a rectangle or an
    # ellipse covering ``occluder_fraction`` (low, high) of the object's box. 0: off (no draws).
    occluder_prob: float = 0.0
    occluder_fraction: tuple[float, float] = (0.2, 0.6)

    @classmethod
    def from_config(cls, config) -> StepConfig:
        t = config.train
        return cls(
            image_size=tuple(int(s) for s in config.data.image_size),
            feature_stride=int(config.model.get("stride", 8)),
            render_stride=int(t.render_stride),
            render_tile=int(t.render_tile),
            visibility_tolerance=float(t.visibility_tolerance),
            temperature=float(t.temperature),
            distance_thr=float(t.distance_thr),
            clutter_weight=float(t.clutter_weight),
            reg_weight=float(t.reg_weight),
            momentum=float(t.momentum),
            clutter_per_image=int(t.clutter_per_image),
            flip_prob=float(t.flip_prob),
            brightness=float(t.brightness),
            contrast=float(t.contrast),
            saturation=float(t.saturation),
            shift_px=float(t.get("shift_px", 0.0)),
            scale_range=_scale_range(t.get("scale_range", (1.0, 1.0))),
            cross_category_negatives=bool(t.get("cross_category_negatives", False)),
            category_flip_probs=_category_flip_probs(config),
            visibility_in_box=bool(t.get("visibility_in_box", False)),
            visibility_box_margin=_box_margin(t.get("visibility_box_margin", 0.0)),
            occluder_prob=_probability("occluder_augment", t.get("occluder_augment", 0.0)),
            occluder_fraction=_fraction(t.get("occluder_fraction", (0.2, 0.6))),
        )


def _probability(name: str, value) -> float:
    """``config.train.<name>`` as a probability in [0, 1]."""
    p = float(value)
    if not 0 <= p <= 1:
        raise ValueError(f"config.train.{name}: expected a probability in [0, 1], got {value}")
    return p


def _fraction(value) -> tuple[float, float]:
    """``config.train.occluder_fraction`` as ``(low, high)`` with ``0 < low <= high <= 1``."""
    lo, hi = (float(v) for v in value)
    if not (0 < lo <= hi <= 1):
        raise ValueError(
            f"config.train.occluder_fraction: expected (low, high) with 0 < low <= high <= 1, got {value}"
        )
    return lo, hi


def _box_margin(value) -> float:
    """``config.train.visibility_box_margin``: a finite fraction >= 0 of the box size."""
    margin = float(value)
    if not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"config.train.visibility_box_margin: expected a finite number >= 0, got {value}")
    return margin


def _scale_range(value) -> tuple[float, float]:
    """``config.train.scale_range`` as ``(low, high)`` with ``0 < low <= high``."""
    lo, hi = (float(v) for v in value)
    if not (0 < lo <= hi):
        raise ValueError(f"config.train.scale_range: expected (low, high) with 0 < low <= high, got {value}")
    return lo, hi


def _category_flip_probs(config) -> tuple[float, ...] | None:
    """Per category of a shared run, ``train.flip_prob`` or 0 for ``train.no_flip_categories``."""
    categories = tuple(config.get("categories", ()) or ())
    if not categories:
        return None
    no_flip = set(config.train.get("no_flip_categories", ()) or ())
    unknown = sorted(no_flip - set(categories))
    if unknown:
        raise ValueError(
            f"config.train.no_flip_categories: {unknown} not in config.categories {list(categories)}"
        )
    return tuple(0.0 if c in no_flip else float(config.train.flip_prob) for c in categories)


def stack_index(batch: dict) -> jax.Array:
    """``[B]`` int32 0-based index into a stacked neural mesh: the batch's ``category_index`` (shared
    multi-category run) or ``cad_index - 1`` (per-sub-type meshes)."""
    if CATEGORY_FIELD in batch:
        return jnp.asarray(batch[CATEGORY_FIELD]).astype(jnp.int32)
    return jnp.asarray(batch[SUBTYPE_FIELD]).astype(jnp.int32) - 1


def visibility_boxes(batch: dict, cfg: StepConfig) -> jax.Array:
    """``[B, 4]`` float32 ``(x0, y0, x1, y1)`` image pixels bounding each image's visible vertices:
    with ``cfg.visibility_in_box`` and a ``box`` field, that box grown by
    ``cfg.visibility_box_margin`` times its width (x) and height (y) on each side; otherwise the
    whole image (:func:`full_box`)."""
    b = batch["azimuth"].shape[0]
    boxes = batch.get("box") if cfg.visibility_in_box else None
    if boxes is None:
        return jnp.broadcast_to(jnp.asarray(full_box(*cfg.image_size)), (b, 4))
    boxes = jnp.asarray(boxes, jnp.float32)
    if cfg.visibility_box_margin > 0:
        size = boxes[:, 2:] - boxes[:, :2]  # [B, 2] width, height
        grow = cfg.visibility_box_margin * size
        boxes = jnp.concatenate([boxes[:, :2] - grow, boxes[:, 2:] + grow], axis=1)
    return boxes


def views(state_mesh, batch: dict, cfg: StepConfig):
    """Per-image vertex projections / visibility / object footprint. Batch fields ``[B]``; with
    ``cfg.visibility_in_box`` and a ``box [B, 4]`` field, vertices outside an image's box (grown by
    ``cfg.visibility_box_margin``) are not visible (:func:`visibility_boxes`).

    ``state_mesh``: one mesh (``vertices [V, 3]``, ``faces [F, 3]``) for the whole batch, or one per
    image (``vertices [B, V, 3]``, ``faces [B, F, 3]``; ``-1`` face rows are padding)."""
    cams = jax.vmap(camera_from_viewpoint)(
        batch["azimuth"], batch["elevation"], batch["theta"], batch["distance"],
        batch["px"], batch["py"], batch["focal"], batch["viewport"],
    )  # fmt: skip
    boxes = visibility_boxes(batch, cfg)
    axis = 0 if state_mesh.vertices.ndim == 3 else None
    return jax.vmap(
        lambda cam, box, vertices, faces: vertex_view(
            vertices,
            faces,
            cam,
            cfg.image_size,
            cfg.feature_stride,
            cfg.render_stride,
            cfg.visibility_tolerance,
            cfg.render_tile,
            box=box,
        ),  # fmt: skip
        in_axes=(0, 0, axis, axis),
    )(cams, boxes, state_mesh.vertices, state_mesh.faces)


def augment_batch(key: jax.Array, batch: dict, cfg: StepConfig, perm, shard=None) -> dict:
    """Random flips, shifts and zooms (when ``cfg.shift_px`` / ``cfg.scale_range`` ask for them) and
    colour jitter; returns the batch with ``image`` as float32 in [0, 255].

    ``shard``: inside the sharded step, this device's rows of the global batch (:class:`Shard`):
    the draws are those of the global batch, so every image gets the same augmentation whatever
    the device count."""
    b = batch["image"].shape[0]
    rows = (lambda x: x) if shard is None else shard.rows
    n = b if shard is None else b * shard.count
    k_flip, k_jit = jax.random.split(key)
    batch = dict(batch, image=batch["image"].astype(jnp.float32))
    if cfg.category_flip_probs is not None and max(cfg.category_flip_probs) > 0:
        probs = jnp.asarray(cfg.category_flip_probs, jnp.float32)[stack_index(batch)]
        flips = rows(jax.random.uniform(k_flip, (n,))) < probs  # bernoulli(k_flip, probs), row by row
        batch = jax.vmap(lambda ex, f: augment.flip_example(ex, f, perm))(batch, flips)
    elif cfg.category_flip_probs is None and cfg.flip_prob > 0:
        flips = rows(jax.random.bernoulli(k_flip, cfg.flip_prob, (n,)))
        batch = jax.vmap(lambda ex, f: augment.flip_example(ex, f, perm))(batch, flips)
    if shift_scale_on(cfg):  # its own stream: the flip and jitter draws stay those of a run without it
        shift, scale = augment.draw_shift_scale(jax.random.fold_in(key, 1), n, cfg.shift_px, cfg.scale_range)
        batch = jax.vmap(augment.shift_scale_example)(batch, rows(shift), rows(scale))
    if max(cfg.brightness, cfg.contrast, cfg.saturation) > 0:
        keys = rows(jax.random.split(k_jit, n))
        batch["image"] = jax.vmap(
            lambda k, im: augment.colour_jitter(k, im, cfg.brightness, cfg.contrast, cfg.saturation)
        )(keys, batch["image"])
    return batch


def occlude_batch(key: jax.Array, images: jax.Array, view, cfg: StepConfig, shard=None):
    """Occluder augmentation (:mod:`nemo_jax.train.occluders`) of augmented ``images [B, H, W, 3]``
    (float32) whose vertex geometry is ``view`` (:func:`views`).

    Returns ``(images, visible [B, V], background [B, h, w])``: the images with the occluders
    pasted, the visibility without the vertices under an occluder, and the clutter mask's object
    cells (``view.object_mask``) without the cells an occluder mostly covers, so those are
    sampled as clutter. ``shard``: as in :func:`augment_batch` (draws of the global batch; the
    patches may come from any device's images)."""
    rows = (lambda x: x) if shard is None else shard.rows
    gather = (lambda x: x) if shard is None else shard.gather
    boxes = occluders.object_boxes(view.points, view.visible, cfg.image_size)
    occ = occluders.draw_occluders(
        key, gather(boxes), cfg.image_size, cfg.occluder_prob, cfg.occluder_fraction
    )
    occ = jax.tree.map(rows, occ)
    masks = occluders.occluder_masks(occ, cfg.image_size)  # [B, H, W]
    images = occluders.paste(images, gather(images), masks, occ)
    visible = view.visible & ~jax.vmap(occluders.hidden_vertices)(view.points, masks)
    cells = jax.vmap(lambda m: occluders.occluder_cells(m, cfg.feature_stride))(masks)
    return images, visible, view.object_mask & ~cells


def shift_scale_on(cfg: StepConfig) -> bool:
    """Whether the step shifts or zooms its images."""
    return cfg.shift_px > 0 or cfg.scale_range != (1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Shard:
    """This device's place in the sharded step (inside ``shard_map`` over ``axis``): ``count``
    devices, each holding ``rows_per_device`` consecutive rows of the global batch, in device order.
    Every cross-device sum is :func:`nemo_jax.train.parallel.ordered_sum` (fixed order)."""

    count: int
    rows_per_device: int
    axis: str = parallel.DATA_AXIS

    def rows(self, x: jax.Array) -> jax.Array:
        """This device's rows of a global-batch array ``[count * rows_per_device, ...]``."""
        start = jax.lax.axis_index(self.axis) * self.rows_per_device
        return jax.lax.dynamic_slice_in_dim(x, start, self.rows_per_device, axis=0)

    def total(self, x: jax.Array) -> jax.Array:
        return parallel.ordered_sum(x, self.axis)

    def total_tree(self, tree):
        """:meth:`total` of every leaf, with one all-gather for the whole tree."""
        flat, unravel = ravel_pytree(tree)
        return unravel(self.total(flat))

    def gather(self, x: jax.Array) -> jax.Array:
        """The global batch's ``[count * rows, ...]`` from every device's ``[rows, ...]`` (exact)."""
        return jax.lax.all_gather(x, self.axis, axis=0, tiled=True)


def select_fields(batch: dict, fields=BATCH_FIELDS) -> dict:
    """The fields the step uses, as arrays (float32 scalars per image); raises on a missing one."""
    missing = [f for f in fields if f not in batch]
    if missing:
        raise ValueError(f"train batch: missing fields {missing} (have {sorted(batch)})")
    out = {f: jnp.asarray(batch[f], jnp.float32) for f in fields if f != "image"}
    out.update({f: jnp.asarray(batch[f], jnp.float32) for f in OPTIONAL_FIELDS if f in batch})
    out["image"] = jnp.asarray(batch["image"])
    return out


def make_train_step(
    model, tx: optax.GradientTransformation, cfg: StepConfig, preprocess: Callable, perm=None, mesh=None
) -> Callable:
    """Builds ``train_step(state, batch) -> (state, metrics)`` (not jitted; see :func:`jit_step`).

    Args:
      model: flax.linen backbone, ``apply(variables, images [B,H,W,3], train) -> [B,h,w,D]`` unit.
      tx: optimizer from :func:`nemo_jax.train.state.make_optimizer`.
      cfg: static step settings.
      preprocess: uint8-range float images ``[B,H,W,3]`` -> normalised network input.
      perm: ``[V]`` mirror permutation of the mesh vertices (only used on precomputed kp2d/visible).
      mesh: a data mesh (:func:`nemo_jax.train.parallel.data_mesh`): the step runs under
        ``shard_map``, each device on its rows of the batch, and every cross-device sum (batch
        statistics, loss normalisers, gradient, memory-bank update) is a fixed-order
        :func:`nemo_jax.train.parallel.ordered_sum`, so the sums' rounding does not depend on how the
        devices are spread over processes. The model's batch normalisation must be
        :class:`nemo_jax.models.layers.BatchNorm` (every backbone's is) for its statistics to span
        the devices; a plain ``flax.linen.BatchNorm`` would see only its device's rows. ``None``:
        one function of the whole batch (one device, or partitioned by XLA under :func:`jit_step`
        with shardings).

    With a per-sub-type mesh (``state.mesh.vertices [S, V, 3]``, :mod:`nemo_jax.mesh.subtypes`), the
    batch also carries ``cad_index`` ``[B]`` (1-based): each image is projected with, scored against
    and updates the bank and clutter queue of its own sub-type; one backbone serves all. A shared
    multi-category run stacks one mesh per category the same way and the batch carries
    ``category_index`` ``[B]`` (0-based); with ``cfg.cross_category_negatives`` the other
    categories' (real) vertex features are negatives too.

    A step whose loss, gradient or updated parameters are not finite leaves the state unchanged
    (except ``step`` and ``rng``) and reports ``finite = False``; the training loop stops on it.
    """
    perm = None if perm is None else jnp.asarray(np.asarray(perm), jnp.int32)

    def train_step(state: TrainState, batch: dict, shard: Shard | None = None):
        total = None if shard is None else shard.total
        gather = (lambda x: x) if shard is None else shard.gather
        rng, k_aug, k_clutter = jax.random.split(state.rng, 3)
        batch = augment_batch(k_aug, batch, cfg, perm, shard)
        stacked = subtypes.is_stacked(state.mesh)
        if stacked:  # static: one mesh, bank and clutter queue per image, chosen by its sub-type
            subtype = stack_index(batch)  # [B]
            mesh = subtypes.select_subtype(state.mesh, subtype)
            bank_mask = subtypes.vertex_mask(mesh.faces, mesh.vertices.shape[1])
        else:
            mesh, bank_mask = state.mesh, None
        other_bank = other_mask = None
        if cfg.cross_category_negatives:
            if not stacked:
                raise ValueError("cross_category_negatives needs a run of several categories")
            n_mesh, n_vert = state.mesh.vertices.shape[:2]
            other_bank = state.mesh.features.reshape(n_mesh * n_vert, -1)
            real = subtypes.vertex_mask(state.mesh.faces, n_vert)  # [C, V]
            owner = jnp.arange(n_mesh)[:, None]
            other_mask = (real[None] & (owner[None] != subtype[:, None, None])).reshape(-1, n_mesh * n_vert)
        view = views(mesh, batch, cfg)
        object_cells = view.object_mask  # cells clutter is not sampled from
        if cfg.occluder_prob > 0:  # its own stream: the other draws stay those of a run without it
            occluded, visible, object_cells = occlude_batch(
                jax.random.fold_in(k_aug, 2), batch["image"], view, cfg, shard
            )
            batch = dict(batch, image=occluded)
            view = view.replace(visible=visible)
        images = preprocess(batch["image"])
        points = feature_coordinates(view.points, cfg.feature_stride)  # [B, V, 2]
        b = images.shape[0]
        global_b = b if shard is None else b * shard.count
        clutter_keys = jax.random.split(k_clutter, global_b)
        clutter_keys = clutter_keys if shard is None else shard.rows(clutter_keys)

        def loss_fn(params):
            stats = contextlib.nullcontext()
            if shard is not None:
                stats = layers.batch_stat_mean(lambda x: parallel.ordered_mean(x, shard.axis))
            with stats:
                feats, updates = model.apply(
                    {"params": params, "batch_stats": state.batch_stats}, images, train=True,
                    mutable=["batch_stats"],
                )  # fmt: skip
            vfeat = jax.vmap(contrastive.bilinear_sample)(feats, points)
            vfeat = contrastive.unit_samples(vfeat)
            clutter, valid = jax.vmap(
                lambda k, f, m: contrastive.sample_clutter(k, f, m, cfg.clutter_per_image)
            )(clutter_keys, feats, object_cells)
            loss, aux = contrastive.contrastive_loss(
                vfeat, view.visible, view.points, mesh.features, mesh.clutter, clutter,
                valid, bank_mask, other_bank, other_mask, temperature=cfg.temperature,
                distance_thr=cfg.distance_thr, clutter_weight=cfg.clutter_weight, reg_weight=cfg.reg_weight,
                total=total,
            )  # fmt: skip
            return loss, (aux, updates.get("batch_stats", state.batch_stats), vfeat, clutter)

        (loss, (aux, batch_stats, vfeat, clutter)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        if shard is not None:  # this device's shares -> the whole batch's
            grads = shard.total_tree(grads)
            loss = total(loss)
            aux = dict(aux, loss_main=total(aux["loss_main"]), loss_reg=total(aux["loss_reg"]))
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & jnp.isfinite(optax.tree.norm(params))
        vfeat = jax.lax.stop_gradient(vfeat)
        clutter = gather(jax.lax.stop_gradient(clutter))  # [global B, N, D], in batch order
        if stacked:
            n_sub = state.mesh.features.shape[0]
            target, count = subtypes.subtype_bank_targets(vfeat, view.visible, subtype, n_sub, total)
            features = subtypes.subtype_momentum_update(state.mesh.features, target, count, cfg.momentum)
            queue = subtypes.push_clutter_by_subtype(state.mesh.clutter, clutter, gather(subtype))
        else:
            target, count = contrastive.bank_targets(vfeat, view.visible, total)
            features = momentum_update(state.mesh.features, target, count, cfg.momentum)
            queue = push_clutter(state.mesh.clutter, clutter.reshape(-1, clutter.shape[-1]))
        new = state.replace(
            params=params,
            batch_stats=batch_stats,
            opt_state=opt_state,
            mesh=state.mesh.replace(features=features, clutter=queue),
        )
        new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
        new = new.replace(step=state.step + 1, rng=rng)
        metrics = {
            "loss": loss,
            "loss_main": aux["loss_main"],
            "loss_reg": aux["loss_reg"],
            "visible_per_image": aux["num_visible"] / global_b,
            "grad_norm": grad_norm,
            "finite": finite,
            "render_overflow": jnp.max(gather(jnp.max(view.overflow)[None])),
        }
        return new, metrics

    if mesh is None:
        return train_step
    count = int(mesh.shape[parallel.DATA_AXIS])

    def sharded_step(state: TrainState, batch: dict):
        rows = jax.tree.leaves(batch)[0].shape[0]
        return train_step(state, batch, Shard(count, rows))

    # check_vma=False: the body states its own cross-device sums (ordered_sum); the gradient of
    # each device's loss share stays that device's until shard.total_tree adds them up.
    return jax.shard_map(
        sharded_step,
        mesh=mesh,
        in_specs=(PartitionSpec(), PartitionSpec(parallel.DATA_AXIS)),
        out_specs=(PartitionSpec(), PartitionSpec()),
        check_vma=False,
    )


def jit_step(train_step: Callable, state_sharding=None, batch_sharding=None) -> Callable:
    """``jax.jit`` with the state donated; with shardings, state replicated and batch split over
    the data axis (see :mod:`nemo_jax.train.parallel`)."""
    if state_sharding is None:
        return jax.jit(train_step, donate_argnums=0)
    return jax.jit(
        train_step,
        in_shardings=(state_sharding, batch_sharding),
        out_shardings=(state_sharding, None),
        donate_argnums=0,
    )
