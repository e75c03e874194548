"""Train the pose-classification baseline (NeMo's Res50-General style) on a built dataset.

Same as the installed command ``nemo-jax-train-baseline``; flags: ``python tools/train_baseline.py --help``
(nemo_jax/apps/cli/train_baseline.py).
"""

from nemo_jax.apps.cli.train_baseline import main

if __name__ == "__main__":
    main()
