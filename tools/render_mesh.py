"""Renders a mesh at a PASCAL3D+ viewpoint: mask PNG, depth .npy and a shaded overlay PNG.

Same as the installed command ``nemo-jax-render-mesh``; flags: ``python tools/render_mesh.py --help``
(nemo_jax/apps/cli/render_mesh.py).
"""

from nemo_jax.apps.cli.render_mesh import main

if __name__ == "__main__":
    main()
