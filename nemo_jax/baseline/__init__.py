"""The pose-classification baselines of NeMo's Table 1, trained and evaluated with the same data and
metric code as NeMo so the robustness comparison is side by side: Res50-General (one network over
all categories) and Res50-Specific (one network per category), ``config.variant``; either read
back as one predictor (``runs.load_predictor``).

Protocol: NeMo's crops (per-category sizes) resized to one input size (``inputs``; 256 x 256 on
PASCAL3D+, as the refactored NeMo code's ``resnet50general``); the same ImageNet start as NeMo
(``config.model.pretrained``); binned azimuth / elevation / theta (``classifier``); augmentation
with pose-consistent flips (``augment``); validation during training (``train``). Configs:
``configs/baseline_synthetic.py[:specific]``, ``configs/baseline_pascal3d.py[:specific]``.
"""

from nemo_jax.baseline.classifier import Bins, PoseClassifier, build_classifier, predict_angles
from nemo_jax.baseline.runs import Predictor, load_predictor
from nemo_jax.baseline.train import VARIANTS, load_baseline, make_predict, train_baseline

__all__ = [
    "VARIANTS",
    "Bins",
    "PoseClassifier",
    "Predictor",
    "build_classifier",
    "load_baseline",
    "load_predictor",
    "make_predict",
    "predict_angles",
    "train_baseline",
]
