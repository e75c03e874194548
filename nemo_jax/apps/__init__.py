"""End-to-end jobs that join the layers (data, models, train, inference, eval, viz).

Modules: ``evaluate`` (a trained NeMo or baseline on a dataset's test levels), ``demo`` (the main
job on the embedded synthetic set), ``estimate`` (poses of unlabeled images), ``render_mesh`` (a mesh
at a PASCAL3D+ viewpoint), ``bench`` (benchmarks on NeMo's car setting). ``cli``: the command-line
entry points (``nemo-jax-*`` console scripts, ``tools/*.py``), thin shells over these."""
