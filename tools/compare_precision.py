"""float32 vs bfloat16 backbone compute on the synthetic validation set, side by side.

Flags: ``python tools/compare_precision.py --help`` (nemo_jax/apps/cli/compare_precision.py).
"""

from nemo_jax.apps.cli.compare_precision import main

if __name__ == "__main__":
    main()
