"""Runs an estimator exported by ``nemo-jax-export`` with jax and numpy alone (jax's serialization
needs the ``flatbuffers`` package); imports nothing else from nemo_jax, so this file works copied alone."""

import hashlib
import json
import zipfile
import zlib

import jax
import numpy as np


def load(path):
    """``estimate(images)`` of the artifact at ``path``: uint8 ``[B, H, W, 3]`` crops of its size ->
    dict of numpy arrays (``azimuth``, ``elevation``, ``theta`` in radians, ``distance``, ``loss``,
    ``confidence``, ``occluder``, ``object_mask``); ``ValueError`` naming the file (and member)."""
    name, members = "manifest.json", {}
    try:  # a damaged deflate stream raises zlib.error rather than a CRC error
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read(name))
            digests = dict(manifest["sha256"])
            for name in sorted({*digests, "metadata.json", "estimator.stablehlo"}):
                members[name] = zf.read(name)
    except (zipfile.BadZipFile, zlib.error, KeyError, TypeError, ValueError, EOFError, OSError) as err:
        why = f"{name}: {type(err).__name__}: {err}"
        raise ValueError(f"{path}: not a complete nemo_jax export ({why})") from None
    if manifest.get("format") != "nemo_jax.export/1":
        raise ValueError(f"{path}: format {manifest.get('format')!r}; this loader reads 'nemo_jax.export/1'")
    for name, payload in members.items():
        if hashlib.sha256(payload).hexdigest() != digests.get(name):
            raise ValueError(f"{path}: member {name} is corrupt (its SHA-256 differs from manifest.json)")
    meta = json.loads(members["metadata.json"])
    exported = jax.export.deserialize(bytearray(members["estimator.stablehlo"]))
    want = (*meta["image_size"], 3)

    def estimate(images):
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != want or not len(images):
            got = f"{images.dtype} {list(images.shape)}"
            raise ValueError(f"{path}: exported for uint8 [B, {', '.join(map(str, want))}] crops, got {got}")
        return {k: np.asarray(v) for k, v in exported.call(images).items()}

    return estimate
