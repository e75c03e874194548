"""Runs an estimator exported by ``nemo-jax-export`` with jax and numpy alone (jax's serialization
needs the ``flatbuffers`` package); imports nothing else from nemo_jax, so this file works copied alone."""

import hashlib
import json
import os
import zipfile
import zlib

import jax
import numpy as np

#: A member may inflate to at most this many times the whole archive's size (plus
#: :data:`INFLATE_SLACK` bytes): far above what weights and StableHLO compress by, far below a zip
#: bomb's ratio. Checked on the member's declared size before reading it; zipfile stops at that size.
MAX_INFLATION = 64
INFLATE_SLACK = 1 << 20


def member_limit(archive_bytes: int) -> int:
    """The most bytes one member of an artifact of ``archive_bytes`` bytes may inflate to."""
    return MAX_INFLATION * int(archive_bytes) + INFLATE_SLACK


def _read_member(zf, name: str, limit: int, path) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ValueError(
            f"{path}: member {name} claims {info.file_size} bytes inflated, more than {limit} "
            f"({MAX_INFLATION} x the file's size); refused before reading it"
        )
    return zf.read(info)


def load(path):
    """``estimate(images)`` of the artifact at ``path``: uint8 ``[B, H, W, 3]`` crops of its size ->
    dict of numpy arrays (``azimuth``, ``elevation``, ``theta`` in radians, ``distance``, ``loss``,
    ``confidence``, ``occluder``, ``object_mask``; with an artifact that exports them, ``flags``: per
    crop the list of reasons not to trust its pose, names from the metadata's ``flags``).

    Everything is checked here, at load, each failure a ``ValueError`` naming the file (and the
    member or field): the zip and the manifest's SHA-256 of each member, each member's declared
    size against :func:`member_limit` before it is inflated, the metadata (``image_size``: two
    positive integers; ``flags``: a list of names), and the StableHLO deserialized."""
    name, members = "manifest.json", {}
    try:  # a damaged deflate stream raises zlib.error rather than a CRC error
        limit = member_limit(os.path.getsize(path))
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(_read_member(zf, name, limit, path))
            digests = dict(manifest["sha256"])
            for name in sorted({*digests, "metadata.json", "estimator.stablehlo"}):
                members[name] = _read_member(zf, name, limit, path)
    except (zipfile.BadZipFile, zlib.error, KeyError, TypeError, EOFError, OSError) as err:
        why = f"{name}: {type(err).__name__}: {err}"
        raise ValueError(f"{path}: not a complete nemo_jax export ({why})") from None
    except ValueError as err:
        if str(err).startswith(f"{path}: member"):
            raise
        why = f"{name}: {type(err).__name__}: {err}"
        raise ValueError(f"{path}: not a complete nemo_jax export ({why})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "nemo_jax.export/1":
        got = manifest.get("format") if isinstance(manifest, dict) else manifest
        raise ValueError(f"{path}: format {got!r}; this loader reads 'nemo_jax.export/1'")
    for name, payload in members.items():
        if hashlib.sha256(payload).hexdigest() != digests.get(name):
            raise ValueError(f"{path}: member {name} is corrupt (its SHA-256 differs from manifest.json)")
    try:
        meta = json.loads(members["metadata.json"])
    except ValueError as err:
        raise ValueError(f"{path}: member metadata.json is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: member metadata.json is not a JSON object")
    size = meta.get("image_size")
    if not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ValueError(f"{path}: metadata.json field 'image_size' is {size!r}, expected [H, W] > 0")
    flag_names = meta.get("flags", [])
    if not (isinstance(flag_names, list) and all(isinstance(f, str) for f in flag_names)):
        raise ValueError(f"{path}: metadata.json field 'flags' is {flag_names!r}, expected a list of names")
    try:
        exported = jax.export.deserialize(bytearray(members["estimator.stablehlo"]))
    except Exception as err:  # noqa: BLE001 (flatbuffers and jax raise many kinds)
        why = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        raise ValueError(f"{path}: member estimator.stablehlo cannot be deserialized ({why[:300]})") from None
    want = (*size, 3)

    def estimate(images):
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != want or not len(images):
            got = f"{images.dtype} {list(images.shape)}"
            raise ValueError(f"{path}: exported for uint8 [B, {', '.join(map(str, want))}] crops, got {got}")
        out = {k: np.asarray(v) for k, v in exported.call(images).items()}
        if "flags" in out and flag_names:  # bool [B, len(flag_names)] -> per crop, the names set
            bits = out["flags"].reshape(len(images), len(flag_names))
            out["flags"] = [[f for f, on in zip(flag_names, row, strict=True) if on] for row in bits]
        return out

    return estimate
