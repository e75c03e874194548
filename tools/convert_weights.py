"""Checks a torchvision ResNet / EfficientNet-Lite0 checkpoint and exports it without torch.

Same as the installed command ``nemo-jax-convert-weights``; flags: ``python tools/convert_weights.py --help``
(nemo_jax/apps/cli/convert_weights.py).
"""

from nemo_jax.apps.cli.convert_weights import main

if __name__ == "__main__":
    main()
