"""Baseline pose classifier on the synthetic set (CPU-sized). ``tools/train_baseline.py --config
configs/baseline_synthetic.py --workdir DIR --config.data.data_dir=D``."""

import ml_collections

from nemo_jax import models


def get_config():
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = ml_collections.ConfigDict({"name": "synthetic", "data_dir": "data"})
    c.model = models.default_config()
    c.model.name = "tiny"
    c.model.width = 1.0
    c.bins = ml_collections.ConfigDict({"azimuth": 36, "elevation": 18, "theta": 36})
    c.train = ml_collections.ConfigDict(
        {
            "steps": 600,
            "batch_size": 32,
            "lr": 1e-3,
            "weight_decay": 1e-4,
            "log_every": 100,
            "checkpoint_every": 200,
            "max_to_keep": 2,
            "progress": True,
        }
    )
    return c
