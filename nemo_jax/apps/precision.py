"""float32 vs bfloat16 backbone compute, side by side in one run (``tools/compare_precision.py``):
the same NeMo config trained twice, only ``config.model.dtype`` differing, both scored on the
synthetic validation set (the synthetic set built with ``seed=1``), training and inference timed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence


def compare_precision(
    out: str,
    config_path: str,
    category: str = "car",
    steps: int = 300,
    train_per_category: int = 800,
    val_per_level: int = 100,
    levels: Sequence[int] = (0, 1, 2, 3),
    dtypes: Sequence[str] = ("float32", "bfloat16"),
    log=print,
) -> dict:
    """Builds ``out/data`` (train, seed 0) and ``out/val`` (seed 1) unless there, trains
    ``out/runs/<dtype>`` with the config file ``config_path`` (e.g. ``configs/synthetic_cpu.py``;
    its ``get_config(category)``; resuming if there) and scores each run on the validation
    ``levels``.

    Returns per dtype the Acc@pi/6, Acc@pi/18 and median error per level, the train images/s
    (median over the logged windows after the first, which holds the compilation; one window can
    be slowed by anything else on the machine) and the evaluation seconds (backbone + search, after
    a compiling pass over the first level); the bf16 / f32 speed ratios; the accuracy differences
    in points, bf16-trained vs f32-trained and, ``acc_pi6_diff_points_inference_only``, the
    f32-trained weights with a bf16 backbone at inference vs in f32; and the environment. ``log``
    receives each dtype's record as it is done."""
    from nemo_jax import data  # noqa: PLC0415
    from nemo_jax import eval as eval_lib  # noqa: PLC0415
    from nemo_jax.apps import bench  # noqa: PLC0415
    from nemo_jax.apps.demo import category_configs  # noqa: PLC0415
    from nemo_jax.apps.evaluate import nemo_records  # noqa: PLC0415
    from nemo_jax.train.loop import train  # noqa: PLC0415

    levels = tuple(int(x) for x in levels)
    builds = {
        "data": {"categories": category, "train_per_category": train_per_category, "test_per_category": 1},
        "val": {
            "categories": category,
            "seed": 1,
            "train_per_category": 1,
            "test_per_category": val_per_level,
        },
    }
    for name, options in builds.items():
        data.ensure_built("synthetic", os.path.join(out, name), options, [category], None, progress=False)
    result = {"category": category, "steps": steps, "levels": list(levels), **bench.environment()}
    make_config = category_configs(config_path)
    for dtype in dtypes:
        config = make_config(category)
        config.data.data_dir = os.path.join(out, "data")
        config.model.dtype = dtype
        config.train.steps = steps
        config.train.progress = False
        workdir = os.path.join(out, "runs", dtype)
        t0 = time.perf_counter()
        metrics, _ = train(config, workdir)
        train_s = time.perf_counter() - t0
        val = os.path.join(out, "val")
        nemo_records(workdir, "synthetic", val, levels=levels[:1])  # compiles (untimed)
        t0 = time.perf_counter()
        records = nemo_records(workdir, "synthetic", val, levels=levels)
        eval_s = time.perf_counter() - t0
        result[dtype] = {
            "levels": eval_lib.evaluate_records(records)["results"][category],
            "train_images_per_s": _median_window_speed(workdir),
            "train_wall_s": train_s,
            "eval_wall_s": eval_s,
            "eval_images": len(records),
            "final_loss": metrics.get("loss"),
        }
        log({dtype: result[dtype]})
        if dtype == "float32" and "bfloat16" in dtypes:
            # the same float32-trained weights with a bf16 backbone at inference only: the
            # precision's own effect on the pose, without a second training run's noise
            records = nemo_records(workdir, "synthetic", val, levels=levels, dtype="bfloat16")
            result["float32_trained_bfloat16_inference"] = {
                "levels": eval_lib.evaluate_records(records)["results"][category]
            }
            log({"float32_trained_bfloat16_inference": result["float32_trained_bfloat16_inference"]})
    if {"float32", "bfloat16"} <= set(result):
        f32, bf16 = result["float32"], result["bfloat16"]
        result["bf16_over_f32_train_speed"] = bf16["train_images_per_s"] / f32["train_images_per_s"]
        result["bf16_over_f32_eval_speed"] = f32["eval_wall_s"] / bf16["eval_wall_s"]
        result["acc_pi6_diff_points"] = _diff_points(bf16["levels"], f32["levels"])
        cross = result["float32_trained_bfloat16_inference"]["levels"]
        result["acc_pi6_diff_points_inference_only"] = _diff_points(cross, f32["levels"])
    return result


def _diff_points(levels: dict, reference: dict) -> dict:
    """Per level, ``levels``' Acc@pi/6 minus ``reference``'s, in points."""
    return {lv: round(100 * (levels[lv]["acc_pi6"] - reference[lv]["acc_pi6"]), 2) for lv in reference}


def _median_window_speed(workdir: str) -> float:
    """Median images/s over a run's logged train windows (``metrics.jsonl``) after the first."""
    import statistics  # noqa: PLC0415

    from nemo_jax.train.metrics import read_metrics  # noqa: PLC0415

    rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    speeds = [r["images_per_s"] for r in rows if r.get("split") == "train" and "images_per_s" in r]
    if len(speeds) < 2:
        raise ValueError(f"{workdir}/metrics.jsonl: fewer than 2 logged train windows; log more often")
    return float(statistics.median(speeds[1:]))
