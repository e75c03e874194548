"""Writes a small PASCAL3D+-format tree to try the real-data path on.

Flags: ``python tools/write_fixture_tree.py --help`` (nemo_jax/apps/cli/write_fixture_tree.py).
"""

from nemo_jax.apps.cli.write_fixture_tree import main

if __name__ == "__main__":
    main()
