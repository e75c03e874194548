"""The main job: NeMo vs a pose-classification baseline on the embedded synthetic dataset (CPU-sized).

Same as the installed command ``nemo-jax-demo``; flags: ``python tools/demo.py --help``
(nemo_jax/apps/cli/demo.py).
"""

from nemo_jax.apps.cli.demo import main

if __name__ == "__main__":
    main()
