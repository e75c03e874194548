"""A tiny run that trains for a few steps in seconds, on in-memory toy data (no files needed):
``python tools/train.py --config configs/smoke.py --workdir /tmp/smoke``. Tests use it."""

from nemo_jax import defaults


def get_config():
    c = defaults.base()
    c.category = "toy"
    c.data.source = "toy"
    c.data.image_size = (64, 64)
    c.data.distance = 5.0
    c.data.num_train = 128
    c.data.num_eval = 16
    c.mesh.kind = "cuboid"
    c.mesh.target_vertices = 60
    c.model.name = "tiny"
    c.model.width = 0.25
    c.model.feature_dim = 16
    c.train.steps = 8
    c.train.batch_size = 8
    c.train.lr = 1e-3
    c.train.schedule = "constant"
    c.train.distance_thr = 4.0
    c.train.clutter_size = 32
    c.train.clutter_per_image = 2
    c.train.render_stride = 2
    c.train.render_tile = 8
    c.train.log_every = 4
    c.train.checkpoint_every = 4
    c.train.progress = False
    c.eval.batch_size = 8
    c.eval.num_batches = -1
    c.eval.match_px = 8.0
    return c
