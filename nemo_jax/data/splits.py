"""Split names and NeMo's unseen-pose protocol.

Unseen-pose split (NeMo, Sec. 4.3): azimuth is cut into 8 bins of 45 degrees; training uses the
azimuths in ``[0, 45) U [135, 225) U [315, 360)`` ("seen"), testing the other half ("unseen").
"""

from __future__ import annotations

import numpy as np

#: Split name of each occlusion level's test set (L0 = clean).
TEST_SPLITS: dict[int, str] = {0: "test_l0", 1: "test_l1", 2: "test_l2", 3: "test_l3"}
POSE_SPLITS = ("all", "unseen")


def in_seen_bins(azimuth_deg) -> np.ndarray:
    """True where an azimuth (DEGREES, any real value) lies in NeMo's training bins."""
    a = np.mod(np.asarray(azimuth_deg, np.float64), 360.0)
    return (a < 45.0) | ((a >= 135.0) & (a < 225.0)) | (a >= 315.0)


def sample_azimuth(rng: np.random.Generator, subset: str = "all") -> float:
    """A uniform azimuth in DEGREES from ``[0, 360)`` (``all``), the seen bins or the unseen bins."""
    if subset == "all":
        return float(rng.uniform(0.0, 360.0))
    u = rng.uniform(0.0, 180.0)
    if subset == "seen":
        return float(u if u < 45.0 else (u + 90.0 if u < 135.0 else u + 180.0))
    if subset == "unseen":
        return float(u + 45.0 if u < 90.0 else u + 135.0)
    raise ValueError(f"sample_azimuth: subset must be 'all', 'seen' or 'unseen', got {subset!r}")


def azimuth_subset(split: str, pose_split: str) -> str:
    """Which azimuths a split holds under ``pose_split`` ('all' or 'unseen')."""
    if pose_split not in POSE_SPLITS:
        raise ValueError(f"pose_split must be one of {POSE_SPLITS}, got {pose_split!r}")
    if pose_split == "all":
        return "all"
    return "seen" if split in ("train", "val") else "unseen"
