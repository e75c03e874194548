"""Benchmarks NeMo's full pose search on NeMo's car setting; prints what it measured.

Flags: ``python tools/bench_pose.py --help`` (nemo_jax/apps/cli/bench_pose.py).
"""

from nemo_jax.apps.cli.bench_pose import main

if __name__ == "__main__":
    main()
