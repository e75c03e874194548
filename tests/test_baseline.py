"""The pose-classification baseline: binning, and a training step that learns."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from nemo_jax import models
from nemo_jax.baseline import Bins, build_classifier
from nemo_jax.baseline.train import init_state, make_train_step


def test_bins_round_trip_within_half_a_bin():
    bins = Bins()
    rng = np.random.default_rng(0)
    for name, (low, high) in Bins.ranges.items():
        angles = jnp.asarray(rng.uniform(low, high, 200), jnp.float32)
        back = bins.to_angle(name, bins.to_bin(name, angles))
        half = (high - low) / getattr(bins, name) / 2
        diff = jnp.abs(jnp.angle(jnp.exp(1j * (back - angles))))
        assert float(diff.max()) <= half + 1e-5
    # Wrap-around: 2pi - epsilon and -epsilon fall into the last azimuth bin.
    assert int(bins.to_bin("azimuth", jnp.float32(-1e-3))) == bins.azimuth - 1


@pytest.mark.extended
def test_training_steps_fit_a_small_batch():
    config = ml_collections.ConfigDict({"train": {"steps": 30, "lr": 3e-3, "weight_decay": 0.0}, "seed": 0})
    model_config = models.default_config()
    model_config.name, model_config.width = "tiny", 0.5
    bins = Bins(azimuth=8, elevation=4, theta=4)
    module = build_classifier(model_config, bins)
    state = init_state(config, module, (32, 32, 3), jax.random.PRNGKey(0))
    step = make_train_step(config, module, bins)
    rng = np.random.default_rng(1)
    images = jnp.asarray(rng.normal(size=(8, 32, 32, 3)), jnp.float32)
    az = jnp.asarray(rng.uniform(0, 2 * np.pi, 8), jnp.float32)
    el = jnp.asarray(rng.uniform(-1.0, 1.0, 8), jnp.float32)
    th = jnp.asarray(rng.uniform(-1.0, 1.0, 8), jnp.float32)
    losses = []
    for _ in range(30):
        state, loss = step(state, images, az, el, th)
        losses.append(float(loss))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0]
