"""One backbone per category vs one backbone for all: accuracy per level, training time and
parameter count of two sets of runs on the same images (``tools/compare_shared.py``).

Training time is read from each run's ``metrics.jsonl`` (``images_per_s`` of every logged interval,
the interval's steps x batch size over it): the time of the training steps, compilation included,
checkpoints and the held-out matching excluded. Runs trained side by side on a busy machine compare
with each other; their absolute seconds do not transfer to an idle one.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from nemo_jax import eval as eval_lib
from nemo_jax.apps.evaluate import evaluate, nemo_workdirs
from nemo_jax.train.run import load_run


def _run_dirs(workdir: str) -> list[str]:
    if os.path.isfile(os.path.join(workdir, "config.json")):
        return [workdir]
    return list(nemo_workdirs(workdir).values())


def training_time(workdir: str) -> dict:
    """``{"steps", "images", "train_s"}`` of one run from its ``metrics.jsonl`` (train rows)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no training metrics")
    with open(os.path.join(workdir, "config.json")) as fh:
        batch = int(json.load(fh)["train"]["batch_size"])
    prev, seconds = 0, 0.0
    with open(path) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    for row in rows:
        if "images_per_s" not in row or "step" not in row:
            continue
        step = int(row["step"])
        seconds += (step - prev) * batch / max(float(row["images_per_s"]), 1e-9)
        prev = step
    return {"steps": prev, "images": prev * batch, "train_s": seconds}


def parameter_count(workdir: str) -> dict:
    """``{"backbone", "mesh"}``: numbers in the run's backbone (params + batch stats) and in its
    neural meshes' real vertex features and clutter queues (padding rows left out)."""
    _, _, variables, mesh = load_run(workdir)
    backbone = sum(int(np.size(x)) for x in jax.tree.leaves(variables))
    features = np.asarray(mesh.features)
    real = np.any(features != 0, axis=-1)  # padding vertices carry zero features
    mesh_numbers = int(real.sum()) * features.shape[-1] + int(np.size(mesh.clutter))
    return {"backbone": backbone, "mesh": mesh_numbers}


def summarize_runs(workdir: str) -> dict:
    """Training time and parameter count summed over the runs in ``workdir``."""
    out = {"runs": 0, "steps": 0, "images": 0, "train_s": 0.0, "backbone": 0, "mesh": 0}
    for run_dir in _run_dirs(workdir):
        out["runs"] += 1
        for key, value in {**training_time(run_dir), **parameter_count(run_dir)}.items():
            out[key] += value
    return out


def compare_shared(
    per_category: str,
    shared: str,
    dataset: str,
    data_dir: str,
    levels=(0, 1, 2, 3),
    search: bool = True,
    results_files: dict | None = None,
) -> dict:
    """Evaluates the per-category runs (a folder of runs) and the shared run on the same split
    (``search``: the shared run with the category searched too); returns
    ``{name: {"results": evaluate's results, **summarize_runs}}``. ``results_files``: ``{row name:
    path}`` of results JSONs already written by ``tools/evaluate.py`` for these runs and images
    (rows ``"per-category"``, ``"shared"``, ``"shared, category searched"``), read instead of
    evaluating again."""
    rows = {
        "per-category": (per_category, "ground_truth"),
        "shared": (shared, "ground_truth"),
    }
    if search:
        rows["shared, category searched"] = (shared, "search")
    out = {}
    results_files = {k: v for k, v in (results_files or {}).items() if v}
    unknown = sorted(set(results_files) - set(rows))
    if unknown:
        raise ValueError(f"compare_shared: results for unknown rows {unknown}; rows: {list(rows)}")
    for name, (workdir, mode) in rows.items():
        path = results_files.get(name)
        if path:
            with open(path) as fh:
                results = json.load(fh)
            if "results" not in results:
                raise ValueError(f"{path}: not a results JSON of tools/evaluate.py (no 'results')")
        else:
            kwargs = {"category_mode": mode} if mode != "ground_truth" else {}
            results = evaluate(workdir, dataset, data_dir, levels=levels, **kwargs)
        out[name] = {"results": results["results"], **summarize_runs(workdir)}
    return out


def format_comparison(comparison: dict) -> str:
    """The table: Acc@pi/6 (%) per level over all categories, category accuracy at each level
    (searched rows), training steps, images, seconds, and parameters."""
    first = next(iter(comparison.values()))
    levels = list(first["results"]["mean"])
    head = f"{'':<27}" + "".join(f"{lv:>7}" for lv in levels)
    head += f"{'CatAcc':>8}{'runs':>6}{'steps':>7}{'train s':>9}{'backbone':>10}{'mesh':>9}"
    lines = ["Acc@pi/6 (%) per occlusion level, all categories pooled", head]
    for name, row in comparison.items():
        means = row["results"]["mean"]
        line = f"{name:<27}" + "".join(f"{100 * means[lv]['acc_pi6']:>7.1f}" for lv in levels)
        cat = [means[lv].get("category_acc") for lv in levels]
        cat_text = f"{100 * float(np.mean(cat)):.1f}" if "searched" in name and None not in cat else "-"
        line += f"{cat_text:>8}{row['runs']:>6}{row['steps']:>7}{row['train_s']:>9.0f}"
        line += f"{row['backbone']:>10,}{row['mesh']:>9,}"
        lines.append(line)
    lines.append("")
    lines.append(eval_lib.format_table(comparison.get("shared", first)["results"], "shared, per category"))
    return "\n".join(lines)
