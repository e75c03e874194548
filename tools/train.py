"""Train a NeMo neural mesh + feature backbone.

Same as the installed command ``nemo-jax-train``; flags: ``python tools/train.py --help``
(nemo_jax/apps/cli/train.py).
"""

from nemo_jax.apps.cli.train import main

if __name__ == "__main__":
    main()
