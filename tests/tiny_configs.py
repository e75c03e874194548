"""Tiny training configs shared by tests: the smoke config at 32 x 32 with a stride-4 head (an
8 x 8 feature map), 40-vertex cuboids, no augmentation and no held-out evaluation, trained for
``steps`` (one checkpoint and one log line at the end). Tests of stacked meshes (per-category or
per-sub-type banks) add their own mesh fields."""

from __future__ import annotations

from configs import smoke


def tiny_config(steps: int):
    c = smoke.get_config()
    c.mesh.target_vertices = 40
    c.data.image_size = (32, 32)
    c.model.stride = 4  # an 8 x 8 feature map
    c.data.num_train = 64
    c.data.num_eval = 8
    c.train.steps = steps
    c.train.lr = 3e-3
    c.train.flip_prob = 0.0
    c.train.brightness = c.train.contrast = c.train.saturation = 0.0
    c.train.checkpoint_every = steps
    c.train.log_every = steps
    c.eval.num_batches = 0
    return c
