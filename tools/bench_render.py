"""Benchmarks the rasterizer variants on NeMo's car setting; prints what it measured.

Flags: ``python tools/bench_render.py --help`` (nemo_jax/apps/cli/bench_render.py).
"""

from nemo_jax.apps.cli.bench_render import main

if __name__ == "__main__":
    main()
