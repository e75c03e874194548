"""NeMo on PASCAL3D+, one category: ``--config configs/nemo_pascal3d.py:car``.

Crops follow NeMo's protocol: every image rescaled by distance / 5 (the object at distance 5 with a
3000-px focal, ``data.distance``, for every category) and cropped to NeMo's per-category size. The
neural mesh is the SingleCuboid stored with the built dataset (``mesh.kind='dataset'``), or built
from the CAD models with ``--config.mesh.kind=single_cuboid --config.mesh.cad_dir=PASCAL3D+/CAD``.

The ResNet-50 starts from torchvision's ImageNet weights, as NeMo's does: give the file with
``--config.model.pretrained=/path/resnet50-0676ba61.pth`` (read without torch; or its ``.npz`` from
``nemo-jax-convert-weights``). Without it training stops at start and says so;
``--config.model.pretrained=none`` trains from a random initialisation instead.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import common  # noqa: E402
from nemo_jax import models  # noqa: E402


def get_config(category: str = "car"):
    if category not in common.CROP_SIZES:
        raise ValueError(f"nemo_pascal3d: unknown category {category!r}; known: {sorted(common.CROP_SIZES)}")
    c = common.base()
    c.category = category
    c.data.image_size = common.CROP_SIZES[category]
    c.data.distance = common.CROP_DISTANCE
    c.model.pretrained = models.REQUIRED  # torchvision's ImageNet ResNet-50, given by path
    # NeMo's optimisation (code/TrainNeMo.py): torch.optim.Adam(net.parameters(), lr=1e-4,
    # weight_decay=1e-4), i.e. coupled L2 on every parameter; gradients of 10 batches of 108 summed
    # per update (--train_accumulate 10; the first update from the first batch alone); 800 epochs;
    # 1e-4 during epoch 0, then 2e-5 (schedule 'nemo').
    c.train.optimizer = "adam_l2"
    c.train.grad_accum = 10
    c.train.grad_accum_phase = "nemo"
    c.train.steps = 0  # 0: from epochs and the training set's size; --config.train.steps=N overrides
    c.train.epochs = 800
    c.train.lr_decay_epochs = 1
    # NeMo trains without augmentation (RandomHorizontalFlip and ColorJitter are defined, unused).
    c.train.flip_prob = 0.0
    c.train.brightness = c.train.contrast = c.train.saturation = 0.0
    # NeMo counts a vertex as visible only inside the object's box.
    c.train.visibility_in_box = True
    # The crops put every object at a known distance, so the refinement keeps it and turns the angles;
    # on validation data this matched NeMo's camera-position refinement at the same time per image
    # (README, "Pose refinement"). --config.inference.parametrization=camera_position runs NeMo's.
    c.inference.parametrization = "angles"
    return c
