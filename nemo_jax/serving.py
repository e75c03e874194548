"""Runs an estimator exported by ``nemo-jax-export`` with jax and numpy alone (jax's serialization
needs the ``flatbuffers`` package); imports nothing else from nemo_jax, so this file works copied alone."""

import hashlib
import json
import os
import zipfile
import zlib

import jax
import numpy as np

MAX_INFLATION = 64  # a member may inflate to 64 x the archive's size + 1 MiB (far below a zip bomb's)


def load(path):
    """``estimate(images)``: uint8 ``[B, H, W, 3]`` crops -> numpy arrays (angles in radians) and ``flags``
    (names, per crop); ``ValueError`` naming the file and member or field. Checks all at load."""
    name, members, big = "manifest.json", {}, []
    try:  # a damaged deflate stream raises zlib.error rather than a CRC error
        limit = MAX_INFLATION * os.path.getsize(path) + 2**20
        with zipfile.ZipFile(path) as zf:
            big = [f"{i.filename} claims {i.file_size} bytes" for i in zf.infolist() if i.file_size > limit]
            manifest = {} if big else json.loads(zf.read(name))
            digests = {} if big else dict(manifest["sha256"])
            for name in [] if big else sorted({*digests, "metadata.json", "estimator.stablehlo"}):
                members[name] = zf.read(name)
    except (zipfile.BadZipFile, zlib.error, KeyError, TypeError, ValueError, EOFError, OSError) as err:
        why = f"{name}: {type(err).__name__}: {err}"
        raise ValueError(f"{path}: not a complete nemo_jax export ({why})") from None
    if big:
        raise ValueError(
            f"{path}: member {big[0]} inflated, over {limit} ({MAX_INFLATION} x the file); not read"
        )
    if manifest.get("format") != "nemo_jax.export/1":
        raise ValueError(f"{path}: format {manifest.get('format')!r}; this loader reads 'nemo_jax.export/1'")
    for name, payload in members.items():
        if hashlib.sha256(payload).hexdigest() != digests.get(name):
            raise ValueError(f"{path}: member {name} is corrupt (its SHA-256 differs from manifest.json)")
    meta = json.loads(members["metadata.json"])
    size, names = meta.get("image_size"), meta.get("flags", [])
    if not (isinstance(size, list) and len(size) == 2 and all(type(v) is int and v > 0 for v in size)):
        raise ValueError(f"{path}: metadata.json field 'image_size' is {size!r}, expected [H, W], both > 0")
    try:
        exported = jax.export.deserialize(bytearray(members["estimator.stablehlo"]))
    except Exception as err:  # noqa: BLE001 (flatbuffers and jax raise many kinds)
        raise ValueError(
            f"{path}: member estimator.stablehlo cannot be deserialized ({type(err).__name__})"
        ) from None

    def estimate(images):
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (*size, 3) or not len(images):
            got, want = f"{images.dtype} {list(images.shape)}", ", ".join(map(str, (*size, 3)))
            raise ValueError(f"{path}: exported for uint8 [B, {want}] crops, got {got}")
        out = {k: np.asarray(v) for k, v in exported.call(images).items()}
        if "flags" in out:  # bool [B, F] -> the names (metadata "flags") set, per crop
            out["flags"] = [[n for n, on in zip(names, row, strict=True) if on] for row in out["flags"]]
        return out

    return estimate
