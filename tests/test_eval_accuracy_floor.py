"""Accuracy on real-looking data must not silently drop (an ``extended`` check: minutes of CPU).

A small PASCAL3D+ / OccludedPASCAL3D+ tree in the releases' formats is generated
(:mod:`nemo_jax.data.scenes`, as ``tools/write_validation_tree.py`` writes it; seed 23, which no
other test uses), built with ``shrink=8`` as ``configs/pascal3d_cpu.py`` expects, a tiny run trained
on its car images and evaluated with NeMo's protocol (L0 the clean val images, L1-L3 their occluded
copies). The check fails when Acc@pi/6 at any level falls more than :data:`MARGIN` below
:data:`FLOOR`, and when the occluder measures are missing or outside [0, 1].

How the floor was measured: this test's own sizes and seed, once, on a 2-core AMD EPYC VM (jax
0.10.2, 2026-12-07; 3, 6, 4 and 2 of 16 images within pi/6 at L0-L3); the numbers are that run's
Acc@pi/6 per level. At 300 steps the tiny run is weak (the fixture tree's car reaches 44 / 38 / 31
/ 31 % after 2,050 steps, docs/results/real-data.md), so this floor catches a change that breaks
training, the crops or the protocol on real-format data, not a loss of a few points; a larger run
would cost more. Runtime: the step-time model of ``configs/pascal3d_cpu.py`` (0.24 s a
step on idle cores) gives about 75 s of training, and the tree, the builds, compilation and the
evaluation of 64 images add about a minute (estimated: on the 2-core VM above, shared with other
jobs at a load of about 20, the whole took 33 minutes, 3.5 s a training step).

The margin: a run repeats bit for bit on one machine, but XLA's CPU code differs across CPUs and
releases, which moves a few of the :data:`VAL` images per level across the pi/6 threshold;
:data:`MARGIN` (10 points) lets one image of a level (6.25 points) cross it, not two: a change that
costs two images at any level fails.
"""

import pytest

from configs import pascal3d_cpu
from nemo_jax.apps import evaluate
from nemo_jax.data import scenes
from nemo_jax.train.loop import train

SEED = 23
TRAIN, VAL = 48, 16  # car images: training; val per level (L0 clean, L1-L3 occluded copies)
STEPS = 300
#: Acc@pi/6 per level of this run (2-core AMD EPYC VM, jax 0.10.2, 2026-12-07).
FLOOR = {"L0": 0.1875, "L1": 0.375, "L2": 0.25, "L3": 0.125}
#: Between one and two images of a level (see the module docstring).
MARGIN = 0.10


@pytest.mark.extended
def test_accuracy_on_a_real_format_tree_stays_above_its_floor(tmp_path):
    manual, data_dir, run = (str(tmp_path / name) for name in ("manual", "data", "run"))
    options = scenes.TreeOptions(
        categories=("car",), train_per_category=TRAIN, val_per_category=VAL, seed=SEED, sprites=8
    )
    scenes.write_validation_tree(manual, options)
    evaluate.ensure_datasets(
        "occluded_pascal3d",
        data_dir,
        manual,
        ["car"],
        {"shrink": str(pascal3d_cpu.SHRINK)},
        log=lambda *_: None,
    )
    config = pascal3d_cpu.get_config("car")
    config.data.data_dir = data_dir
    config.train.steps, config.train.warmup_steps = STEPS, 10
    config.train.checkpoint_every = config.train.log_every = STEPS
    config.train.progress = False
    config.eval.num_batches = 0  # no held-out matching: the evaluation below is the check
    train(config, run)
    results = evaluate.evaluate(run, "occluded_pascal3d", data_dir)["results"]["car"]
    got = {level: results[level]["acc_pi6"] for level in FLOOR}
    assert {level: results[level]["n"] for level in FLOOR} == dict.fromkeys(FLOOR, VAL)
    low = {lv: (got[lv], FLOOR[lv]) for lv in FLOOR if got[lv] < FLOOR[lv] - MARGIN - 1e-9}
    assert not low, f"Acc@pi/6 (got, floor) below floor - {MARGIN:.3f}: {low}; all: {got}"
    for level in ("L1", "L2", "L3"):  # OccludedPASCAL3D+ ships occluder masks
        for name in ("occluder_auroc", "occluder_iou", "occluder_auroc_true_pose", "occluder_iou_true_pose"):
            value = results[level][name]
            assert value is not None and 0.0 <= value <= 1.0, (level, name, value)
