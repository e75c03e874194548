"""The main job: NeMo vs a pose-classification baseline on the embedded synthetic dataset, CPU-sized.

Builds the synthetic set if absent, trains one NeMo model per category and one baseline, evaluates
both on occlusion levels L0-L3, prints the tables, writes ``results.json`` (``{"nemo": ...,
"baseline": ...}``, each in ``tools/evaluate.py``'s format) and figures into the workdir.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import time

from nemo_jax import data as data_lib
from nemo_jax import eval as eval_lib
from nemo_jax import viz
from nemo_jax.apps import evaluate as evaluate_lib
from nemo_jax.baseline import train_baseline
from nemo_jax.train.loop import train


def category_configs(path: str, overrides: dict | None = None, **train_fields):
    """``category -> ConfigDict`` from a config file: its ``get_config(category)`` (so per-category
    settings apply), then ``overrides`` (flat ``{"train.steps": 100}``, as ml_collections'
    ``config_flags.get_override_values`` returns them), then ``train_fields`` into ``config.train``.

    ``path`` may carry the ``:argument`` of a config flag; it is ignored (the category replaces it).
    """
    path = path.split(":")[0]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such config file")
    spec = importlib.util.spec_from_file_location(f"_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path}: defines no get_config()")

    def build(category: str):
        config = module.get_config(category)
        config.update_from_flattened_dict(dict(overrides or {}))
        config.train.update(train_fields)
        return config

    return build


def run_demo(workdir: str, data_dir: str, categories, nemo_config, baseline_config, log=print) -> dict:
    """Runs the whole comparison; returns ``{"nemo": results, "baseline": results}``.

    ``nemo_config`` is either one ConfigDict (copied, with ``category`` set, for every category) or a
    callable ``category -> ConfigDict`` (per-category settings, e.g. ``synthetic_cpu.get_config``).
    A ConfigDict with ``categories`` (``configs/synthetic_all.py``) trains ONE backbone for all of
    ``categories`` instead (one run, ``workdir/nemo/all``), which one checkpoint then evaluates.
    """
    os.makedirs(workdir, exist_ok=True)
    timings = {}
    t0 = time.perf_counter()
    data_lib.ensure_built("synthetic", data_dir, categories=categories, log=log)
    timings["data_s"] = time.perf_counter() - t0

    nemo_runs = {}
    shared = not callable(nemo_config) and bool(nemo_config.get("categories", ()))
    if shared:
        t0 = time.perf_counter()
        config = copy.deepcopy(nemo_config)
        config.categories = tuple(categories)
        config.train.no_flip_categories = tuple(
            c for c in config.train.get("no_flip_categories", ()) if c in categories
        )
        config.data.data_dir = data_dir
        run_dir = os.path.join(workdir, "nemo", "all")
        result, _ = train(config, run_dir)
        nemo_runs["all"] = run_dir
        timings["train_nemo_s"] = time.perf_counter() - t0
        log(
            f"NeMo, one backbone for {', '.join(categories)}: trained in {timings['train_nemo_s']:.0f} s, "
            f"held-out vertex matching {result.get('vertex_accuracy', float('nan')):.3f}"
        )
    for category in [] if shared else categories:
        t0 = time.perf_counter()
        config = nemo_config(category) if callable(nemo_config) else copy.deepcopy(nemo_config)
        config.category = category
        config.data.data_dir = data_dir
        run_dir = os.path.join(workdir, "nemo", category)
        result, _ = train(config, run_dir)
        nemo_runs[category] = run_dir
        timings[f"train_nemo_{category}_s"] = time.perf_counter() - t0
        log(
            f"NeMo {category}: trained in {timings[f'train_nemo_{category}_s']:.0f} s, "
            f"held-out vertex matching {result.get('vertex_accuracy', float('nan')):.3f}"
        )

    t0 = time.perf_counter()
    config = copy.deepcopy(baseline_config)
    config.data.data_dir = data_dir
    train_baseline(config, os.path.join(workdir, "baseline"), log=log)
    timings["train_baseline_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    figures = os.path.join(workdir, "figures")
    os.makedirs(figures, exist_ok=True)
    nemo_records = []
    for category, run_dir in nemo_runs.items():
        nemo_records += evaluate_lib.nemo_records(
            run_dir, "synthetic", data_dir, on_batch=evaluate_lib.figure_hook(run_dir, figures, category)
        )
    timings["eval_nemo_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    base_records = evaluate_lib.baseline_records(
        os.path.join(workdir, "baseline"), "synthetic", data_dir, categories=list(categories)
    )
    timings["eval_baseline_s"] = time.perf_counter() - t0

    results = {
        "nemo": eval_lib.evaluate_records(nemo_records),
        "baseline": eval_lib.evaluate_records(base_records),
    }
    results["timings"] = {k: round(v, 1) for k, v in timings.items()}
    with open(os.path.join(workdir, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1, default=float)
    log(eval_lib.format_table(results["nemo"], "NeMo"))
    log(eval_lib.format_table(results["baseline"], "Baseline (pose classifier)"))
    viz.accuracy_vs_occlusion(
        os.path.join(figures, "accuracy_vs_occlusion.png"),
        {"NeMo": results["nemo"], "Baseline": results["baseline"]},
        title="Synthetic set, all categories",
    )
    return results


def print_results_table(results: dict) -> str:
    """Side-by-side Acc@pi/6 per level of NeMo and the baseline (all categories pooled)."""
    levels = sorted(results["nemo"]["results"]["mean"])
    lines = [f"{'method':<10}" + "".join(f"{lv:>8}" for lv in levels) + "   (Acc@pi/6, %)"]
    for name in ("nemo", "baseline"):
        means = results[name]["results"]["mean"]
        lines.append(f"{name:<10}" + "".join(f"{100 * means[lv]['acc_pi6']:>8.1f}" for lv in levels))
    return "\n".join(lines)
