"""CPU-sized training on the data package's synthetic set (64 x 64 images, tiny backbone):
``--config configs/synthetic_cpu.py:car --config.data.data_dir=DIR``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import common  # noqa: E402


def get_config(category: str = "car"):
    c = common.base()
    c.category = category
    c.data.name = "synthetic"
    c.data.image_size = (64, 64)
    # The synthetic set's camera distance: 1 CAD unit spans fill = 0.6 of the 64-px side at focal 3000
    # (nemo_jax.data.SyntheticOptions.distance). Used where no annotation gives one (estimate_pose).
    c.data.distance = 3000.0 / (0.6 * 64)
    c.mesh.kind = "dataset"  # the SingleCuboid stored with the synthetic set
    c.mesh.target_vertices = 300  # only used by tools/bench_train.py (the synthetic set has ~300)
    c.model.name = "tiny"
    c.model.width = 1.0
    c.model.feature_dim = 64
    c.model.stride = 4  # 64-px crops: a stride-8 map (8 x 8 cells) is too coarse to localise vertices
    # 800 steps left the aeroplane's and chair's features short (validation L0 64-84 %); the car scores
    # the same at 800 as at 1200 (validation L0-L3 100/86/74/44 vs 100/87/73/47 %), which keeps the
    # demo well inside its 15 minutes.
    c.train.steps = 800 if category == "car" else 1200
    c.train.batch_size = 16
    c.train.lr = 3e-3
    c.train.schedule = "cosine"
    c.train.warmup_steps = 20
    c.train.distance_thr = 4.0  # 64-px crops: neighbours within half a feature cell
    c.train.clutter_size = 320
    c.train.clutter_per_image = 4
    # Flip augmentation assumes a mirror-symmetric appearance. The synthetic chair's main cues (the
    # stripes across its back, the seat's checker) are not mirror-symmetric: on a validation set (the
    # synthetic set with seed 1, 100 L0 images) flipping cost the chair 7-9 points of Acc@pi/6, while
    # the aeroplane needs it (57 % without vs 64-84 % with, at 800 steps).
    c.train.flip_prob = 0.0 if category == "chair" else 0.5
    c.train.render_stride = 1
    c.train.render_tile = 8
    c.train.log_every = 20
    c.train.checkpoint_every = 200
    c.eval.match_px = 8.0
    return c
