"""Benchmarks NeMo's full pose search on NeMo's car setting; prints what it measured.

Same as the installed command ``nemo-jax-bench-pose``; flags: ``python tools/bench_pose.py --help``
(nemo_jax/apps/cli/bench_pose.py).
"""

from nemo_jax.apps.cli.bench_pose import main

if __name__ == "__main__":
    main()
