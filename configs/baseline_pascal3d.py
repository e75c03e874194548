"""The pose-classification baseline on PASCAL3D+ (NeMo's Res50-General): one network over all
categories of the built ``pascal3d`` set.

    nemo-jax-train-baseline --config configs/baseline_pascal3d.py --workdir DIR \
        --config.data.data_dir=D --config.model.pretrained=/path/resnet50-0676ba61.pth

Protocol (the refactored NeMo code's ``resnet50general``): NeMo's per-category crops, centred on the
object at NeMo's distance-normalised scale, resized to 256 x 256 (aspect not kept) so that all
categories stack; an ImageNet ResNet-50 from torchvision (the same start as NeMo: training stops at
start until ``model.pretrained`` names the file, or says ``none``); about 9-degree bins per angle.
Augmentation and regularisation follow the recipe chosen on validation data for the synthetic set
(``baseline_synthetic.py``); steps, batch size and learning rate are starting points for fine-tuning
a pretrained ResNet-50, not validated on real PASCAL3D+ (no copy of it was at hand): read the curve
of the built ``val`` split (``eval.every``, ``metrics.jsonl`` rows with ``split="val"``) and pick
them on it.

``configs/baseline_pascal3d.py:specific`` is NeMo's Res50-Specific: one classifier per category
(``DIR/<category>``), each on its category's crops at the same 256 x 256 input, the steps shared
out by the categories' image counts.
"""

from nemo_jax import models, recipes


def get_config(variant: str = "general"):
    c = recipes.baseline_synthetic(variant)
    c.data.name = "pascal3d"
    c.data.input_size = (256, 256)
    c.model = models.default_config()
    c.model.name = "resnet50"
    c.model.pretrained = models.REQUIRED  # torchvision's ImageNet ResNet-50, given by path
    c.model.dropout = 0.1
    # 41 bins over 2 pi for azimuth / theta (the refactor's 41), elevation as wide over its half range
    c.bins.azimuth, c.bins.elevation, c.bins.theta = 41, 21, 41
    c.train.steps = 20000
    c.train.batch_size = 48
    c.train.lr = 1e-4  # fine-tuning a pretrained trunk
    c.train.warmup_steps = 500
    c.train.log_every = 100
    c.train.checkpoint_every = 2000
    c.eval.data_dir = ""  # the training data's own val split
    c.eval.split = "val"
    c.eval.every = 2000
    c.eval.max_images = 0
    return c
