"""Evaluate trained NeMo runs (or the baseline) on a dataset's occlusion levels with NeMo's metric.

Same as the installed command ``nemo-jax-evaluate``; flags: ``python tools/evaluate.py --help``
(nemo_jax/apps/cli/evaluate.py).
"""

from nemo_jax.apps.cli.evaluate import main

if __name__ == "__main__":
    main()
