"""The pose-classification baseline (NeMo's Res50-General style), trained and evaluated with the same
data and metric code as NeMo so the robustness comparison is side by side."""

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
