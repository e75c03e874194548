"""Per-category runs vs one backbone for all categories: accuracy per level, training time, parameters.

Flags: ``python tools/compare_shared.py --help`` (nemo_jax/apps/cli/compare_shared.py).
"""

from nemo_jax.apps.cli.compare_shared import main

if __name__ == "__main__":
    main()
