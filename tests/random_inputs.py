"""Random inputs shared by tests: a training batch in the data pipeline's layout and a
torchvision-layout ResNet state_dict. Tests get them through ``conftest.py``'s fixtures; code run
in a subprocess (forced device counts) imports this module directly."""

from __future__ import annotations

import numpy as np

from nemo_jax import models


def random_train_batch(b: int, size: int, seed: int = 0) -> dict:
    """``b`` random ``size x size`` uint8 images with poses that keep a unit-sized cuboid in view
    (azimuth in [0, 6.28), elevation in [0, 0.6), theta in [-0.1, 0.1) radians, distance 5, centred
    principal point ``(size - 1) / 2``): what the data pipeline yields, for losses that only need
    arrays."""
    rng = np.random.default_rng(seed)
    f32 = lambda x: np.asarray(x, np.float32)
    return {
        "image": rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8),
        "azimuth": f32(rng.uniform(0, 6.28, b)), "elevation": f32(rng.uniform(0, 0.6, b)),
        "theta": f32(rng.uniform(-0.1, 0.1, b)), "distance": f32(np.full(b, 5.0)),
        "px": f32(np.full(b, (size - 1) / 2)), "py": f32(np.full(b, (size - 1) / 2)),
        "focal": f32(np.ones(b)), "viewport": f32(np.full(b, 0.3 * size * 5.0)),
    }  # fmt: skip


def random_state_dict(arch: str, seed: int = 0, std: float = 1.0, max_var: float = 2.0) -> dict:
    """A torchvision-layout ``state_dict`` of ``arch`` (e.g. ``'resnet18'``) with random values:
    weights ``N(0, std)``, BatchNorm running variances uniform in [0.5, ``max_var``],
    ``num_batches_tracked`` 7 (int64). A small ``std`` keeps activations sane for training."""
    rng = np.random.default_rng(seed)
    sd = {}
    for k, shape in models.torchvision_resnet_shapes(arch).items():
        if k.endswith("num_batches_tracked"):
            sd[k] = np.array(7, np.int64)
        elif k.endswith("running_var"):
            sd[k] = rng.uniform(0.5, max_var, shape).astype(np.float32)
        else:
            sd[k] = rng.normal(0, std, shape).astype(np.float32)
    return sd
