"""Building a dataset by name: the library side of ``tools/build_data.py``."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import tempfile
import time

import tensorflow_datasets as tfds
import tqdm

from nemo_jax import output
from nemo_jax.data import builders, pascal3d
from nemo_jax.data.layout import dataset_dir

logger = logging.getLogger(__name__)


def _registry():
    return {
        "synthetic": (builders.Synthetic, builders.synthetic.SyntheticOptions),
        "pascal3d": (pascal3d.Pascal3D, pascal3d.Pascal3DOptions),
        "occluded_pascal3d": (pascal3d.OccludedPascal3D, pascal3d.Pascal3DOptions),
        "objectnet3d": (pascal3d.ObjectNet3D, pascal3d.Pascal3DOptions),
    }


DATASETS = ("synthetic", "pascal3d", "occluded_pascal3d", "objectnet3d")


def parse_option_items(items) -> dict:
    """``["height=96", "seed=1"]`` (the tools' repeatable ``--option KEY=VALUE``) -> ``{"height": "96",
    "seed": "1"}``; ``ValueError`` on an item without ``=``. Values stay strings (see make_options)."""
    bad = [item for item in items if "=" not in item]
    if bad:
        raise ValueError(f"--option {bad[0]!r}: expected KEY=VALUE")
    return dict(item.split("=", 1) for item in items)


def make_options(dataset: str, overrides: dict):
    """The dataset's options dataclass with ``overrides`` (field -> value, strings are parsed to the
    field's type: ints, floats, comma-separated tuples)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    cls = _registry()[dataset][1]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    kwargs = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ValueError(f"{dataset} options: unknown field {key!r}; known: {', '.join(fields)}")
        default = getattr(defaults, key)
        if isinstance(value, str):
            value = _parse_option(dataset, key, value, default)
        kwargs[key] = value
    return cls(**kwargs)


def _parse_option(dataset: str, key: str, value: str, default):
    """``value`` (a string) as the type of the option's ``default``; ``ValueError`` naming the option."""
    try:
        if isinstance(default, tuple):
            parts = [p for p in value.split(",") if p]
            return tuple(type(default[0])(p) if default else p for p in parts)
        if isinstance(default, bool):
            if value.lower() not in ("1", "true", "yes", "0", "false", "no"):
                raise ValueError("expected true/false, yes/no or 1/0")
            return value.lower() in ("1", "true", "yes")
        return value if default is None else type(default)(value)
    except ValueError as err:
        kind = type(default[0] if isinstance(default, tuple) and default else default).__name__
        raise ValueError(
            f"{dataset} options: {key}={value!r} is not a valid {kind} "
            f"{'list ' if isinstance(default, tuple) else ''}(default {default!r}): {err}"
        ) from None


