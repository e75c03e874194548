"""Rasterizer variants: the registry and protocol, and the core's checks for the soft variants
(dense numpy references, finite differences, vmap/jit, degenerate input). The hard and soft
variants' own checks are in test_render.py."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from render_reference import dense_gaussian, dense_pytorch3d, dense_soft

from nemo_jax.geometry import camera_from_viewpoint
from nemo_jax.mesh import cuboid_mesh
from nemo_jax.render import (
    RasterSettings,
    RenderOutput,
    get_variant,
    register_variant,
    registered_variants,
    render,
    unregister_variant,
)
from nemo_jax.render import hard as hard_lib
from nemo_jax.render.gaussian import voge_weights

render_jit = jax.jit(render, static_argnames="settings")
H, W = 18, 24

# Parameters small enough to make every pair count (K above the candidates of any pixel) or large
# enough to show the K truncation: both are compared with the dense references.
REFERENCE_CASES = {
    "soft": {"sigma": 0.3, "gamma": 1e-2},
    "pytorch3d": {"faces_per_pixel": 6, "sigma": 0.3, "gamma": 1e-2},
    "pytorch3d_all": {"faces_per_pixel": 40, "sigma": 0.3, "gamma": 1e-2},
    "gaussian": {"max_kernels": 8},
    "gaussian_all": {"max_kernels": 60, "coverage": 0.6},
}


def _box():
    verts, faces = cuboid_mesh([-0.5, -0.4, -0.3], [0.5, 0.4, 0.3], 60)
    return np.asarray(verts, np.float64), np.asarray(faces)


def _camera(pose, focal=30.0):
    return camera_from_viewpoint(*pose, W / 2 - 0.3, H / 2 - 0.4, 1.0, focal)


def test_builtin_variants_are_registered_and_unknown_names_list_them():
    assert {"hard", "soft", "pytorch3d", "gaussian"} <= set(registered_variants())
    with pytest.raises(ValueError, match="registered: .*gaussian.*hard.*pytorch3d.*soft") as err:
        RasterSettings(height=4, width=4, variant="nope")
    assert "'nope'" in str(err.value)


@pytest.mark.parametrize(
    "variant,params,match",
    [
        ("soft", {"sigma": -1.0}, "SoftParams.sigma"),
        ("soft", {"faces_per_pixel": 3}, "no parameter.*faces_per_pixel"),
        ("pytorch3d", {"faces_per_pixel": 0}, "PyTorch3DParams.faces_per_pixel"),
        ("pytorch3d", {"blur_radius": -1.0}, "PyTorch3DParams.blur_radius"),
        ("gaussian", {"coverage": 1.5}, "GaussianParams.coverage"),
        ("gaussian", {"max_kernels": 2.5}, "GaussianParams.max_kernels"),
        ("hard", {"sigma": 0.1}, "variant 'hard' has no parameter"),
    ],
)
def test_variant_parameters_are_validated(variant, params, match):
    with pytest.raises(ValueError, match=match):
        RasterSettings(height=4, width=4, variant=variant, params=params)


def test_params_are_static_and_hashable():
    a = RasterSettings(height=4, width=4, variant="pytorch3d", params={"faces_per_pixel": 4})
    b = RasterSettings(height=4, width=4, variant="pytorch3d", params=get_variant("pytorch3d").params(4))
    assert a == b and hash(a) == hash(b) and a.params.faces_per_pixel == 4
    assert dataclasses.replace(a, tile_budget=10).params == a.params


@pytest.mark.parametrize("case", list(REFERENCE_CASES))
def test_variant_matches_dense_numpy_reference(case):
    variant = case.split("_")[0]
    verts, faces = _box()
    rng = np.random.default_rng(1)
    attrs = rng.normal(size=(len(verts), 3))
    table = rng.normal(size=(len(verts), H * W))
    settings = RasterSettings(
        height=H,
        width=W,
        variant=variant,
        params=REFERENCE_CASES[case],
        tile_height=4,
        tile_width=4,
        tile_budget=3000,
    )
    p = settings.params
    for pose in ([0.6, 0.4, 0.1, 3.0], [2.2, -0.3, -0.2, 2.6]):
        cam = _camera(pose)
        with jax.enable_x64(True):
            out = render_jit(
                jnp.asarray(verts), jnp.asarray(faces), cam, settings, jnp.asarray(attrs), jnp.asarray(table)
            )
            assert int(out.overflow) == 0
            if variant == "soft":
                ref = dense_soft(
                    verts, faces, cam, H, W, attrs, table, p.sigma, p.gamma, settings.near, settings.far
                )
            elif variant == "pytorch3d":
                ref = dense_pytorch3d(
                    verts,
                    faces,
                    cam,
                    H,
                    W,
                    attrs,
                    table,
                    p.faces_per_pixel,
                    p.sigma,
                    p.gamma,
                    settings.blur_radius,
                    settings.near,
                    settings.far,
                )
            else:
                ref = dense_gaussian(
                    verts,
                    faces,
                    cam,
                    H,
                    W,
                    attrs,
                    table,
                    p.coverage,
                    p.threshold,
                    p.max_kernels,
                    p.absorptivity,
                    settings.near,
                )
        assert np.abs(ref[2]).sum() > 30  # the object is in view
        for name, ours, theirs in zip(
            ("features", "values", "coverage", "depth"),
            (out.features, out.pixel_values, out.coverage, out.depth),
            ref,
            strict=True,
        ):
            np.testing.assert_allclose(
                np.asarray(ours), theirs, atol=1e-6, rtol=1e-6, err_msg=f"{case} {name}"
            )


def _plane_mesh():
    """A flat 6x6-cell grid in the z=0 plane, offset from pixel-aligned positions."""
    ticks = np.linspace(-0.9, 0.9, 7)
    xs, ys = np.meshgrid(ticks + 0.0123, ticks + 0.0567, indexing="ij")
    verts = np.stack([xs.ravel(), ys.ravel(), 0.05 * np.sin(3 * xs.ravel())], -1)
    idx = np.arange(xs.size).reshape(7, 7)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    return verts, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])


@pytest.mark.parametrize(
    "variant,params",
    [
        ("pytorch3d", {"faces_per_pixel": 4, "sigma": 0.5, "gamma": 3e-2}),
        ("gaussian", {"max_kernels": 12}),
    ],
)
def test_variant_gradients_match_finite_differences(variant, params):
    verts, faces = _plane_mesh()
    settings = RasterSettings(height=H, width=W, variant=variant, params=params, tile_height=4, tile_width=4)
    with jax.enable_x64(True):
        verts = jnp.asarray(verts, jnp.float64)
        faces = jnp.asarray(faces, jnp.int32)
        rng = np.random.default_rng(0)
        attrs = jnp.asarray(rng.normal(size=(len(verts), 2)))
        table = jnp.asarray(rng.normal(size=(len(verts), H * W)))
        weights = jnp.asarray(rng.normal(size=(H, W)))

        def loss(pose, attrs, verts):
            out = render(verts, faces, _camera(pose, 25.0), settings, attributes=attrs, pixel_table=table)
            return (
                jnp.sum(out.features * weights[..., None])
                + jnp.sum(out.pixel_values)
                + jnp.sum(out.coverage * weights)
                + 0.1 * jnp.sum(out.depth)
            )

        pose = jnp.array([0.3, 1.1, 0.2, 3.0])
        check_grads(
            jax.jit(loss), (pose, attrs, verts), order=1, modes=("rev",), eps=1e-6, atol=1e-3, rtol=1e-3
        )


@pytest.mark.extended  # ~20 s each: the eager render is op-by-op
@pytest.mark.parametrize("variant", ["pytorch3d", "gaussian"])
def test_vmap_equals_loop_and_jit_equals_eager(variant):
    verts, faces = cuboid_mesh([-0.5, -0.4, -0.3], [0.5, 0.4, 0.3], 100)
    verts, faces = jnp.asarray(verts), jnp.asarray(faces)
    attrs = jax.random.normal(jax.random.PRNGKey(0), (len(verts), 4))
    table = jax.random.normal(jax.random.PRNGKey(1), (len(verts), H * W))
    poses = jnp.array([[0.1, 0.2, 0.0, 4.0], [2.5, 0.6, -0.4, 3.5]])
    settings = RasterSettings(height=H, width=W, variant=variant, tile_height=4, tile_width=4)

    def draw(pose):
        cam = camera_from_viewpoint(pose[0], pose[1], pose[2], pose[3], W / 2, H / 2, 1.0, 30.0)
        return render(verts, faces, cam, settings, attributes=attrs, pixel_table=table)

    batched = jax.jit(jax.vmap(draw))(poses)
    # pytorch3d's depth softmax (gamma = 1e-4 on normalised depth) amplifies float32 rounding
    # differences between fused and unfused arithmetic, as for soft (test_render.py).
    atol = 1e-3 if variant == "pytorch3d" else 2e-5
    for i in range(len(poses)):
        jitted = jax.jit(draw)(poses[i])
        eager = draw(poses[i]) if i == 0 else jitted
        np.testing.assert_array_equal(batched.face_index[i], eager.face_index)
        for field in ("features", "pixel_values", "coverage", "depth", "bary"):
            for got in (getattr(batched, field)[i], getattr(jitted, field)):
                np.testing.assert_allclose(got, getattr(eager, field), atol=atol, rtol=1e-5, err_msg=field)


def _degenerate_cases():
    tri = np.array([[0.0, 0.0, -0.5], [0.0, 0.0, 0.5], [0.0, 0.5, 0.0]])
    box_v, box_f = cuboid_mesh([-3, -3, -3], [3, 3, 3], 100)
    cube_v, cube_f = cuboid_mesh([-0.5, -0.5, -0.5], [0.5, 0.5, 0.5], 100)
    collapsed_v = np.array([[0, 0, 0], [0.5, 0, 0], [1, 0, 0], [0, 0.3, 0.1]], np.float64)
    collapsed_f = np.array([[0, 1, 2], [0, 0, 3], [1, 1, 1], [0, 1, 3]])
    point_v = np.zeros((3, 3))  # a face of coincident vertices: zero edge length
    return {
        "edge_on": (tri, np.array([[0, 1, 2]]), [0.0, 0.0, 0.0, 4.0]),
        "behind_camera": (box_v, box_f, [0.3, 0.2, 0.1, 1.0]),
        "degenerate": (collapsed_v, collapsed_f, [0.2, 0.4, 0.0, 3.0]),
        "point": (point_v, np.array([[0, 1, 2]]), [0.2, 0.4, 0.0, 3.0]),
        "empty": (cube_v + np.array([50.0, 0, 0]), cube_f, [0.0, 0.0, 0.0, 4.0]),
        "very_close": (cube_v, cube_f, [0.3, 0.2, 0.1, 0.51]),
        "inside_near_plane": (cube_v, cube_f, [0.3, 0.2, 0.1, 0.0]),
    }


@pytest.mark.extended
@pytest.mark.parametrize("variant", ["hard", "soft", "pytorch3d", "gaussian"])
def test_no_nan_values_or_gradients(variant):
    """Every degenerate case (edge-on face, camera inside the mesh, collapsed faces, nothing in
    view, a face across the near plane), padded to one shape and vmapped: finite values and
    gradients, nothing drawn when nothing is in view, one compile per variant."""
    cases = _degenerate_cases()
    num_v = max(len(v) for v, _, _ in cases.values())
    num_f = max(len(f) for _, f, _ in cases.values())
    verts = np.zeros((len(cases), num_v, 3), np.float32)
    faces = -np.ones((len(cases), num_f, 3), np.int32)
    for i, (v, f, _) in enumerate(cases.values()):
        verts[i, : len(v)], faces[i, : len(f)] = v, f
    poses = jnp.asarray([pose for _, _, pose in cases.values()], jnp.float32)
    settings = RasterSettings(height=16, width=20, variant=variant, tile_height=4, tile_width=4)
    attrs = jnp.ones((len(cases), num_v, 3))
    table = jnp.ones((num_v, 16 * 20))

    def parts(pose, verts, faces, attrs):
        cam = camera_from_viewpoint(pose[0], pose[1], pose[2], pose[3], 10.0, 8.0, 1.0, 20.0)
        out = render(verts, faces, cam, settings, attributes=attrs, pixel_table=table)
        return [out.features, out.pixel_values, out.coverage, out.depth, out.bary]

    def total(*args):
        return sum(jnp.sum(p) for p in parts(*args))

    args = (poses, jnp.asarray(verts), jnp.asarray(faces), attrs)
    values = jax.jit(jax.vmap(parts))(*args)
    grads = jax.jit(jax.vmap(jax.grad(total, argnums=(0, 1, 3))))(*args)
    for i, name in enumerate(cases):
        for part in list(values) + list(grads):
            assert np.all(np.isfinite(np.asarray(part[i]))), name
    names = list(cases)
    assert float(jnp.max(values[2][names.index("empty")])) == 0.0
    assert float(jnp.max(values[2][names.index("very_close")])) > 0.0


def test_voge_weights_closed_form_checks():
    """A lone kernel hit through its centre weighs 1; two far-apart kernels on one ray weigh 1 and
    exp(-1) (the front one's full density absorbed); slot order does not matter."""
    lam = jnp.array([400.0, 400.0])
    one = voge_weights(jnp.array([3.0, 0.0]), jnp.array([0.0, 60.0]), lam, jnp.array([True, False]), 1.0)
    np.testing.assert_allclose(one, [1.0, 0.0], atol=1e-6)
    two = voge_weights(jnp.array([3.0, 5.0]), jnp.zeros(2), lam, jnp.array([True, True]), 1.0)
    np.testing.assert_allclose(two, [1.0, np.exp(-1.0)], rtol=1e-5)
    swapped = voge_weights(jnp.array([5.0, 3.0]), jnp.zeros(2), lam, jnp.array([True, True]), 1.0)
    np.testing.assert_allclose(swapped, two[::-1], rtol=1e-6)


# A toy variant from outside nemo_jax/render: nearest-corner shading (each covered pixel takes the
# value of the visible face's corner with the largest barycentric), on the hard z-buffer.


@dataclasses.dataclass(frozen=True)
class ToyParams:
    blend: float = 0.0  # 0: nearest corner only; 1: plain barycentric interpolation

    def __post_init__(self):
        if not 0 <= self.blend <= 1:
            raise ValueError(f"ToyParams.blend: expected in [0, 1], got {self.blend}")


def _toy_rasterize(screen, pairs, settings, attributes, pixel_table):
    frags = hard_lib.rasterize(screen, pairs, settings)
    nearest = jax.nn.one_hot(jnp.argmax(frags.bary, -1), 3) * frags.coverage[..., None]
    frags = frags.replace(bary=settings.params.blend * frags.bary + (1 - settings.params.blend) * nearest)
    return RenderOutput(
        features=None
        if attributes is None
        else hard_lib.interpolate_attributes(frags, screen.faces, attributes),
        pixel_values=None
        if pixel_table is None
        else hard_lib.interpolate_table(frags, screen.faces, pixel_table),
        coverage=frags.coverage,
        depth=frags.depth,
        face_index=frags.face_index,
        bary=frags.bary,
        overflow=pairs.overflow,
    )


@pytest.fixture
def toy_variant():
    register_variant("toy_nearest_corner", _toy_rasterize, params=ToyParams)
    yield "toy_nearest_corner"
    unregister_variant("toy_nearest_corner")


@pytest.mark.extended
def test_toy_variant_registered_from_a_test_runs_the_pose_search(toy_variant):
    from nemo_jax.inference import SearchConfig, SearchInputs, search_pose

    assert toy_variant in registered_variants()
    with pytest.raises(ValueError, match="already registered"):
        register_variant(toy_variant, _toy_rasterize, params=ToyParams)
    with pytest.raises(ValueError, match="ToyParams.blend"):
        RasterSettings(height=4, width=4, variant=toy_variant, params={"blend": 2.0})
    h, w, c = 16, 24, 8
    rng = np.random.default_rng(0)
    verts, faces = cuboid_mesh([-0.2, -0.5, -0.17], [0.2, 0.5, 0.17], 120)
    feats = rng.normal(size=(len(verts), c))
    feats = (feats / np.linalg.norm(feats, axis=-1, keepdims=True)).astype(np.float32)
    settings = RasterSettings(h, w, variant=toy_variant, params={"blend": 1.0}, tile_height=4, tile_width=4)
    true = np.array([np.deg2rad(95.0), np.deg2rad(25.0), np.deg2rad(-5.0), 5.0], np.float32)
    focal, pp = 80.0, np.array([w / 2 - 0.5, h / 2 - 0.5], np.float32)
    cam = camera_from_viewpoint(*true, pp[0], pp[1], focal, 1.0)
    out = render_jit(jnp.asarray(verts), jnp.asarray(faces), cam, settings, attributes=jnp.asarray(feats))
    mask = np.asarray(out.coverage)[..., None] > 0.5
    clutter = np.zeros(c, np.float32)
    clutter[0] = 1.0
    observed = np.where(mask, np.asarray(out.features), clutter)
    observed = observed / np.linalg.norm(observed, axis=-1, keepdims=True)
    config = SearchConfig(raster=dataclasses.replace(settings, tile_budget=800), steps=30)
    inputs = SearchInputs(observed, feats, clutter, verts, faces, focal, pp, 5.0)
    result = search_pose(inputs, config)
    assert int(result.overflow[0]) == 0
    assert np.isfinite(float(result.loss[0]))
    # The search with the toy renderer finds the rendered pose from NeMo's grid (30 deg apart).
    err = np.abs(np.angle(np.exp(1j * (float(result.azimuth[0]) - true[0]))))
    assert err < np.deg2rad(15.0) and abs(float(result.elevation[0]) - true[1]) < np.deg2rad(15.0)
