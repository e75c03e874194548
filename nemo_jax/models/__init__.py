"""Backbones: NeMo's stride-8 feature extractor in flax.linen, and pretrained-weight converters.

Usage::

    from nemo_jax import models
    cfg = models.default_config()            # name, width, feature_dim, dtype, pretrained
    module = models.build_backbone(cfg)
    variables = models.init_variables(module, rng, images, train=False)  # {"params", "batch_stats"}
    variables = models.load_pretrained(cfg, variables)     # no-op when pretrained is ''/'none'
    feats = module.apply(variables, images, train=False)   # [B, H/8, W/8, C] float32, unit norm
    feats, updates = module.apply(variables, images, train=True, mutable=['batch_stats'])

Images are [B, H, W, 3] float32 after :func:`preprocess` (ImageNet mean/std), H and W multiples of 32.

Why flax.linen (not nnx): linen modules are stateless descriptions and the weights are an explicit
PyTree ``{'params', 'batch_stats'}``; that is what optax, orbax checkpointing, ``TrainState`` and
``jax.jit`` with donation and NamedSharding consume directly, with BatchNorm statistics as an ordinary
mutable collection. This is also the style of big_vision and the flax examples (ImageNet ResNet), and it
keeps the converted torchvision names as a plain nested dict that is easy to check and to save.

Modules: ``config`` (defaults), ``layers`` (conv/BN/upsampling blocks), ``resnet``, ``efficientnet``,
``tiny`` (trunks), ``backbone`` (U-Net head, projection, build),
``initialize`` (variables, compiled cheaply), ``torch_pickle`` (torch-free ``.pth``
reader), ``convert`` (state_dict -> flax), ``pretrained`` (load into initialised variables).
"""

from nemo_jax.models.backbone import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    STRIDE,
    FeatureExtractor,
    UNetHead,
    build_backbone,
    build_trunk,
    l2_normalize,
    preprocess,
)
from nemo_jax.models.config import BACKBONES, REQUIRED, SCRATCH, default_config, is_scratch
from nemo_jax.models.convert import (
    convert_state_dict,
    load_state_dict,
    save_npz,
    save_safetensors,
    save_state_dict,
    torchvision_resnet_shapes,
)
from nemo_jax.models.initialize import INIT_COMPILER_OPTIONS, init_variables
from nemo_jax.models.pretrained import (
    check_trunk_weights,
    lite0_package_weights,
    load_pretrained,
    merge_trunk,
    resolve_pretrained_path,
)
from nemo_jax.models.torch_pickle import load_torch_checkpoint

__all__ = [
    "BACKBONES",
    "REQUIRED",
    "SCRATCH",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INIT_COMPILER_OPTIONS",
    "STRIDE",
    "FeatureExtractor",
    "UNetHead",
    "build_backbone",
    "build_trunk",
    "check_trunk_weights",
    "convert_state_dict",
    "default_config",
    "is_scratch",
    "l2_normalize",
    "lite0_package_weights",
    "init_variables",
    "load_pretrained",
    "load_state_dict",
    "load_torch_checkpoint",
    "merge_trunk",
    "preprocess",
    "resolve_pretrained_path",
    "save_npz",
    "save_safetensors",
    "save_state_dict",
    "torchvision_resnet_shapes",
]
