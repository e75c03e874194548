"""Where a built dataset lives: ``<data_dir>/<name>/<version>/`` (tfds files, ``meshes/``)."""

from __future__ import annotations

import os
import re


def dataset_dir(name: str, data_dir: str) -> str:
    """``<data_dir>/<name>/<newest complete version>``; ``FileNotFoundError`` names what is missing."""
    root = os.path.join(os.fspath(data_dir), name)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: dataset {name!r} is not built in data_dir {data_dir!r}")
    versions = [
        v
        for v in os.listdir(root)
        if re.fullmatch(r"\d+\.\d+\.\d+", v) and os.path.isfile(os.path.join(root, v, "dataset_info.json"))
    ]
    if not versions:
        raise FileNotFoundError(
            f"{root}: no complete version of dataset {name!r} (no <version>/dataset_info.json)"
        )
    newest = max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))
    return os.path.join(root, newest)
