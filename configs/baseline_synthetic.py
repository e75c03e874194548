"""Baseline pose classifier on the synthetic set (CPU-sized). ``tools/train_baseline.py --config
configs/baseline_synthetic.py --workdir DIR --config.data.data_dir=D``."""

import ml_collections

from nemo_jax import models


def get_config():
    c = ml_collections.ConfigDict()
    c.seed = 0
    # input_size () keeps the data's size (the synthetic set: 64 x 64 for every category)
    c.data = ml_collections.ConfigDict({"name": "synthetic", "data_dir": "data", "input_size": ()})
    c.model = models.default_config()
    c.model.name = "tiny"
    c.model.width = 1.0
    c.model.dropout = 0.0
    c.bins = ml_collections.ConfigDict({"azimuth": 36, "elevation": 18, "theta": 36})
    c.train = ml_collections.ConfigDict(
        {
            "steps": 600,
            "batch_size": 32,
            "lr": 1e-3,
            "weight_decay": 1e-4,
            "warmup_steps": 0,
            "label_smoothing": 0.0,
            "augment": ml_collections.ConfigDict(
                {
                    "flip_prob": 0.0,
                    "scale_jitter": 0.0,
                    "shift": 0.0,
                    "brightness": 0.0,
                    "contrast": 0.0,
                    "saturation": 0.0,
                }
            ),
            "log_every": 100,
            "checkpoint_every": 200,
            "max_to_keep": 2,
            "progress": True,
        }
    )
    # Validation during training (off by default): Acc@pi/6 on ``eval.split`` of ``eval.data_dir``
    # (e.g. the synthetic set built with seed=1) every ``eval.every`` steps, into metrics.jsonl.
    c.eval = ml_collections.ConfigDict(
        {"data_dir": "", "split": "test_l0", "every": 0, "max_images": 0, "batch_size": 32}
    )
    return c
