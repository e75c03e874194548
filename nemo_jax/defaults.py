"""The one source of the training configs' defaults (NeMo's hyper-parameters): :func:`base` and the
crop constants. Not a config file itself: the ``configs/`` files build on :func:`base` (directly or
through :mod:`nemo_jax.recipes`) and import it as ``from nemo_jax import defaults``, so they load by
path from any working directory. A new default key goes into :func:`base`, nowhere else."""

from __future__ import annotations

import ml_collections

# NeMo's (Angtian/NeMo) crop size (H, W) per PASCAL3D+ category and the distance every object is
# rescaled to (resize_rate = distance / 5), re-exported for the config files: one definition, the data
# builders'. NeMo's per-category distance_render belongs to its fov-12 render camera, not to the data:
# nemo_jax.data.pascal3d.nemo_render_distance converts it to the data's 3000-px camera.
from nemo_jax.data.pascal3d import CROP_DISTANCE, CROP_SIZES  # noqa: F401
from nemo_jax.data.pascal3d import RENDER_DISTANCES as NEMO_RENDER_DISTANCES  # noqa: F401
from nemo_jax.inference.settings import default_settings


def base() -> ml_collections.ConfigDict:
    """NeMo's training recipe (one model per category)."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.category = "car"

    c.data = ml_collections.ConfigDict()
    c.data.source = "tfds"  # 'tfds' (nemo_jax.data.load) or 'toy' (in-memory, nemo_jax.data.toy)
    c.data.name = "pascal3d"
    c.data.data_dir = ""
    c.data.train_split = "train"
    c.data.eval_split = "val"
    c.data.image_size = CROP_SIZES["car"]
    # Camera convention: the crops' camera has focal * viewport = 3000 px and the object at
    # data.distance (CROP_DISTANCE, times the builders' shrink), the same for every category; the
    # evaluation's search starts from each example's own distance field (that value), and pose
    # estimation on unlabeled images uses data.distance.
    c.data.distance = CROP_DISTANCE
    c.data.num_train = 0  # toy source only
    c.data.num_eval = 0
    c.data.seed = 0

    c.mesh = ml_collections.ConfigDict()
    # 'dataset' | 'single_cuboid' | 'cad' | 'cuboid', or one mesh per CAD sub-type (cad_dir, else the
    # dataset's CAD models): 'multi_cuboid' (NeMo's MultiCuboid) | 'cad_per_subtype' (remeshed CAD)
    c.mesh.kind = "dataset"
    c.mesh.cad_dir = ""
    c.mesh.cad_index = 1
    c.mesh.coverage = 0.99
    c.mesh.symmetric = True  # mirror-symmetric bounds, needed for flip augmentation
    c.mesh.target_vertices = 1000
    c.mesh.lower = (-1.0, -0.5, -0.4)
    c.mesh.upper = (1.0, 0.5, 0.4)

    c.model = ml_collections.ConfigDict()  # fields of nemo_jax.models.default_config()
    c.model.name = "resnet50"
    c.model.width = 1.0
    c.model.feature_dim = 128
    c.model.dtype = "float32"
    c.model.pretrained = ""

    c.train = ml_collections.ConfigDict()
    c.train.steps = 800 * 10  # NeMo: ~800 epochs; set per dataset size
    c.train.batch_size = 108  # NeMo: 108 over 8 GPUs
    c.train.grad_accum = 1
    # The recipe's optimizer and length (nemo_jax.train.state): 'adamw' (decoupled decay) or
    # 'adam_l2' (NeMo's torch Adam with coupled L2); grad_accum_phase 'end' (optax.MultiSteps) or
    # 'nemo' (first update after the first batch); epochs > 0 with steps = 0 counts the run in
    # epochs of the training set, lr_decay_epochs > 0 sets lr_decay_steps from epochs.
    c.train.optimizer = "adamw"
    c.train.epochs = 0.0
    c.train.grad_accum_phase = "end"
    c.train.lr_decay_epochs = 0.0
    c.train.lr = 1e-4
    # NeMo's code trained at 1e-4 for epoch 0, then at a constant 2e-5 (its "x0.2 every 10 epochs"
    # sets the rate and never compounds): 'nemo' reproduces that; 'step' is the decay it intended.
    c.train.schedule = "nemo"  # 'constant' | 'cosine' | 'step' | 'nemo'
    c.train.lr_decay_steps = 10  # 'nemo': updates at the full rate (about one epoch of car images)
    c.train.lr_decay_factor = 0.2
    c.train.warmup_steps = 0
    c.train.weight_decay = 1e-4
    c.train.clip_norm = 0.0
    c.train.temperature = 0.07
    c.train.momentum = 0.9
    c.train.distance_thr = 48.0  # image pixels between vertex projections
    c.train.clutter_weight = 5e-3
    c.train.reg_weight = 0.1
    c.train.clutter_per_image = 5
    c.train.clutter_size = 2560
    c.train.flip_prob = 0.5
    c.train.brightness = 0.2
    c.train.contrast = 0.2
    c.train.saturation = 0.2
    # Random shift (max pixels, uniform per axis) and zoom (log-uniform in (low, high)) of each
    # training image about its centre, the camera moved with it, so the backbone sees objects
    # anywhere and at other scales than its centred crops: what --mode 6d needs (README "6D pose").
    # 0 and (1.0, 1.0): off, as NeMo trains.
    c.train.shift_px = 0.0
    c.train.scale_range = (1.0, 1.0)
    c.train.render_stride = 2
    c.train.render_tile = 16
    c.train.visibility_tolerance = 0.5  # depth slack, in mean mesh edge lengths
    # Occlusion levers (nemo_jax.train.step.StepConfig). visibility_in_box: a vertex counts as
    # visible only inside the example's box (NeMo's rule), grown by visibility_box_margin times the
    # box's width / height on each side; False: the whole image.
    c.train.visibility_in_box = False
    c.train.visibility_box_margin = 0.0
    # occluder_augment: probability that a training image gets a patch of another batch image pasted
    # over its object (a rectangle or ellipse of occluder_fraction (low, high) of the object's box);
    # its vertices become invisible and its cells clutter. 0: off.
    c.train.occluder_augment = 0.0
    c.train.occluder_fraction = (0.2, 0.6)
    c.train.log_every = 50
    c.train.checkpoint_every = 1000
    c.train.max_to_keep = 3
    c.train.eval_every = 0
    c.train.progress = True

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 8
    c.eval.num_batches = -1  # -1: all held-out images, 0: no evaluation
    c.eval.match_px = 16.0

    # The pose search's settings (grid, Adam refinement, parametrization, sub-type mode, rasterizer),
    # stored with the run; evaluation takes --config.inference.X=... overrides. Keys and NeMo's
    # defaults: nemo_jax.inference.settings.
    c.inference = default_settings()

    c.parallel = ml_collections.ConfigDict()
    # Multi-process runs (nemo_jax.train.multihost). Unset values fall back to the environment
    # (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID); distributed=True with nothing set
    # lets JAX detect a SLURM job, a TPU pod or Open MPI.
    c.parallel.distributed = False
    c.parallel.coordinator_address = ""  # host:port of process 0
    c.parallel.num_processes = 0  # 0: unset
    c.parallel.process_id = -1  # -1: unset; the only key that differs between the processes
    c.parallel.init_timeout_s = 300  # wait this long for the coordinator and every process
    # True: cross-device sums in a fixed order (all-gather, then sum), whose rounding does not
    # depend on the process layout (more memory: every device's gradient on each device); False:
    # XLA's all-reduce. See nemo_jax.train.parallel.
    c.parallel.ordered_reductions = False
    return c