def build(
    dataset: str,
    data_dir: str,
    options=None,
    manual_dir: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> builders.BuildStats:
    """Builds ``dataset`` into ``data_dir/<name>/<version>``, atomically: tfds writes an incomplete
    directory and renames it at the end; with ``overwrite`` the new dataset is built in a scratch
    directory and replaces the old one only once complete (a failed rebuild keeps the old one).

    Returns the build statistics (examples written per split, skipped per split and reason).
    Raises ``FileExistsError`` if the dataset exists and not ``overwrite``.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    cls, options_cls = _registry()[dataset]
    options = options if options is not None else options_cls()
    if manual_dir and hasattr(options, "manual_dir"):
        if options.manual_dir and os.path.abspath(options.manual_dir) != os.path.abspath(manual_dir):
            raise ValueError(
                f"build: manual_dir {manual_dir!r} differs from options.manual_dir {options.manual_dir!r}"
            )
        options = dataclasses.replace(options, manual_dir=manual_dir)
    target = os.path.join(os.fspath(data_dir), cls.name, str(cls.VERSION))
    exists = os.path.isfile(os.path.join(target, "dataset_info.json"))
    if exists and not overwrite:
        raise FileExistsError(f"{target}: dataset already built (pass overwrite=True / --overwrite)")
    if exists:  # a rebuild replaces the folder whole: only if it holds nothing but a build's files
        foreign = output.foreign_entries(target, built_file_pattern(cls.name))
        if foreign:
            raise ValueError(
                f"{target}: holds files that the builder did not write ({output.describe(foreign)}); "
                "refusing to rebuild over them: move them first"
            )
    bar = tqdm.tqdm(desc=f"building {dataset}", unit="ex", disable=not progress)

    def tick(split):
        bar.set_postfix_str(split, refresh=False)
        bar.update()

    tfds.disable_progress_bar()
    _check_writable(os.fspath(data_dir))
    clean_interrupted(data_dir, cls.name, str(cls.VERSION))
    # A rebuild goes to a scratch data_dir beside the old dataset, which is replaced only on success.
    scratch = tempfile.mkdtemp(prefix=f".rebuild-{cls.name}-", dir=data_dir) if exists else None
    try:
        builder = cls(options=options, data_dir=scratch or data_dir, progress=tick)
        bar.total = getattr(builder, "expected_count", lambda: None)()
        config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        with tempfile.TemporaryDirectory() as downloads:  # nothing is downloaded; keep data_dir clean
            builder.download_and_prepare(
                download_dir=downloads, download_config=config, file_format="array_record"
            )
        output.record_folder(builder.data_dir, f"build-data {dataset}")
        if scratch is not None:
            backup = target + ".replaced"
            os.rename(target, backup)
            os.rename(builder.data_dir, target)
            shutil.rmtree(backup)
    finally:
        bar.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    builder.stats.path = target
    return builder.stats


def built_file_pattern(name: str):
    """``rel -> bool``: whether a relative path inside a built dataset's version folder is one that
    the builders write (the tfds files, metadata and meshes), so that a build written before
    builds recorded their files in a manifest can still be rebuilt (:func:`build`)."""
    pattern = re.compile(
        rf"({re.escape(name)}-[A-Za-z0-9_]+\.array_record-\d+-of-\d+|dataset_info\.json|features\.json"
        r"|metadata\.json|[A-Za-z0-9_]+\.labels\.txt|meshes/[^/]+/[^/]+\.off)"
    )
    return lambda rel: pattern.fullmatch(rel) is not None


def _check_writable(data_dir: str) -> None:
    """Creates ``data_dir`` and writes a probe file there; ``OSError`` with a one-line message if not."""
    try:
        os.makedirs(data_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as err:
        raise OSError(
            f"data_dir {data_dir}: cannot write the dataset there ({err.strerror or err})"
        ) from None


def clean_interrupted(data_dir: str, name: str, version: str) -> list[str]:
    """Removes what an interrupted (killed) build of ``name`` left in ``data_dir``: tfds's
    ``<name>/incomplete.*`` folders, the old dataset a rebuild had moved aside
    (``<version>.replaced``) and the rebuild scratch folders ``.rebuild-*`` holding only this dataset.
    Returns the removed paths (each is logged)."""
    parent = os.path.join(data_dir, name)
    leftovers = []
    if os.path.isdir(parent):
        leftovers += [
            os.path.join(parent, n)
            for n in sorted(os.listdir(parent))
            if n.startswith("incomplete.") or n == f"{version}.replaced"
        ]
    for n in sorted(os.listdir(data_dir)):
        path = os.path.join(data_dir, n)
        if n.startswith(".rebuild-") and os.path.isdir(path) and set(os.listdir(path)) <= {name}:
            leftovers.append(path)
    for path in leftovers:
        logger.warning("%s: removing what an interrupted build left behind", path)
        shutil.rmtree(path, ignore_errors=True)
    return leftovers


def ensure_built(
    dataset: str,
    data_dir: str,
    options: dict | None = None,
    categories=(),
    manual_dir: str | None = None,
    progress: bool = True,
    log=print,
) -> str:
    """Builds ``dataset`` into ``data_dir`` unless a complete version is already there, and returns
    that version's directory. ``options``: overrides as for :func:`make_options`; ``categories``
    (empty: the builder's default list) are built, and an existing dataset must hold them all
    (``ValueError`` naming the missing ones otherwise)."""
    try:
        path = dataset_dir(dataset, data_dir)
    except FileNotFoundError:
        overrides = dict(options or {})
        if categories:
            overrides["categories"] = ",".join(categories)
        t0 = time.perf_counter()
        stats = build(dataset, data_dir, make_options(dataset, overrides), manual_dir, progress=progress)
        log(f"{summary(dataset, stats)}\nbuilt in {time.perf_counter() - t0:.0f} s")
        return stats.path
    names = tfds.builder_from_directory(path).info.features["category"].names
    missing = [c for c in categories if c not in names]
    if missing:
        raise ValueError(f"{path} lacks categories {missing}; delete it or use another data_dir")
    log(f"{dataset}: using {path}")
    return path


def summary(dataset: str, stats: builders.BuildStats) -> str:
    """A human-readable closing summary of a build."""
    lines = [f"{dataset}: written to {getattr(stats, 'path', '?')}", "examples written per split:"]
    lines += [f"  {split:10s} {count}" for split, count in stats.written.items()]
    if stats.skipped:
        lines.append("examples skipped:")
        lines += [
            f"  {split:10s} {count:6d}  {reason}" for (split, reason), count in sorted(stats.skipped.items())
        ]
    else:
        lines.append("examples skipped: none")
    return "\n".join(lines)
