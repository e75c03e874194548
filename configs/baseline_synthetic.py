"""Baseline pose classifier on the synthetic set (CPU-sized). ``nemo-jax-train-baseline --config
configs/baseline_synthetic.py --workdir DIR --config.data.data_dir=D``.

The recipe was chosen on validation data (the synthetic set built with ``seed=1``, its 300 L0
images; curves in the README's Baseline section): the same ``tiny`` trunk as NeMo's demo config,
from scratch like it (the tiny trunk has no ImageNet weights; ``--config.model.name=efficientnet_lite0
--config.model.pretrained=package`` gives an ImageNet start at several times the cost). Without
augmentation and regularisation the classifier memorises the 2,400 training images (training loss
0.43 at 1,200 steps) and validation Acc@pi/6 stays at 57-59 % from step 400 on; light scale / shift
/ colour jitter, label smoothing 0.1 and head dropout 0.1 keep it learning (62 % at 1,200 steps;
72 % at 2,000 steps with the cosine schedule stretched to 2,000).
Flips stay off: the synthetic chair's textures are not mirror-symmetric (see synthetic_cpu.py).

``configs/baseline_synthetic.py:specific`` is NeMo's Res50-Specific instead of Res50-General: one
classifier per category (in ``WORKDIR/<category>``), the same recipe, the 2,000 steps shared out by
the categories' image counts (each image seen as often as by the general classifier). Not
validated separately. ``nemo-jax-demo`` trains it beside the general one (``WORKDIR/baseline_specific``)
at these 2,000 steps: the same training cost as the general classifier, plus one compilation per
category.
"""

import ml_collections

from nemo_jax import models
from nemo_jax.baseline.train import VARIANTS


def get_config(variant: str = "general"):
    if variant not in VARIANTS:
        raise ValueError(f"baseline_synthetic: unknown variant {variant!r}; known: {list(VARIANTS)}")
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.variant = variant  # 'general' (Res50-General) | 'specific' (Res50-Specific)
    # input_size () keeps the data's size (the synthetic set: 64 x 64 for every category);
    # categories () trains on every category of the data
    c.data = ml_collections.ConfigDict(
        {"name": "synthetic", "data_dir": "data", "input_size": (), "categories": ()}
    )
    c.model = models.default_config()
    c.model.name = "tiny"
    c.model.width = 1.0
    c.model.dropout = 0.1
    c.bins = ml_collections.ConfigDict({"azimuth": 36, "elevation": 18, "theta": 36})
    c.train = ml_collections.ConfigDict(
        {
            "steps": 2000,
            "batch_size": 32,
            "lr": 1e-3,
            "weight_decay": 1e-4,
            "warmup_steps": 0,
            "label_smoothing": 0.1,
            "augment": ml_collections.ConfigDict(
                {
                    "flip_prob": 0.0,
                    "scale_jitter": 0.1,
                    "shift": 0.05,
                    "brightness": 0.2,
                    "contrast": 0.2,
                    "saturation": 0.2,
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
