"""Exports a trained NeMo run as one self-contained file for serving (jax and numpy alone).

Same as the installed command ``nemo-jax-export``; flags: ``python tools/export.py --help``
(nemo_jax/apps/cli/export.py).
"""

from nemo_jax.apps.cli.export import main

if __name__ == "__main__":
    main()
