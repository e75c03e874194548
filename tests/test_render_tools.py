"""The rendering tools, run as a user would."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nemo_jax.mesh import cuboid_mesh, save_off

ROOT = Path(__file__).resolve().parents[1]


def run_tool(*args):
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.extended
def test_render_mesh_writes_mask_depth_overlay(tmp_path):
    verts, faces = cuboid_mesh([-0.5, -0.3, -0.2], [0.5, 0.3, 0.2], 200)
    save_off(tmp_path / "box.off", verts, faces)
    prefix = tmp_path / "out" / "box"
    result = run_tool(
        "tools/render_mesh.py",
        "--mesh",
        tmp_path / "box.off",
        "--azimuth",
        30,
        "--elevation",
        20,
        "--theta",
        5,
        "--distance",
        4,
        "--px",
        40,
        "--py",
        30,
        "--width",
        80,
        "--height",
        60,
        "--focal",
        1,
        "--viewport",
        60,
        "--out",
        prefix,
    )
    assert result.returncode == 0, result.stderr
    mask = np.asarray(Image.open(f"{prefix}_mask.png"))
    depth = np.load(f"{prefix}_depth.npy")
    overlay = np.asarray(Image.open(f"{prefix}_overlay.png"))
    assert mask.shape == (60, 80) and set(np.unique(mask)) == {0, 255}
    assert overlay.shape == (60, 80, 3)
    assert depth.shape == (60, 80) and depth.dtype == np.float32
    assert np.all((depth > 0) == (mask == 255))
    # The box's centre is at distance 4 on the optical axis: depth there is about 4 minus a half-size.
    assert 3.4 < depth[30, 40] < 4.0


@pytest.mark.extended
def test_render_mesh_reports_a_broken_off_file(tmp_path):
    (tmp_path / "broken.off").write_text("OFF\nnot numbers\n")
    result = run_tool(
        "tools/render_mesh.py",
        "--mesh",
        tmp_path / "broken.off",
        "--azimuth",
        0,
        "--elevation",
        0,
        "--theta",
        0,
        "--distance",
        4,
        "--px",
        8,
        "--py",
        8,
        "--width",
        16,
        "--height",
        16,
        "--out",
        tmp_path / "x",
    )
    assert result.returncode != 0
    assert "broken.off" in result.stderr


@pytest.mark.extended
def test_bench_render_json_lines():
    result = run_tool(
        "tools/bench_render.py",
        "--json",
        "--variant=hard,gaussian",
        "--config.images=2",
        "--config.starts=2",
        "--config.repeats=5",
        "--config.vertices=300",
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    for variant in ("hard", "gaussian"):
        names = {r["name"] for r in records if r["variant"] == variant}
        assert names == {"render_fwd", "render_fwd_bwd", "render_fwd_bwd_feat", "grid144_fwd", "refine_step"}
    for r in records:
        assert r["median_ms"] > 0 and r["overflow_max"] == 0
        assert {"compile_s", "device", "jax_version", "height", "width", "params"} <= set(r)


@pytest.mark.extended
def test_bench_render_rejects_unknown_variants_and_parameters():
    result = run_tool("tools/bench_render.py", "--variant=nope")
    assert result.returncode != 0 and "registered: " in result.stderr
    result = run_tool("tools/bench_render.py", "--variant=gaussian", "--param=K=3", "--only=render_fwd")
    assert result.returncode != 0 and "no parameter(s) ['K']" in result.stderr
