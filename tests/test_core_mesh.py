"""Core mesh helpers: cuboids and OFF files."""

import numpy as np
import pytest
import trimesh

from nemo_jax.mesh import coverage_bounds, cuboid_mesh, load_off, save_off, single_cuboid


def test_cuboid_is_closed_outward_and_near_target_size():
    verts, faces = cuboid_mesh([-0.2, -0.5, -0.17], [0.2, 0.5, 0.17], 1000)
    mesh = trimesh.Trimesh(verts, faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(0.4 * 1.0 * 0.34, rel=1e-4)  # positive: outward normals
    assert 900 <= len(verts) <= 1100
    np.testing.assert_allclose(verts.min(0), [-0.2, -0.5, -0.17], atol=1e-6)
    np.testing.assert_allclose(verts.max(0), [0.2, 0.5, 0.17], atol=1e-6)


def test_single_cuboid_covers_the_requested_fraction():
    rng = np.random.default_rng(0)
    cads = [rng.normal(size=(2000, 3)) * [1.0, 2.0, 0.5] for _ in range(3)]
    lower, upper = coverage_bounds(cads, 0.99)
    points = np.concatenate(cads)
    inside = np.mean((points >= lower) & (points <= upper), axis=0)
    np.testing.assert_allclose(inside, 0.99, atol=2e-3)
    verts, _ = single_cuboid(cads, 0.99, 500)
    np.testing.assert_allclose(verts.min(0), lower, atol=1e-5)


def test_off_round_trip_and_errors(tmp_path):
    verts, faces = cuboid_mesh([-1, -1, -1], [1, 1, 1], 100)
    path = tmp_path / "01.off"
    save_off(path, verts, faces)
    v2, f2 = load_off(path)
    np.testing.assert_allclose(v2, verts, atol=1e-6)
    np.testing.assert_array_equal(f2, faces)
    bad = tmp_path / "bad.off"
    bad.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n")
    with pytest.raises(ValueError, match="bad.off"):
        load_off(bad)
    with pytest.raises(FileNotFoundError, match="missing.off"):
        load_off(tmp_path / "missing.off")
    out_of_range = tmp_path / "range.off"
    out_of_range.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n")
    with pytest.raises(ValueError, match="range.off"):
        load_off(out_of_range)
