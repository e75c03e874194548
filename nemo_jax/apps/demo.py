"""The main job: NeMo vs a pose-classification baseline on the embedded synthetic dataset, CPU-sized.

Builds the synthetic set if absent, trains one NeMo model per category and one baseline, evaluates
both on occlusion levels L0-L3, prints the tables, writes ``results.json`` (``{"nemo": ...,
"baseline": ...}``, each in ``tools/evaluate.py``'s format) and figures into the workdir.
"""

from __future__ import annotations

import concurrent.futures
import copy
import importlib.util
import multiprocessing
import os
import time

from nemo_jax import data as data_lib
from nemo_jax import eval as eval_lib
from nemo_jax import output, viz
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


def default_jobs() -> int:
    """How many demo jobs run at once: 1 on an accelerator (one device, shared memory), otherwise
    the CPU count, at most 4 (the demo has 4 jobs: 3 NeMo runs and the baseline).

    A CPU training step keeps about 1.6 of 2 cores busy; XLA compilation, state creation and the
    host side of data loading and evaluation use one. Two jobs at once fill the idle share."""
    import jax  # noqa: PLC0415

    if jax.default_backend() != "cpu":
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def _nemo_job(category: str, config, run_dir: str, data_dir: str, figures: str) -> dict:
    """Trains one NeMo run (one category, or a shared run of several: ``category == "all"``) and
    scores it on L0-L3; in a worker process or inline. Returns its records, seconds and log line."""
    t0 = time.perf_counter()
    result, _ = train(config, run_dir)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    records = evaluate_lib.nemo_records(
        run_dir, "synthetic", data_dir, on_batch=evaluate_lib.figure_hook(run_dir, figures, category)
    )
    name = f"one backbone for {', '.join(config.categories)}" if category == "all" else category
    line = (
        f"NeMo {name}: trained in {train_s:.0f} s, held-out vertex matching "
        f"{result.get('vertex_accuracy', float('nan')):.3f}, scored in {time.perf_counter() - t0:.0f} s"
    )
    return {"records": records, "train_s": train_s, "eval_s": time.perf_counter() - t0, "line": line}


def _baseline_job(config, run_dir: str, data_dir: str, categories) -> dict:
    """Trains the baseline and scores it on L0-L3 (in a worker process or inline)."""
    t0 = time.perf_counter()
    train_baseline(config, run_dir, log=lambda line: print(line, flush=True))
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    records = evaluate_lib.baseline_records(run_dir, "synthetic", data_dir, categories=list(categories))
    eval_s = time.perf_counter() - t0
    line = f"Baseline: trained in {train_s:.0f} s, scored in {eval_s:.0f} s"
    return {"records": records, "train_s": train_s, "eval_s": eval_s, "line": line}


def run_demo(
    workdir: str, data_dir: str, categories, nemo_config, baseline_config, log=print, jobs: int = 1
) -> dict:
    """Runs the whole comparison; returns ``{"nemo": results, "baseline": results, "timings": ...}``.

    ``nemo_config`` is either one ConfigDict (copied, with ``category`` set, for every category) or a
    callable ``category -> ConfigDict`` (per-category settings, e.g. ``synthetic_cpu.get_config``).
    A ConfigDict with ``categories`` (``configs/synthetic_all.py``) trains ONE backbone for all of
    ``categories`` instead (one run, ``workdir/nemo/all``), which one checkpoint then evaluates.

    ``jobs``: how many of the independent jobs (each NeMo run, the baseline; each trains, then
    scores L0-L3) run at once, in separate processes (``spawn``). Every job is a pure function of
    its config and data, so the numbers do not depend on ``jobs``; only the wall clock does. 1 runs
    them one after the other in this process. ``timings`` holds each job's own seconds (with
    ``jobs > 1`` they overlap) and the wall clock of the whole (``total_s``).

    ``workdir`` may hold only an earlier demo's output (:mod:`nemo_jax.output`): its training
    runs (``nemo/``, ``baseline/``) are resumed, its ``results.json`` and ``figures/`` replaced when
    the demo succeeds; a workdir holding other files is refused before any work."""
    with output.output_folder(workdir, "nemo-jax-demo", "--workdir", folders=RUN_FOLDERS) as out:
        return _run_demo(workdir, out, data_dir, categories, nemo_config, baseline_config, log, jobs)


#: The demo's training runs (sub-folders of its workdir, owned whole: resumed, never replaced).
RUN_FOLDERS = ("nemo", "baseline")


