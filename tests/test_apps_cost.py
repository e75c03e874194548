"""XLA cost analysis: loop bodies scaled by their trip count, the roofline bound, the search's cost."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemo_jax.apps import cost


def _loop(steps: int, unroll: int = 1):
    def f(x):
        return jax.lax.scan(lambda c, _: (jnp.tanh(c @ c), None), x, None, length=steps, unroll=unroll)[0]

    return jax.jit(f)


def test_loop_cost_from_zero_and_one_trip_matches_the_unrolled_program():
    x = jnp.ones((32, 32), jnp.float32)
    rolled = cost.compiled_cost(_loop(12), x)
    unrolled = cost.compiled_cost(_loop(12, unroll=12), x)
    # XLA counts a rolled loop's body once: the reason for with_loop
    assert rolled.flops < unrolled.flops / 5
    est = cost.with_loop(cost.compiled_cost(_loop(0), x), cost.compiled_cost(_loop(1), x), 12)
    assert est.flops == pytest.approx(unrolled.flops, rel=0.02)
    assert est.flops == pytest.approx(12 * 2 * 32**3, rel=0.05)  # 12 matmuls of 32^3 multiply-adds
    assert est.transcendentals == pytest.approx(12 * 32 * 32, rel=0.05)


def test_roofline_is_the_slower_of_compute_and_memory():
    c = cost.Cost(flops=989.4e12, bytes_accessed=3.35e12 / 2)
    r = cost.roofline(c)
    assert r["compute_bf16_tensor_s"] == pytest.approx(1.0)
    assert r["memory_s"] == pytest.approx(0.5)
    assert r["bound_bf16_tensor_s"] == pytest.approx(1.0)
    assert r["bound_fp32_s"] == pytest.approx(989.4 / 66.9)
    assert cost.Cost(2.0, 4.0).per(2).as_dict()["arithmetic_intensity"] == pytest.approx(0.5)


@pytest.mark.extended
def test_search_cost_per_image_is_independent_of_the_batch():
    from nemo_jax import mesh as mesh_lib
    from nemo_jax.inference import search
    from nemo_jax.render import RasterSettings

    v, f = mesh_lib.cuboid_mesh([-1, -0.6, -0.4], [1, 0.6, 0.4], 40)
    cfg = search.size_tile_budget(
        v,
        f,
        20.0,
        np.array([8.0, 6.0]),
        5.0,
        search.SearchConfig(
            raster=RasterSettings(height=12, width=16, tile_height=4, tile_width=4, cull_backfaces=True),
            steps=7,
        ),
    )
    per_image = []
    for b in (1, 2):
        inputs = search.SearchInputs(
            observed=jnp.ones((b, 12, 16, 8)) / np.sqrt(8),
            vertex_features=jnp.ones((len(v), 8)) / np.sqrt(8),
            clutter=jnp.zeros((b, 8)), vertices=jnp.asarray(v), faces=jnp.asarray(f, jnp.int32),
            focal_px=jnp.full(b, 20.0), principal=jnp.tile(jnp.array([[8.0, 6.0]]), (b, 1)),
            distance=jnp.full(b, 5.0),
        )  # fmt: skip
        per_image.append(cost.search_cost(inputs, cfg).per(b))
    assert per_image[0].flops > 0 and per_image[0].bytes_accessed > 0
    assert per_image[1].flops == pytest.approx(per_image[0].flops, rel=0.1)
