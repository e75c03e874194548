"""The rasterizer: agreement with trimesh ray casting, gradients, transforms, robustness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh
from jax.test_util import check_grads
from render_reference import interior, ray_cast

from nemo_jax.geometry import camera_from_viewpoint
from nemo_jax.mesh import cuboid_mesh
from nemo_jax.render import RasterSettings, render, validate_mesh
from nemo_jax.render.scatter import INT32_MAX, flat_scatter

H, W = 40, 56

# Eager rendering dispatches hundreds of small ops one by one; tests use the jitted function.
render_jit = jax.jit(render, static_argnames="settings")


def random_meshes():
    rng = np.random.default_rng(0)
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.6)
    bumpy = sphere.copy()
    bumpy.vertices = bumpy.vertices * rng.uniform(0.7, 1.3, (len(bumpy.vertices), 1))
    box = trimesh.creation.box(extents=(1.2, 0.5, 0.4)).subdivide()
    capsule = trimesh.creation.capsule(height=0.8, radius=0.25, count=[12, 12])
    # Two boxes, one in front of the other: self-occlusion.
    pair = trimesh.util.concatenate(
        [trimesh.creation.box(extents=(0.8, 0.8, 0.8)), trimesh.creation.box(extents=(0.3, 0.3, 1.6))]
    )
    return {"bumpy": bumpy, "box": box, "capsule": capsule, "pair": pair}


def camera(az, el, th, dist=4.0, focal=60.0):
    return camera_from_viewpoint(
        jnp.deg2rad(az), jnp.deg2rad(el), jnp.deg2rad(th), dist, W / 2 - 0.5, H / 2 - 0.5, 1.0, focal
    )


def padded(mesh, num_vertices=700, num_faces=1300):
    """Vertices padded with zeros and faces with -1 (masked) to one shape: one compile for all."""
    verts = np.zeros((num_vertices, 3), np.float32)
    verts[: len(mesh.vertices)] = mesh.vertices
    faces = -np.ones((num_faces, 3), np.int32)
    faces[: len(mesh.faces)] = mesh.faces
    return jnp.asarray(verts), jnp.asarray(faces)


@pytest.mark.parametrize("seed,name", list(enumerate(["bumpy", "box", "capsule", "pair"])))
def test_hard_matches_trimesh_ray_casting(seed, name):
    mesh = random_meshes()[name]
    rng = np.random.default_rng(seed)
    settings = RasterSettings(height=H, width=W)
    verts, faces = padded(mesh)
    for _ in range(3):
        cam = camera(rng.uniform(0, 360), rng.uniform(-60, 60), rng.uniform(-40, 40), rng.uniform(2.5, 5))
        out = render_jit(verts, faces, cam, settings)
        assert int(out.overflow) == 0
        hit, depth, face = ray_cast(mesh, cam, H, W)
        ours = np.asarray(out.coverage) > 0.5
        away = interior(hit)
        assert hit.sum() > 50  # the view actually shows the object
        assert np.mean(ours[away] == hit[away]) >= 0.99
        both = ours & hit
        rel = np.abs(np.asarray(out.depth)[both] - depth[both]) / depth[both]
        assert np.mean(rel < 1e-4) >= 0.99
        assert np.mean(np.asarray(out.face_index)[both] == face[both]) >= 0.98
        assert np.all(np.asarray(out.face_index)[~ours] == -1)
        assert np.all(np.asarray(out.depth)[~ours] == 0)


@pytest.mark.extended
def test_soft_tends_to_hard():
    mesh = random_meshes()["bumpy"]
    verts = jnp.asarray(mesh.vertices, jnp.float32)
    faces = jnp.asarray(mesh.faces, jnp.int32)
    attrs = jax.random.uniform(jax.random.PRNGKey(0), (len(mesh.vertices), 5))
    cam = camera(30.0, 20.0, 5.0)
    hard = render_jit(verts, faces, cam, RasterSettings(height=H, width=W), attributes=attrs)
    errors, soft = [], None
    for sigma, gamma in [(1e-1, 1e-2), (1e-4, 1e-5)]:
        settings = RasterSettings(height=H, width=W, variant="soft", params={"sigma": sigma, "gamma": gamma})
        soft = render_jit(verts, faces, cam, settings, attributes=attrs)
        errors.append(
            (
                float(jnp.mean(jnp.abs(soft.coverage - hard.coverage))),
                float(jnp.mean(jnp.abs(soft.features - hard.features))),
            )
        )
    (cov_wide, feat_wide), (cov_sharp, feat_sharp) = errors
    assert cov_wide > 10 * cov_sharp and feat_wide > 10 * feat_sharp
    assert cov_sharp < 2e-3 and feat_sharp < 2e-3
    # The softmax picks the nearest face: covered-pixel depths agree with the z-buffer.
    covered = np.asarray(hard.coverage) > 0.5
    inner = interior(covered) & covered
    rel = np.abs(np.asarray(soft.depth) - np.asarray(hard.depth))[inner] / np.asarray(hard.depth)[inner]
    assert np.mean(rel < 1e-3) >= 0.98  # all but pixels on self-occlusion boundaries


def plane_grid(size=4.0, cells=8):
    """A flat grid in the CAD z=0 plane, larger than the views below: no silhouette in the image.

    Offset so that no vertex projects exactly onto a pixel centre (where the rendered image has a
    kink and central differences average two one-sided derivatives).
    """
    ticks = np.linspace(-size / 2, size / 2, cells + 1)
    xs, ys = np.meshgrid(ticks + 0.123, ticks + 0.0567, indexing="ij")
    verts = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], -1)
    idx = np.arange(xs.size).reshape(cells + 1, cells + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return verts, faces


def test_hard_gradients_match_finite_differences():
    verts, faces = plane_grid()
    settings = RasterSettings(height=24, width=32)
    with jax.enable_x64(True):
        verts = jnp.asarray(verts, jnp.float64)
        faces = jnp.asarray(faces, jnp.int32)
        attrs = jnp.asarray(np.random.default_rng(0).normal(size=(len(verts), 3)))
        weights = jnp.asarray(np.random.default_rng(1).normal(size=(24, 32, 3)))

        def loss(pose, attrs, verts):
            cam = camera_from_viewpoint(pose[0], pose[1], pose[2], pose[3], 16.0, 12.0, 1.0, 40.0)
            out = render(verts, faces, cam, settings, attributes=attrs)
            return jnp.sum(out.features * weights) + jnp.sum(out.depth)

        pose = jnp.array([0.3, 1.0, 0.2, 3.0])
        out = render_jit(verts, faces, camera_from_viewpoint(*pose, 16.0, 12.0, 1.0, 40.0), settings)
        assert float(jnp.min(out.coverage)) == 1.0  # the plane fills the view
        # One joint check over pose, vertex attributes and vertex positions (random direction).
        check_grads(
            jax.jit(loss), (pose, attrs, verts), order=1, modes=("rev",), eps=1e-6, atol=1e-3, rtol=1e-3
        )


def test_soft_gradients_match_finite_differences():
    verts, faces = cuboid_mesh([-0.5, -0.4, -0.3], [0.5, 0.4, 0.3], 60)
    settings = RasterSettings(height=24, width=32, variant="soft", params={"sigma": 0.5, "gamma": 1e-2})
    with jax.enable_x64(True):
        verts = jnp.asarray(verts, jnp.float64)
        faces = jnp.asarray(faces, jnp.int32)
        attrs = jnp.asarray(np.random.default_rng(0).normal(size=(len(verts), 2)))
        table = jnp.asarray(np.random.default_rng(1).normal(size=(len(verts), 24 * 32)))

        def loss(pose):
            cam = camera_from_viewpoint(pose[0], pose[1], pose[2], pose[3], 16.0, 12.0, 1.0, 40.0)
            out = render_jit(verts, faces, cam, settings, attributes=attrs, pixel_table=table)
            return jnp.sum(out.coverage) + jnp.sum(out.features) + jnp.sum(out.pixel_values)

        check_grads(
            jax.jit(loss),
            (jnp.array([0.5, 0.3, 0.1, 4.0]),),
            order=1,
            modes=("rev",),
            eps=1e-6,
            atol=1e-3,
            rtol=1e-3,
        )


def test_pixel_table_equals_rendered_dot_product():
    verts, faces = cuboid_mesh([-0.5, -0.4, -0.3], [0.5, 0.4, 0.3], 200)
    key1, key2 = jax.random.split(jax.random.PRNGKey(0))
    feats = jax.random.normal(key1, (len(verts), 16))
    observed = jax.random.normal(key2, (H, W, 16))
    table = feats @ observed.reshape(H * W, 16).T
    for variant in ("hard", "soft"):
        settings = RasterSettings(height=H, width=W, variant=variant)
        out = render_jit(
            jnp.asarray(verts),
            jnp.asarray(faces),
            camera(40, 20, 0),
            settings,
            attributes=feats,
            pixel_table=table,
        )
        np.testing.assert_allclose(out.pixel_values, jnp.sum(out.features * observed, -1), atol=1e-4)


@pytest.mark.extended
def test_vmap_equals_loop_and_jit_equals_eager():
    verts, faces = cuboid_mesh([-0.5, -0.4, -0.3], [0.5, 0.4, 0.3], 200)
    verts, faces = jnp.asarray(verts), jnp.asarray(faces)
    attrs = jax.random.normal(jax.random.PRNGKey(0), (len(verts), 4))
    poses = jnp.array([[0.1, 0.2, 0.0, 4.0], [2.5, 0.6, -0.4, 3.5]])
    for variant in ("hard", "soft"):
        settings = RasterSettings(height=H, width=W, variant=variant)

        def draw(pose, settings=settings):
            cam = camera_from_viewpoint(pose[0], pose[1], pose[2], pose[3], W / 2, H / 2, 1.0, 60.0)
            return render(verts, faces, cam, settings, attributes=attrs)

        batched = jax.jit(jax.vmap(draw))(poses)
        for i in range(len(poses)):
            jitted = jax.jit(draw)(poses[i])
            # Eager execution compiles every primitive separately: once (hard) is enough.
            eager = draw(poses[i]) if i == 0 and variant == "hard" else jitted
            # The soft softmax (gamma = 1e-4 on normalised depth) amplifies float32 summation-order
            # differences between the batched and unbatched scatter-adds.
            # Hard: fused (jit) and unfused (eager) float32 arithmetic round the per-pixel
            # re-projection differently: ~1e-5 on barycentrics of pixels ~50 px from the centre.
            atol = 3e-5 if variant == "hard" else 1e-3
            rtol = 1e-7
            np.testing.assert_array_equal(batched.face_index[i], eager.face_index)
            np.testing.assert_array_equal(jitted.face_index, eager.face_index)
            for field in ("features", "coverage", "depth", "bary"):
                np.testing.assert_allclose(
                    getattr(batched, field)[i], getattr(eager, field), atol=atol, rtol=rtol, err_msg=field
                )
                np.testing.assert_allclose(
                    getattr(jitted, field), getattr(eager, field), atol=atol, rtol=rtol, err_msg=field
                )


def test_backface_culling_is_exact_on_closed_meshes():
    verts, faces = cuboid_mesh([-0.5, -0.4, -0.3], [0.5, 0.4, 0.3], 300)
    rng = np.random.default_rng(5)
    for _ in range(4):
        cam = camera(rng.uniform(0, 360), rng.uniform(-80, 80), rng.uniform(-90, 90))
        full = render_jit(jnp.asarray(verts), jnp.asarray(faces), cam, RasterSettings(height=H, width=W))
        culled = render_jit(
            jnp.asarray(verts),
            jnp.asarray(faces),
            cam,
            RasterSettings(height=H, width=W, cull_backfaces=True),
        )
        np.testing.assert_array_equal(full.face_index, culled.face_index)


def test_padded_faces_are_masked():
    verts, faces = cuboid_mesh([-0.5, -0.4, -0.3], [0.5, 0.4, 0.3], 100)
    padded = np.concatenate([faces, -np.ones((7, 3), np.int32), np.full((2, 3), 10_000, np.int32)])
    settings = RasterSettings(height=H, width=W)
    a = render_jit(jnp.asarray(verts), jnp.asarray(faces), camera(10, 10, 10), settings)
    b = render_jit(jnp.asarray(verts), jnp.asarray(padded), camera(10, 10, 10), settings)
    np.testing.assert_array_equal(a.face_index, b.face_index)
    np.testing.assert_allclose(a.depth, b.depth)


def test_overflow_is_reported():
    verts, faces = cuboid_mesh([-0.5, -0.4, -0.3], [0.5, 0.4, 0.3], 300)
    small = RasterSettings(height=H, width=W, tile_budget=16)
    out = render_jit(jnp.asarray(verts), jnp.asarray(faces), camera(30, 20, 0), small)
    assert int(out.overflow) > 0
    full = render_jit(
        jnp.asarray(verts), jnp.asarray(faces), camera(30, 20, 0), RasterSettings(height=H, width=W)
    )
    assert int(full.overflow) == 0


def test_nan_vertex_is_masked_under_jit():
    verts, faces = cuboid_mesh([-0.5, -0.4, -0.3], [0.5, 0.4, 0.3], 100)
    bad = verts.copy()
    bad[0] = np.nan
    out = jax.jit(
        lambda v: render_jit(v, jnp.asarray(faces), camera(30, 20, 0), RasterSettings(height=H, width=W))
    )(jnp.asarray(bad))
    assert bool(jnp.all(jnp.isfinite(out.depth))) and bool(jnp.all(jnp.isfinite(out.bary)))
    touching = np.any(faces == 0, axis=1)
    assert not np.any(np.isin(np.asarray(out.face_index), np.flatnonzero(touching)))


def test_bad_input_raises_clear_errors():
    verts, faces = cuboid_mesh([-0.5, -0.4, -0.3], [0.5, 0.4, 0.3], 100)
    with pytest.raises(ValueError, match=r"mesh.off: face 3 .* outside"):
        bad = faces.copy()
        bad[3, 1] = len(verts)
        validate_mesh(verts, bad, "mesh.off")
    with pytest.raises(ValueError, match="vertex 2 is not finite"):
        bad = verts.copy()
        bad[2, 0] = np.inf
        validate_mesh(bad, faces, "mesh.off")
    with pytest.raises(ValueError, match="faces must have shape"):
        validate_mesh(verts, np.zeros((0, 3), np.int32), "mesh.off")
    with pytest.raises(ValueError, match="faces must have shape"):
        render_jit(
            jnp.asarray(verts),
            jnp.zeros((0, 3), jnp.int32),
            camera(0, 0, 0),
            RasterSettings(height=H, width=W),
        )
    with pytest.raises(ValueError, match="pixel_table"):
        render_jit(
            jnp.asarray(verts),
            jnp.asarray(faces),
            camera(0, 0, 0),
            RasterSettings(height=H, width=W),
            pixel_table=jnp.zeros((len(verts), 7)),
        )
    with pytest.raises(ValueError, match="variant"):
        RasterSettings(height=H, width=W, variant="fancy")


@pytest.mark.parametrize("op", ["min", "add"])
def test_flat_scatter_equals_plain_scatter_under_nested_vmap(op):
    """The custom vmap rule (one flat scatter over all batch members) gives exactly the per-member
    scatter, for batched and unbatched operands and with dropped (out-of-range) indices."""
    size = 7
    rng = np.random.default_rng(0)
    index = jnp.asarray(rng.integers(-2, size + 3, (3, 4, 50)), jnp.int32)
    value = jnp.asarray(rng.integers(0, 1000, (3, 4, 50)), jnp.int32)

    def plain(i, v):
        i = jnp.where(i >= 0, i, size)  # jnp wraps negative indices; flat_scatter drops them
        ref = jnp.full((size,), INT32_MAX if op == "min" else 0, jnp.int32).at[i]
        return (ref.min if op == "min" else ref.add)(v, mode="drop")

    expected = np.stack([[plain(index[a, b], value[a, b]) for b in range(4)] for a in range(3)])
    fn = flat_scatter(size, op)
    np.testing.assert_array_equal(jax.jit(jax.vmap(jax.vmap(fn)))(index, value), expected)
    shared = jax.jit(jax.vmap(fn, in_axes=(0, None)))(index[:, 0], value[0, 0])
    np.testing.assert_array_equal(shared, np.stack([plain(index[a, 0], value[0, 0]) for a in range(3)]))
    np.testing.assert_array_equal(fn(index[0, 0], value[0, 0]), expected[0, 0])
    with pytest.raises(ValueError, match="op must be"):
        flat_scatter(size, "max")
