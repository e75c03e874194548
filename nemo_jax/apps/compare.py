"""The same trained NeMo runs, the same images, one pose search per rasterizer variant.

Every variant evaluates every run on the same occlusion levels with the same search settings
(NeMo's grid + Adam refinement); only ``RasterSettings.variant`` changes. Reported per variant:
NeMo's metric (Acc@pi/6, Acc@pi/18, median error) per level over all categories, and milliseconds
per image (backbone + search), timed from the second batch of each category on, so compilation is
excluded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from nemo_jax import eval as eval_lib
from nemo_jax.apps import evaluate as evaluate_lib
from nemo_jax.render import get_variant


def compare_variants(
    workdir: str,
    data_dir: str,
    variants: Sequence[str],
    dataset: str = "synthetic",
    levels: Sequence[int] = (0, 1, 2, 3),
    search_overrides: dict | None = None,
    batch_size: int = 16,
    log=print,
) -> dict:
    """Evaluates the NeMo run(s) in ``workdir`` with each rasterizer variant.

    Args:
      workdir: one training run (``config.json``) or a folder of runs, one per category.
      data_dir: where the dataset was built.
      variants: registered variant names, each with its default parameters.
      dataset, levels: what to evaluate on (NeMo's occlusion levels).
      search_overrides: :class:`~nemo_jax.inference.SearchConfig` fields (``steps``, ``num_starts``).
      batch_size: images per search call.

    Returns:
      ``{variant: {"results": {category | "mean": {"L0": {"n", "acc_pi6", "acc_pi18",
      "med_err_deg"}, ...}}, "ms_per_image": float, "timed_images": int, "wall_s": float}}``.
    """
    for name in variants:
        get_variant(name)  # unknown names fail before any work, listing the registered ones
    if os.path.isfile(os.path.join(workdir, "config.json")):
        runs = {os.path.basename(os.path.normpath(workdir)): workdir}
    else:
        runs = evaluate_lib.nemo_workdirs(workdir)
    comparison = {}
    for name in variants:
        t0 = time.perf_counter()
        records, timed_s, timed_images = [], 0.0, 0
        for category, run_dir in runs.items():
            state = {"last": None}

            def on_batch(batch, result, state=state):
                nonlocal timed_s, timed_images
                now = time.perf_counter()
                if state["last"] is not None:  # the first batch of a run includes compilation
                    timed_s += now - state["last"]
                    timed_images += len(batch["id"])
                state["last"] = now

            records += evaluate_lib.nemo_records(
                run_dir,
                dataset,
                data_dir,
                levels,
                batch_size=batch_size,
                search_overrides=search_overrides,
                variant=name,
                on_batch=on_batch,
            )
            log(f"{name}: {category} done ({time.perf_counter() - t0:.0f} s)")
        comparison[name] = {
            "results": eval_lib.evaluate_records(records)["results"],
            "ms_per_image": 1e3 * timed_s / timed_images if timed_images else float("nan"),
            "timed_images": timed_images,
            "wall_s": time.perf_counter() - t0,
        }
    return comparison


def format_comparison(comparison: dict, title: str = "") -> str:
    """A text table: one row per variant, Acc@pi/6 / Acc@pi/18 (%) / MedErr (deg) per level (all
    categories pooled), then ms per image."""
    levels = sorted(
        {lv for entry in comparison.values() for lv in entry["results"]["mean"]}, key=lambda s: int(s[1:])
    )
    head = f"{'variant':<12}" + "".join(f"{lv + ' pi/6':>9}{'pi/18':>7}{'MedErr':>8}" for lv in levels)
    lines = ([title] if title else []) + [head + f"{'ms/img':>9}", "-" * (len(head) + 9)]
    for name, entry in comparison.items():
        row = f"{name:<12}"
        for lv in levels:
            s = entry["results"]["mean"].get(lv, {})
            row += (
                f"{100 * s.get('acc_pi6', float('nan')):>9.1f}{100 * s.get('acc_pi18', float('nan')):>7.1f}"
            )
            row += f"{s.get('med_err_deg', float('nan')):>8.1f}"
        lines.append(row + f"{entry['ms_per_image']:>9.1f}")
    return "\n".join(lines)
