"""Benchmarks the rasterizer variants on NeMo's car setting; prints what it measured.

Same as the installed command ``nemo-jax-bench-render``; flags: ``python tools/bench_render.py --help``
(nemo_jax/apps/cli/bench_render.py).
"""

from nemo_jax.apps.cli.bench_render import main

if __name__ == "__main__":
    main()
