"""The pose-classification baseline (NeMo's Res50-General style), trained and evaluated with the same
data and metric code as NeMo so the robustness comparison is side by side.

Protocol: one network over all categories; NeMo's crops (per-category sizes) resized to one input
size (``inputs``; 256 x 256 on PASCAL3D+, as the refactored NeMo code's ``resnet50general``); the
same ImageNet start as NeMo (``config.model.pretrained``); binned azimuth / elevation / theta
(``classifier``); augmentation with pose-consistent flips (``augment``); validation during training
(``train``). Configs: ``configs/baseline_synthetic.py``, ``configs/baseline_pascal3d.py``.
"""

from nemo_jax.baseline.classifier import Bins, PoseClassifier, build_classifier, predict_angles
from nemo_jax.baseline.train import load_baseline, make_predict, train_baseline

__all__ = [
    "Bins",
    "PoseClassifier",
    "build_classifier",
    "load_baseline",
    "make_predict",
    "predict_angles",
    "train_baseline",
]
