"""Per-image confidence: features of a search result, the logistic calibration (fit, apply, store)."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemo_jax.eval import expected_calibration_error
from nemo_jax.inference import PoseResult, SearchConfig, pose_grid
from nemo_jax.inference import confidence as conf
from nemo_jax.render import RasterSettings

H, W = 4, 5


def _grid():
    """Six azimuths 60 degrees apart, one elevation and theta: grid pose ``i`` is ``i * 60``
    degrees away from azimuth 0 (a rotation about one axis), so 120-240 degrees are "far"."""
    config = SearchConfig(
        raster=RasterSettings(height=H, width=W),
        azimuths_deg=(0.0, 60.0, 120.0, 180.0, 240.0, 300.0),
        elevations_deg=(10.0,),
        thetas_deg=(0.0,),
    )
    return pose_grid(config)


def _result(grid_loss, loss=0.4, null_loss=0.9, azimuth=0.1):
    mask = np.zeros((H, W), bool)
    mask[1:3, 1:3] = True  # 4 object pixels of 20
    occluder = np.zeros((H, W), bool)
    occluder[1, 1] = True  # on the object
    occluder[0, 0] = True  # off the object: not an occluded object pixel
    f = jnp.float32
    return PoseResult(
        azimuth=f(azimuth),
        elevation=f(math.radians(10.0)),
        theta=f(0.0),
        distance=f(5.0),
        loss=f(loss),
        grid_loss=jnp.asarray(grid_loss, jnp.float32),
        occluder=jnp.asarray(occluder),
        object_mask=jnp.asarray(mask),
        overflow=jnp.int32(0),
        steps=jnp.int32(0),
        null_loss=f(null_loss),
        feature_spread=f(1.0),
    )


def test_features_by_hand():
    grid = _grid()
    grid_loss = [0.45, 0.5, 0.7, 0.55, 0.8, 0.6]  # far from azimuth ~0: 120, 180, 240 degrees
    features = jax.jit(conf.features)  # eager op-by-op dispatch would compile every primitive
    feats = features(_result(grid_loss), grid)
    expected = {
        "loss": 0.4,
        "flip_gap": 0.55 - 0.4,  # the best far grid pose is at 180 degrees (the flip)
        "occluder_fraction": 1 / 4,
        "evidence": 0.9 - 0.4,
        "object_fraction": 4 / 20,
    }
    assert feats.shape == (len(conf.FEATURE_NAMES),)
    np.testing.assert_allclose(feats, [expected[k] for k in conf.FEATURE_NAMES], atol=1e-6)
    # vmapped: the same numbers.
    batch = jax.tree.map(lambda *x: jnp.stack(x), _result(grid_loss), _result(grid_loss, azimuth=math.pi))
    both = jax.jit(conf.batch_features)(batch, grid)
    np.testing.assert_allclose(both[0], feats, atol=1e-6)
    # At azimuth 180 the far poses are 0, 60 and 300 degrees: the best is 0.45.
    assert float(both[1, conf.FEATURE_NAMES.index("flip_gap")]) == pytest.approx(0.45 - 0.4, abs=1e-6)


def test_flip_gap_without_a_far_pose_or_with_non_finite_grid_losses():
    grid = _grid()
    inf = float("inf")
    # every far pose non-finite: nothing competes, the gap is null_loss - loss
    feats = jax.jit(conf.features)(_result([0.45, 0.5, inf, inf, inf, 0.6]), grid)
    assert float(feats[1]) == pytest.approx(0.9 - 0.4, abs=1e-6)
    assert np.all(np.isfinite(np.asarray(feats)))


def _calibration_data(n, rng):
    """Features whose first column drives P(correct) = sigmoid(2 x0 - 1); the others are noise."""
    x = rng.normal(size=(n, 5)) * [1.0, 3.0, 0.2, 1.0, 1.0] + [0.0, 5.0, 0.5, 0.0, 0.0]
    p = 1.0 / (1.0 + np.exp(-(2.0 * x[:, 0] - 1.0)))
    return x, rng.uniform(size=n) < p, p


def test_fit_recovers_a_known_logistic_model_and_is_calibrated_on_new_data():
    rng = np.random.default_rng(0)
    x, y, _ = _calibration_data(6000, rng)
    cal = conf.fit_calibration(x, y, l2=1e-4)
    # weights live on standardised features: the true weight of x0 times its spread
    w = np.asarray(cal.weights) / np.asarray(cal.scale)
    assert w[0] == pytest.approx(2.0, abs=0.15)
    assert np.all(np.abs(w[1:] * np.asarray(cal.scale)[1:]) < 0.1)
    intercept = float(cal.bias) - float(np.sum(w * np.asarray(cal.mean)))
    assert intercept == pytest.approx(-1.0, abs=0.3)  # the noise features move it a little
    # apply (jax) equals the logistic formula (numpy) and is calibrated on held-out data
    x2, y2, p2 = _calibration_data(4000, np.random.default_rng(1))
    c2 = np.asarray(jax.jit(conf.apply_calibration)(cal, jnp.asarray(x2, jnp.float32)))
    np.testing.assert_allclose(c2, p2, atol=0.05)
    assert expected_calibration_error(c2, y2) < 0.03
    # deterministic
    again = conf.fit_calibration(x, y, l2=1e-4)
    for a, b in zip(jax.tree.leaves(cal), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_fit_edge_cases():
    x = np.arange(10, dtype=float)[:, None] * np.ones((1, 5))
    # one class only: no slope, the smoothed base rate
    cal = conf.fit_calibration(x, np.ones(10, bool))
    np.testing.assert_array_equal(np.asarray(cal.weights), 0.0)
    assert float(jax.nn.sigmoid(cal.bias)) == pytest.approx(10.5 / 11.0, abs=1e-6)
    # perfectly separable: the penalty keeps it finite and ordered
    y = np.arange(10) >= 5
    apply = jax.jit(conf.apply_calibration)
    sep = np.asarray(apply(conf.fit_calibration(x, y), jnp.asarray(x, jnp.float32)))
    assert np.all(np.isfinite(sep)) and np.all(np.diff(sep) >= 0) and sep[0] < 0.2 < 0.8 < sep[-1]
    with pytest.raises(ValueError, match="at least 2"):
        conf.fit_calibration(x[:1], y[:1])
    with pytest.raises(ValueError, match="do not match"):
        conf.fit_calibration(x, y[:3])
    # a non-finite feature: confidence 0, never NaN
    bad = jnp.asarray(x[:2], jnp.float32).at[0, 1].set(jnp.nan)
    out = np.asarray(apply(cal, bad))
    assert out[0] == 0.0 and np.isfinite(out[1])


def test_save_and_load(tmp_path):
    rng = np.random.default_rng(2)
    x, y, _ = _calibration_data(200, rng)
    cal = conf.fit_calibration(x, y)
    assert conf.load_calibration(str(tmp_path)) is None  # a run without one
    conf.save_calibration(str(tmp_path), cal, {"dataset": "synthetic", "ids": ["a", "b"]})
    doc = json.load(open(tmp_path / conf.FILENAME))
    assert doc["features"] == list(conf.FEATURE_NAMES) and doc["fitted_on"]["ids"] == ["a", "b"]
    back = conf.load_calibration(str(tmp_path))
    for a, b in zip(jax.tree.leaves(cal), jax.tree.leaves(back), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    path = tmp_path / conf.FILENAME
    for field, value, message in (
        ("features", ["loss"], "field 'features'"),
        ("weights", [1.0, 2.0], "field 'weights'"),
        ("scale", [1.0, 0.0, 1.0, 1.0, 1.0], "field 'scale'"),
        ("bias", "x", "field 'bias'"),
    ):
        json.dump(dict(doc, **{field: value}), open(path, "w"))
        with pytest.raises(ValueError, match=message):
            conf.load_calibration(str(tmp_path))
    path.write_text("{not json")
    with pytest.raises(ValueError, match="calibration.json: not valid JSON"):
        conf.load_calibration(str(tmp_path))