def _run_demo(workdir, out, data_dir, categories, nemo_config, baseline_config, log, jobs) -> dict:
    """:func:`run_demo` with the workdir checked: runs go to ``workdir``, results and figures to the
    scratch folder ``out``, which is moved into ``workdir`` when the demo succeeds."""
    start = time.perf_counter()
    timings = {}
    t0 = time.perf_counter()
    data_lib.ensure_built("synthetic", data_dir, categories=categories, log=log)
    timings["data_s"] = time.perf_counter() - t0
    figures = os.path.join(out, "figures")
    os.makedirs(figures, exist_ok=True)

    nemo_jobs = {}  # name -> (category, config, run_dir)
    shared = not callable(nemo_config) and bool(nemo_config.get("categories", ()))
    if shared:
        config = copy.deepcopy(nemo_config)
        config.categories = tuple(categories)
        config.train.no_flip_categories = tuple(
            c for c in config.train.get("no_flip_categories", ()) if c in categories
        )
        config.data.data_dir = data_dir
        nemo_jobs["all"] = config
    for category in [] if shared else categories:
        config = nemo_config(category) if callable(nemo_config) else copy.deepcopy(nemo_config)
        config.category = category
        config.data.data_dir = data_dir
        nemo_jobs[category] = config
    base = copy.deepcopy(baseline_config)
    base.data.data_dir = data_dir

    # Longest first (by training steps), the baseline (cheap steps) last: the pool stays full.
    order = sorted(nemo_jobs, key=lambda name: -int(nemo_jobs[name].train.steps))
    calls = {
        name: (_nemo_job, name, nemo_jobs[name], os.path.join(workdir, "nemo", name), data_dir, figures)
        for name in order
    }
    calls["baseline"] = (_baseline_job, base, os.path.join(workdir, "baseline"), data_dir, categories)
    if jobs > 1:
        context = multiprocessing.get_context("spawn")  # never fork a process that has started jax
        with concurrent.futures.ProcessPoolExecutor(min(jobs, len(calls)), mp_context=context) as pool:
            futures = {name: pool.submit(*call) for name, call in calls.items()}
            for future in concurrent.futures.as_completed(futures.values()):
                log(future.result()["line"])
            done = {name: future.result() for name, future in futures.items()}
    else:
        done = {}
        for name, (fn, *args) in calls.items():
            done[name] = fn(*args)
            log(done[name]["line"])

    nemo_records = []
    for name in nemo_jobs:  # category order, whatever order the jobs ran in
        nemo_records += done[name]["records"]
        key = "nemo" if shared else f"nemo_{name}"
        timings[f"train_{key}_s"] = done[name]["train_s"]
        timings[f"eval_{key}_s"] = done[name]["eval_s"]
    timings["train_baseline_s"] = done["baseline"]["train_s"]
    timings["eval_baseline_s"] = done["baseline"]["eval_s"]
    results = {
        "nemo": eval_lib.evaluate_records(nemo_records),
        "baseline": eval_lib.evaluate_records(done["baseline"]["records"]),
    }
    timings["jobs"] = jobs
    timings["total_s"] = time.perf_counter() - start
    results["timings"] = {k: round(v, 1) for k, v in timings.items()}
    output.write_json(os.path.join(out, "results.json"), results, indent=1, default=float)
    log(eval_lib.format_table(results["nemo"], "NeMo"))
    log(eval_lib.format_table(results["baseline"], "Baseline (pose classifier)"))
    viz.accuracy_vs_occlusion(
        os.path.join(figures, "accuracy_vs_occlusion.png"),
        {"NeMo": results["nemo"], "Baseline": results["baseline"]},
        title="Synthetic set, all categories",
    )
    title = "Synthetic set, all categories"
    evaluate_lib.occluder_figure(figures, results["nemo"], results["baseline"], title)
    return results


def print_results_table(results: dict) -> str:
    """Side-by-side Acc@pi/6 per level of NeMo and the baseline (all categories pooled) and, when
    NeMo's results have them, its occluder map's AUROC at the predicted pose (``-`` where undefined,
    e.g. L0 with no occluded cell)."""
    levels = sorted(results["nemo"]["results"]["mean"])
    lines = [f"{'method':<10}" + "".join(f"{lv:>8}" for lv in levels) + "   (Acc@pi/6, %)"]
    for name in ("nemo", "baseline"):
        means = results[name]["results"]["mean"]
        lines.append(f"{name:<10}" + "".join(f"{100 * means[lv]['acc_pi6']:>8.1f}" for lv in levels))
    means = results["nemo"]["results"]["mean"]
    if any("occluder_auroc" in means[lv] for lv in levels):
        values = [means[lv].get("occluder_auroc") for lv in levels]
        cells = "".join(f"{'-':>8}" if v is None else f"{v:>8.3f}" for v in values)
        lines.append(f"{'nemo occ.':<10}{cells}   (occluder AUROC at the predicted pose)")
    return "\n".join(lines)
