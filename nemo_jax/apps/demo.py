"""The main job: NeMo vs pose-classification baselines on the embedded synthetic dataset, CPU-sized.

Builds the synthetic set if absent, trains one NeMo model per category, the Res50-General-style
baseline (one classifier) and the Res50-Specific-style one (one classifier per category), evaluates
them on occlusion levels L0-L3, prints the tables, writes ``results.json`` (``{"nemo": ...,
"baseline": ..., "baseline_specific": ...}``, each in ``nemo-jax-evaluate``'s format) and figures
into the workdir. While the jobs run, :class:`Progress` shows one line per job.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import importlib.util
import json
import logging
import multiprocessing
import os
import sys
import threading
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
    quiet_third_party()
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
    """Trains a baseline (either variant) and scores it on L0-L3 through
    :func:`nemo_jax.apps.evaluate.baseline_records` (in a worker process or inline)."""
    quiet_third_party()
    t0 = time.perf_counter()
    train_baseline(config, run_dir, log=lambda *_: None)  # progress: the demo's own lines
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    records = evaluate_lib.baseline_records(run_dir, "synthetic", data_dir, categories=list(categories))
    eval_s = time.perf_counter() - t0
    name = "Baseline (Res50-Specific)" if config.get("variant") == "specific" else "Baseline"
    line = f"{name}: trained in {train_s:.0f} s, scored in {eval_s:.0f} s"
    return {"records": records, "train_s": train_s, "eval_s": eval_s, "line": line}


def run_demo(
    workdir: str,
    data_dir: str,
    categories,
    nemo_config,
    baseline_config,
    log=print,
    jobs: int = 1,
    baseline_specific_config=None,
    progress=None,
) -> dict:
    """Runs the whole comparison; returns ``{"nemo": results, "baseline": results,
    "baseline_specific": results, "timings": ...}`` (``baseline_specific`` only with its config).

    ``nemo_config`` is either one ConfigDict (copied, with ``category`` set, for every category) or a
    callable ``category -> ConfigDict`` (per-category settings, e.g. ``synthetic_cpu.get_config``).
    A ConfigDict with ``categories`` (``configs/synthetic_all.py``) trains ONE backbone for all of
    ``categories`` instead (one run, ``workdir/nemo/all``), which one checkpoint then evaluates.
    ``baseline_config``: the Res50-General baseline (``workdir/baseline``);
    ``baseline_specific_config`` (``configs/baseline_synthetic.py:specific``, optional): the
    Res50-Specific one, one classifier per category (``workdir/baseline_specific/<category>``).

    ``jobs``: how many of the independent jobs (each NeMo run, each baseline; each trains, then
    scores L0-L3) run at once, in separate processes (``spawn``). Every job is a pure function of
    its config and data, so the numbers do not depend on ``jobs``; only the wall clock does. 1 runs
    them one after the other in this process. ``timings`` holds each job's own seconds (with
    ``jobs > 1`` they overlap) and the wall clock of the whole (``total_s``).

    ``progress``: a :class:`Progress` showing one line per job while they run (``None``: none).

    ``workdir`` may hold only an earlier demo's output (:mod:`nemo_jax.output`): its training
    runs (``nemo/``, ``baseline/``, ``baseline_specific/``) are resumed, its ``results.json`` and
    ``figures/`` replaced when the demo succeeds; a workdir holding other files is refused before
    any work."""
    with output.output_folder(workdir, "nemo-jax-demo", "--workdir", folders=RUN_FOLDERS) as out:
        return _run_demo(
            workdir,
            out,
            data_dir,
            categories,
            nemo_config,
            (baseline_config, baseline_specific_config),
            log,
            jobs,
            progress,
        )


#: The demo's training runs (sub-folders of its workdir, owned whole: resumed, never replaced).
RUN_FOLDERS = ("nemo", "baseline", "baseline_specific")

#: Row labels of the baselines in the printed tables and the figure.
BASELINE_NAMES = {"baseline": "Baseline (Res50-General)", "baseline_specific": "Baseline (Res50-Specific)"}


def _run_demo(workdir, out, data_dir, categories, nemo_config, baseline_configs, log, jobs, progress):
    """:func:`run_demo` with the workdir checked: runs go to ``workdir``, results and figures to the
    scratch folder ``out``, which is moved into ``workdir`` when the demo succeeds."""
    start = time.perf_counter()
    timings = {}
    t0 = time.perf_counter()
    live = progress is None or progress.live  # a build bar only where it redraws in place
    if not live and not _is_built(data_dir):
        log(f"building the synthetic set into {data_dir} (about a minute on 2 cores)")
    data_lib.ensure_built("synthetic", data_dir, categories=categories, log=log, progress=live)
    timings["data_s"] = time.perf_counter() - t0
    figures = os.path.join(out, "figures")
    os.makedirs(figures, exist_ok=True)

    nemo_jobs = {}  # name -> config
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
    baselines = {}  # results key -> config
    for key, config in zip(("baseline", "baseline_specific"), baseline_configs, strict=True):
        if config is not None:
            baselines[key] = copy.deepcopy(config)
            baselines[key].data.data_dir = data_dir

    # Longest first (by training steps), the baselines (cheap steps) last: the pool stays full.
    order = sorted(nemo_jobs, key=lambda name: -int(nemo_jobs[name].train.steps))
    calls, watched = {}, []
    for name in order:
        run_dir = os.path.join(workdir, "nemo", name)
        calls[name] = (_nemo_job, name, nemo_jobs[name], run_dir, data_dir, figures)
        label = "NeMo, one backbone" if name == "all" else f"NeMo {name}"
        watched.append(JobWatch(name, label, run_dir, int(nemo_jobs[name].train.steps)))
    for key, config in baselines.items():
        run_dir = os.path.join(workdir, key)
        calls[key] = (_baseline_job, config, run_dir, data_dir, categories)
        label = "baseline Specific" if key == "baseline_specific" else "baseline General"
        watched.append(
            JobWatch(key, label, run_dir, int(config.train.steps), nested=key == "baseline_specific")
        )
    if progress is not None:
        progress.start(watched)
    try:
        done = _run_jobs(calls, jobs, progress)
    finally:
        if progress is not None:
            progress.stop()
    for name in calls:
        log(done[name]["line"])

    nemo_records = []
    for name in nemo_jobs:  # category order, whatever order the jobs ran in
        nemo_records += done[name]["records"]
        key = "nemo" if shared else f"nemo_{name}"
        timings[f"train_{key}_s"] = done[name]["train_s"]
        timings[f"eval_{key}_s"] = done[name]["eval_s"]
    results = {"nemo": eval_lib.evaluate_records(nemo_records)}
    for key in baselines:
        timings[f"train_{key}_s"] = done[key]["train_s"]
        timings[f"eval_{key}_s"] = done[key]["eval_s"]
        results[key] = eval_lib.evaluate_records(done[key]["records"])
    timings["jobs"] = jobs
    timings["total_s"] = time.perf_counter() - start
    results["timings"] = {k: round(v, 1) for k, v in timings.items()}
    output.write_json(os.path.join(out, "results.json"), results, indent=1, default=float)
    log(eval_lib.format_table(results["nemo"], "NeMo"))
    for key in baselines:
        log(eval_lib.format_table(results[key], f"{BASELINE_NAMES[key]}, pose classifier"))
    viz.accuracy_vs_occlusion(
        os.path.join(figures, "accuracy_vs_occlusion.png"),
        {"NeMo": results["nemo"], **{BASELINE_NAMES[k]: results[k] for k in baselines}},
        title="Synthetic set, all categories",
    )
    title = "Synthetic set, all categories"
    evaluate_lib.occluder_figure(figures, results["nemo"], results["baseline"], title)
    return results


def _is_built(data_dir: str) -> bool:
    try:
        data_lib.dataset_dir("synthetic", data_dir)
    except FileNotFoundError:
        return False
    return True


def _run_jobs(calls: dict, jobs: int, progress) -> dict:
    """Runs ``calls`` (``name -> (fn, *args)``), ``jobs`` at once in spawned processes (1: inline,
    one after the other); tells ``progress`` when each starts scoring and ends. ``name -> result``."""
    done = {}
    if jobs > 1:
        context = multiprocessing.get_context("spawn")  # never fork a process that has started jax
        with concurrent.futures.ProcessPoolExecutor(
            min(jobs, len(calls)), mp_context=context, initializer=quiet_third_party
        ) as pool:
            futures = {pool.submit(*call): name for name, call in calls.items()}
            for future in concurrent.futures.as_completed(futures):
                done[futures[future]] = future.result()
                if progress is not None:
                    progress.finished(futures[future], done[futures[future]])
        return done
    for name, (fn, *args) in calls.items():
        done[name] = fn(*args)
        if progress is not None:
            progress.finished(name, done[name])
    return done


def print_results_table(results: dict) -> str:
    """Side-by-side Acc@pi/6 per level of NeMo and the baseline (all categories pooled) and, when
    NeMo's results have them, its occluder map's AUROC at the predicted pose (``-`` where undefined,
    e.g. L0 with no occluded cell)."""
    levels = sorted(results["nemo"]["results"]["mean"])
    lines = [f"{'method':<18}" + "".join(f"{lv:>8}" for lv in levels) + "   (Acc@pi/6, %)"]
    for name in ("nemo", "baseline", "baseline_specific"):
        if name not in results:  # baseline_specific: only when the demo trained it
            continue
        means = results[name]["results"]["mean"]
        lines.append(f"{name:<18}" + "".join(f"{100 * means[lv]['acc_pi6']:>8.1f}" for lv in levels))
    means = results["nemo"]["results"]["mean"]
    if any("occluder_auroc" in means[lv] for lv in levels):
        values = [means[lv].get("occluder_auroc") for lv in levels]
        cells = "".join(f"{'-':>8}" if v is None else f"{v:>8.3f}" for v in values)
        lines.append(f"{'nemo occ.':<18}{cells}   (occluder AUROC at the predicted pose)")
    return "\n".join(lines)


@dataclasses.dataclass
class JobWatch:
    """What :class:`Progress` reads of one job: its training rows (``metrics.jsonl`` in ``run_dir``,
    or in each category's sub-folder when ``nested``, a Res50-Specific baseline) against ``steps``
    training steps in all."""

    name: str
    label: str
    run_dir: str
    steps: int
    nested: bool = False

    def latest(self) -> dict:
        """``{"step", "loss", "images_per_s"}`` so far (steps summed over a nested job's runs; loss
        and speed those of its newest row), ``{}`` before the first row."""
        files = [os.path.join(self.run_dir, "metrics.jsonl")]
        if self.nested and os.path.isdir(self.run_dir):
            files = [os.path.join(self.run_dir, d, "metrics.jsonl") for d in sorted(os.listdir(self.run_dir))]
        step, newest = 0, {}
        for path in files:
            rows = _train_rows(path)
            if rows:
                step += int(rows[-1]["step"])
                newest = rows[-1]
        return {**newest, "step": step} if newest else {}


def _train_rows(path: str) -> list[dict]:
    """The ``split == "train"`` rows of a ``metrics.jsonl`` (a line being written is skipped)."""
    try:
        with open(path) as fh:
            lines = fh.readlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("split") == "train" and "step" in row:
            rows.append(row)
    return rows


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class Progress:
    """One progress line per demo job while the jobs run, read from each job's ``metrics.jsonl``
    by a thread of the calling process (the jobs themselves print nothing).

    On a terminal (``stream.isatty()``): one live line per job, redrawn in place every
    ``interval`` seconds: label, training step/total, loss, images per second and time left, then
    "scoring L0-L3" and "done". Elsewhere (a log file, a pipe): plain lines, no carriage returns,
    one per job each time it passes another ``every`` training steps (default: a tenth of its
    steps), and when it starts scoring and when it ends."""

    def __init__(self, stream=None, interval: float = 1.0, every: int = 0, live: bool | None = None):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else bool(live)
        self.interval = float(interval)
        self.every = int(every)
        self.jobs: list[JobWatch] = []
        self.state: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._drawn = 0

    def start(self, jobs) -> None:
        self.jobs = list(jobs)
        now = time.perf_counter()
        self.state = {j.name: {"phase": "training", "t0": now, "printed": 0, "line": ""} for j in self.jobs}
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def finished(self, name: str, result: dict) -> None:
        with self._lock:
            self.state[name]["phase"] = "done"
            self.state[name]["summary"] = result.get("line", "")
        self._tick()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._tick(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._tick()

    def _line(self, job: JobWatch, row: dict, state: dict) -> str:
        total = max(job.steps, 1)
        step = min(int(row.get("step", 0)), total)
        head = f"{job.label:<18} step {step:>5}/{total}"
        if state["phase"] == "done":
            return f"{head}  done: {state.get('summary', '')}"
        if state["phase"] == "scoring" or (step >= total and row):
            state["phase"] = "scoring"
            return f"{head}  scoring L0-L3 ({_duration(time.perf_counter() - state['t0'])} so far)"
        if not row:
            return f"{job.label:<18} step     0/{total}  starting (compiling)"
        rate = float(row.get("images_per_s", 0.0))
        elapsed = time.perf_counter() - state["t0"]
        left = elapsed * (total - step) / step if step else float("nan")
        return (
            f"{head}  loss {float(row.get('loss', float('nan'))):.3f}  {rate:6.1f} img/s  "
            f"{_duration(left)} left"
        )

    def _tick(self, final: bool = False) -> None:
        with self._lock:
            lines = []
            for job in self.jobs:
                state = self.state[job.name]
                row = job.latest()
                before = state["phase"]
                line = self._line(job, row, state)
                lines.append(line)
                if self.live:
                    continue
                step = int(row.get("step", 0)) if row else 0
                every = self.every or max(job.steps // 10, 1)
                changed = state["phase"] != before or state["phase"] == "done" and not state.get("told")
                if (state["phase"] == "training" and step >= state["printed"] + every) or changed:
                    if state["phase"] == "done":
                        state["told"] = True
                    state["printed"] = step - step % every
                    print(line, file=self.stream, flush=True)
            if self.live:
                up = f"\x1b[{self._drawn}F" if self._drawn else ""
                self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
                self.stream.flush()
                self._drawn = len(lines)
            if final and self.live:
                self._drawn = 0


#: Python loggers whose WARNING records on a normal demo run are known and harmless, and the start
#: of each such message: everything else they log still shows.
KNOWN_HARMLESS = {
    "absl": (
        # tensorflow_datasets' image decoding, whichever library does it: the images are the same
        "OpenCV is not installed",
        # orbax opening a run's checkpoints read-only to score it, which is what the demo asks for;
        # a damaged checkpoint is named by nemo_jax.train.checkpoint's own checks
        "Given directory is read only",
        "Metadata file does not exist",
    ),
    "jax._src.xla_bridge": ("Unable to initialize backend", "An NVIDIA GPU may be present"),
}


class _DropKnown(logging.Filter):
    def __init__(self, starts: tuple[str, ...]):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.starts)


def quiet_third_party() -> None:
    """Silences, at their source, the third-party messages a normal demo run prints and that say
    nothing about the run (:data:`KNOWN_HARMLESS`); real warnings still show. Idempotent; runs in
    the demo's process and in each job's."""
    for name, starts in KNOWN_HARMLESS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnown) for f in logger.filters):
            logger.addFilter(_DropKnown(starts))
