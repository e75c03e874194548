"""Benchmark the jitted train step (images/s) on random images with the config's shapes.

Flags: ``python tools/bench_train.py --help`` (nemo_jax/apps/cli/bench_train.py).
"""

from nemo_jax.apps.cli.bench_train import main

if __name__ == "__main__":
    main()
