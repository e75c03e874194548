"""The ImageNet start (a clear error without the file), the baseline's common input size, and its
augmentation, regularisation and validation curve."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from torch_files import save_torch_zip

from configs import baseline_pascal3d, baseline_synthetic, nemo_pascal3d
from nemo_jax import data, models
from nemo_jax.baseline import Bins, build_classifier
from nemo_jax.baseline.augment import FIELDS, augment_batch, augment_config
from nemo_jax.baseline.classifier import classification_loss
from nemo_jax.baseline.inputs import Resized, fit_input
from nemo_jax.baseline.train import make_predict
from nemo_jax.train.checkpoint import absolute_paths
from nemo_jax.train.loop import train


@pytest.fixture(scope="module")
def resnet18_pth(tmp_path_factory, random_state_dict):
    path = tmp_path_factory.mktemp("weights") / "resnet18-f37072fd.pth"
    sd = random_state_dict("resnet18", std=0.05, max_var=1.5)
    save_torch_zip(path, sd)
    return str(path), sd


def test_pascal3d_config_stops_at_start_without_the_imagenet_file(tmp_path):
    config = nemo_pascal3d.get_config("car")
    assert config.model.pretrained == models.REQUIRED
    config.data.data_dir = str(tmp_path / "no_data_here")  # never reached: the check comes first
    with pytest.raises(ValueError) as err:
        train(config, str(tmp_path / "run"))
    message = str(err.value)
    assert "--config.model.pretrained=/path/resnet50-0676ba61.pth" in message
    assert "nemo-jax-convert-weights" in message and "--config.model.pretrained=none" in message
    assert not (tmp_path / "run").exists()  # nothing was written

    config.model.pretrained = str(tmp_path / "resnet50-missing.pth")
    with pytest.raises(FileNotFoundError, match=r"config\.model\.pretrained=.*resnet50-missing\.pth"):
        train(config, str(tmp_path / "run"))

    base = baseline_pascal3d.get_config()
    assert base.model.pretrained == models.REQUIRED
    from nemo_jax.baseline import train_baseline  # noqa: PLC0415

    with pytest.raises(ValueError, match="--config.model.pretrained=none"):
        train_baseline(base, str(tmp_path / "baseline"))


@pytest.mark.parametrize("value", ["", "none", "scratch", "None"])
def test_opting_out_means_a_random_start(value):
    cfg = models.default_config()
    cfg.name, cfg.pretrained = "tiny", value
    assert models.resolve_pretrained_path(cfg) is None
    variables = {"params": {"x": 1}, "batch_stats": {}}
    assert models.load_pretrained(cfg, variables) is variables
    models.build_backbone(cfg)  # the tiny trunk accepts an explicit opt-out
    # a run's stored config keeps these names (and 'required') as they are, not as paths
    for name in (value, models.REQUIRED):
        stored = absolute_paths({"model": {"pretrained": name}})
        assert stored["model"]["pretrained"] == name


def test_a_torchvision_pth_starts_the_baseline_trunk_and_a_wrong_one_is_named(resnet18_pth, tmp_path):
    path, sd = resnet18_pth
    model = models.default_config()
    model.name, model.pretrained = "resnet18", path
    bins = Bins(azimuth=4, elevation=2, theta=4)
    x = jnp.zeros((1, 32, 32, 3))
    # abstract variables (no initialisation to compute): the loader fills the classifier's trunk
    abstract = jax.eval_shape(lambda: build_classifier(model, bins).init(jax.random.PRNGKey(0), x))
    loaded = models.load_pretrained(model, abstract)
    trunk, stats = loaded["params"]["trunk"], loaded["batch_stats"]["trunk"]
    np.testing.assert_array_equal(trunk["conv1"]["kernel"], sd["conv1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(stats["layer4_1"]["bn2"]["var"], sd["layer4.1.bn2.running_var"])
    assert isinstance(loaded["params"]["head_azimuth"]["kernel"], jax.ShapeDtypeStruct)  # head untouched

    model.name = "resnet34"  # the file holds a resnet18: named with the field
    abstract = jax.eval_shape(lambda: build_classifier(model, bins).init(jax.random.PRNGKey(0), x))
    with pytest.raises(ValueError, match=r"config\.model\.pretrained=.*resnet18-f37072fd\.pth.*missing"):
        models.load_pretrained(model, abstract)

    not_torch = tmp_path / "resnet50.pth"
    not_torch.write_bytes(b"not a checkpoint")
    model.name, model.pretrained = "resnet50", str(not_torch)
    with pytest.raises(ValueError, match=r"config\.model\.pretrained.*resnet50\.pth"):
        models.load_pretrained(model, {})


class _Mixed:
    """Two 'categories' with NeMo-like different crop sizes."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.items = []
        for i, (h, w) in enumerate([(16, 42), (34, 24)] * 3):
            image = rng.integers(0, 255, (h, w, 3), np.uint8)
            self.items.append({"id": f"x{i}", "image": image, "azimuth": np.float32(0.1 * i)})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.mark.extended
