"""Predict object poses (and figures) for unlabeled images with a given object box.

Same as the installed command ``nemo-jax-estimate-pose``; flags: ``python tools/estimate_pose.py --help``
(nemo_jax/apps/cli/estimate_pose.py).
"""

from nemo_jax.apps.cli.estimate_pose import main

if __name__ == "__main__":
    main()
