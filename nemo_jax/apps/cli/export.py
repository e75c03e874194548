"""Exports a trained NeMo run as one self-contained file for serving (jax and numpy alone).

    nemo-jax-export --workdir RUNS/car --out model.nemo [--category car] [--allow_uncalibrated] \
        [--platforms cpu,cuda] [--config.inference.steps=100]
    python tools/export.py ...   (the same)

The file (a zip) holds the whole estimator as jax.export-serialized StableHLO (uint8 crops
[B, H, W, 3] of the run's crop size, B symbolic -> normalisation -> backbone -> pose search with the
run's inference settings -> azimuth, elevation, theta in radians, distance, loss, confidence,
occluder map), the neural mesh arrays (meshes.npz), metadata.json (category, crop size, angle
units, camera convention, jax version, platforms) and manifest.json (format version, SHA-256 of
each member). Load it with nemo_jax/serving.py: estimate = serving.load("model.nemo").
Platforms: every one of --platforms that this jax can lower for (cpu always); the others are
reported and recorded in metadata.json's platforms_skipped.
The confidence needs the run's calibration (calibration.json); --allow_uncalibrated exports the
uncalibrated score instead (nemo_jax.apps.export.uncalibrated_confidence; metadata
"confidence": "uncalibrated").
"""

from __future__ import annotations

import sys

from absl import flags

from nemo_jax.apps.cli import define_inference_overrides, no_positional, run

_WORKDIR = flags.DEFINE_string("workdir", None, "NeMo training run directory (nemo-jax-train's --workdir).")
_OUT = flags.DEFINE_string("out", None, "The file to write, e.g. model.nemo (replaced whole if it exists).")
_CATEGORY = flags.DEFINE_string("category", None, "The category to export; default: the run's.")
_ALLOW_UNCALIBRATED = flags.DEFINE_bool(
    "allow_uncalibrated", False, "Export the uncalibrated confidence when the run has no calibration."
)
_PLATFORMS = flags.DEFINE_list("platforms", ["cpu", "cuda"], "Platforms to lower for (cpu always kept).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default: the newest intact one.")
_INFERENCE = define_inference_overrides()
flags.mark_flags_as_required(["workdir", "out"])


def _main(argv) -> int:
    no_positional(argv)
    from nemo_jax.apps.export import export_run

    try:
        meta = export_run(
            _WORKDIR.value,
            _OUT.value,
            category=_CATEGORY.value,
            allow_uncalibrated=_ALLOW_UNCALIBRATED.value,
            inference_overrides=_INFERENCE(),
            platforms=tuple(_PLATFORMS.value),
            step=_STEP.value,
            log=lambda msg: print(msg, file=sys.stderr),
        )
    except (ValueError, OSError) as err:  # bad input named by the library; nothing was written
        print(f"export: {err}", file=sys.stderr)
        return 1
    h, w = meta["image_size"]
    print(
        f"{_OUT.value}: {meta['category']}, uint8 [B, {h}, {w}, 3] crops, "
        f"platforms {', '.join(meta['platforms'])}, confidence {meta['confidence']}"
    )
    return 0


def main():
    """Console entry point (``[project.scripts]``); ``tools/*.py`` call it too."""
    run(__name__, _main)