def test_mixed_crop_sizes_batch_at_the_common_input_size():
    source = _Mixed()
    with pytest.raises(ValueError, match="different shapes"):
        next(data.batches(source, 4, prefetch=0))
    batch = next(data.batches(Resized(source, (32, 32)), 4, prefetch=0))
    assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.uint8
    # a uniform image stays uniform; a left-right ramp stays a ramp
    flat = np.full((16, 42, 3), 77, np.uint8)
    np.testing.assert_array_equal(fit_input(flat, (32, 32)), np.full((32, 32, 3), 77, np.uint8))
    ramp = np.repeat(np.linspace(0, 250, 42).astype(np.uint8)[None, :, None], 16, 0).repeat(3, 2)
    row = fit_input(ramp, (32, 32))[10, :, 0].astype(int)
    assert np.all(np.diff(row) >= 0) and row[0] < 20 and row[-1] > 230

    # prediction resizes the same way, whatever size the test crops have
    config = baseline_synthetic.get_config()
    config.data.input_size = (32, 32)
    config.model.width = 0.25
    module = build_classifier(config.model, Bins())
    variables = jax.jit(module.init)(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
    predict = make_predict(config, module)
    for shape in ((2, 16, 42, 3), (2, 34, 24, 3)):
        az, el, th = predict(variables, np.zeros(shape, np.uint8))
        assert az.shape == el.shape == th.shape == (2,)


def test_flip_mirrors_the_image_and_the_pose_labels():
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(0, 255, (64, 8, 12, 3)), jnp.float32)
    az = jnp.asarray(rng.uniform(0, 2 * np.pi, 64), jnp.float32)
    th = jnp.asarray(rng.uniform(-1, 1, 64), jnp.float32)
    aug = dict(dict.fromkeys(FIELDS, 0.0), flip_prob=0.5)  # flips only
    out, az2, th2 = jax.jit(lambda k: augment_batch(k, images, az, th, aug))(jax.random.PRNGKey(3))
    flipped = np.asarray(az2 != az)
    assert 10 < flipped.sum() < 54  # about half
    np.testing.assert_allclose(az2[flipped], -az[flipped])
    np.testing.assert_allclose(th2[flipped], -th[flipped])
    np.testing.assert_array_equal(out[flipped], images[flipped][:, :, ::-1])
    np.testing.assert_array_equal(out[~flipped], images[~flipped])
    # no augmentation: unchanged; scale / shift / colour: same shapes, values in range, deterministic
    same = augment_batch(jax.random.PRNGKey(3), images, az, th, dict.fromkeys(aug, 0.0))
    np.testing.assert_array_equal(same[0], images)
    full = dict(aug, scale_jitter=0.2, shift=0.1, brightness=0.3, contrast=0.3, saturation=0.3)
    run = jax.jit(lambda k: augment_batch(k, images, az, th, full)[0])
    a, b = run(jax.random.PRNGKey(4)), run(jax.random.PRNGKey(4))
    np.testing.assert_array_equal(a, b)
    assert a.shape == images.shape and float(a.min()) >= 0 and float(a.max()) <= 255
    assert not np.allclose(a, images)
    with pytest.raises(ValueError, match="augment: unknown fields"):
        config = baseline_synthetic.get_config()
        config.train.augment.hue = 0.1
        augment_config(config)


@pytest.mark.extended
def test_label_smoothing_and_dropout():
    bins = Bins(azimuth=8, elevation=4, theta=8)
    logits = {
        n: jnp.zeros((2, getattr(bins, n))).at[:, 0].set(20.0) for n in ("azimuth", "elevation", "theta")
    }
    angles = (jnp.full(2, 0.1), jnp.full(2, -1.5), jnp.full(2, -3.1))
    hard = float(classification_loss(logits, *angles, bins))
    smooth = float(classification_loss(logits, *angles, bins, label_smoothing=0.1))
    assert hard < 1e-6 < smooth  # confident and right: only the smoothed target is not met
    config = baseline_synthetic.get_config()
    config.model.width, config.model.dropout = 0.25, 0.5
    module = build_classifier(config.model, bins)
    x = jnp.ones((2, 32, 32, 3))
    variables = jax.jit(module.init)(jax.random.PRNGKey(0), x)
    apply = jax.jit(lambda v, x: module.apply(v, x)["azimuth"])
    eval_a = apply(variables, x)
    np.testing.assert_array_equal(eval_a, apply(variables, x))
    train_a = jax.jit(
        lambda v, x, k: module.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": k})[0]
    )(variables, x, jax.random.PRNGKey(1))["azimuth"]
    assert not np.allclose(train_a, eval_a)
    config.model.dropout = 1.0
    with pytest.raises(ValueError, match="dropout"):
        build_classifier(config.model, bins)
