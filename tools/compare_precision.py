"""float32 vs bfloat16 backbone compute, side by side in one run: train the same NeMo config twice
(only ``config.model.dtype`` differs), then score both on the synthetic validation set (the
synthetic set built with ``seed=1``) and time training and inference.

    python tools/compare_precision.py --out out/precision --category car --steps 300

Builds ``OUT/data`` (train, seed 0) and ``OUT/val`` (seed 1) unless there, trains ``OUT/runs/<dtype>``
(resumes if there), and prints one JSON object: per dtype the Acc@pi/6, Acc@pi/18 and median error
per occlusion level, the train images/s (from the run's last logged window), the evaluation
seconds (backbone + search, after a compiling pass over the first level), the bf16 / f32 speed
ratios and the device. On CPUs without native bfloat16 arithmetic bf16 is usually SLOWER (XLA
emulates it); the ratio that matters is a GPU's.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

_OUT = flags.DEFINE_string("out", None, "Output folder (data, val, runs).")
_CATEGORY = flags.DEFINE_string("category", "car", "Synthetic category.")
_STEPS = flags.DEFINE_integer("steps", 300, "Train steps per run.")
_TRAIN = flags.DEFINE_integer("train_per_category", 800, "Training images.")
_VAL = flags.DEFINE_integer("val_per_level", 100, "Validation images per occlusion level.")
_LEVELS = flags.DEFINE_list("levels", ["0", "1", "2", "3"], "Occlusion levels to score.")
_DTYPES = flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Compute dtypes to compare.")
flags.mark_flags_as_required(["out"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    from configs import synthetic_cpu  # noqa: PLC0415
    from nemo_jax import data  # noqa: PLC0415
    from nemo_jax import eval as eval_lib  # noqa: PLC0415
    from nemo_jax.apps import bench  # noqa: PLC0415
    from nemo_jax.apps import evaluate as evaluate_app  # noqa: PLC0415
    from nemo_jax.train.loop import train  # noqa: PLC0415

    out, cat = _OUT.value, _CATEGORY.value
    levels = tuple(int(x) for x in _LEVELS.value)
    common = {"categories": cat}
    builds = {
        "data": {**common, "train_per_category": _TRAIN.value, "test_per_category": 1},
        "val": {**common, "seed": 1, "train_per_category": 1, "test_per_category": _VAL.value},
    }
    for name, options in builds.items():
        data.ensure_built("synthetic", os.path.join(out, name), options, [cat], None, progress=False)
    result = {"category": cat, "steps": _STEPS.value, "levels": list(levels), **bench.environment()}
    for dtype in _DTYPES.value:
        config = synthetic_cpu.get_config(cat)
        config.data.data_dir = os.path.join(out, "data")
        config.model.dtype = dtype
        config.train.steps = _STEPS.value
        config.train.progress = False
        workdir = os.path.join(out, "runs", dtype)
        t0 = time.perf_counter()
        metrics, _ = train(config, workdir)
        train_s = time.perf_counter() - t0
        val = os.path.join(out, "val")
        evaluate_app.nemo_records(workdir, "synthetic", val, levels=levels[:1])  # compiles (untimed)
        t0 = time.perf_counter()
        records = evaluate_app.nemo_records(workdir, "synthetic", val, levels=levels)
        eval_s = time.perf_counter() - t0
        scores = eval_lib.evaluate_records(records)["results"][cat]
        result[dtype] = {
            "levels": scores,
            "train_images_per_s": metrics.get("images_per_s"),
            "train_wall_s": train_s,
            "eval_wall_s": eval_s,
            "eval_images": len(records),
            "final_loss": metrics.get("loss"),
        }
        print(json.dumps({dtype: result[dtype]}), flush=True)
    if {"float32", "bfloat16"} <= set(result):
        f32, bf16 = result["float32"], result["bfloat16"]
        result["bf16_over_f32_train_speed"] = bf16["train_images_per_s"] / f32["train_images_per_s"]
        result["bf16_over_f32_eval_speed"] = f32["eval_wall_s"] / bf16["eval_wall_s"]
        result["acc_pi6_diff_points"] = {
            lv: bf16["levels"][lv]["acc_pi6"] - f32["levels"][lv]["acc_pi6"] for lv in f32["levels"]
        }
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
