"""Builds a nemo_jax dataset (tfds ArrayRecord) into --data_dir.

Same as the installed command ``nemo-jax-build-data``; flags: ``python tools/build_data.py --help``
(nemo_jax/apps/cli/build_data.py).
"""

from nemo_jax.apps.cli.build_data import main

if __name__ == "__main__":
    main()
