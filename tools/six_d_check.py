"""6D pose vs NeMo's centred protocol on the same synthetic objects, for a run trained on the
synthetic set.

Flags: ``python tools/six_d_check.py --help`` (nemo_jax/apps/cli/six_d_check.py).
"""

from nemo_jax.apps.cli.six_d_check import main

if __name__ == "__main__":
    main()
