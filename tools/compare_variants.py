"""Evaluates the same trained NeMo runs on the same images with several rasterizer variants.

Flags: ``python tools/compare_variants.py --help`` (nemo_jax/apps/cli/compare_variants.py).
"""

from nemo_jax.apps.cli.compare_variants import main

if __name__ == "__main__":
    main()
