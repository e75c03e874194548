"""End-to-end jobs that join the layers (data, models, train, inference, eval, viz); the tools are
thin shells over these. ``evaluate``: a trained NeMo or baseline on a dataset's test levels;
``demo``: the main job on the embedded synthetic set."""
