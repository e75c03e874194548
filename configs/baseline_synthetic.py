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

from nemo_jax import recipes


def get_config(variant: str = "general"):
    """The recipe, each value with its reason: :func:`nemo_jax.recipes.baseline_synthetic`."""
    return recipes.baseline_synthetic(variant)
