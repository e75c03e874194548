"""The in-memory toy dataset used by smoke runs."""

import numpy as np

from nemo_jax.data.toy import vertex_colours


def test_vertex_colours_share_a_colour_between_mirror_partners_only():
    vertices = np.zeros((4, 3), np.float32)
    colours = vertex_colours(vertices, [1, 0, 2, 3], seed=3)
    assert colours.shape == (4, 3)
    np.testing.assert_array_equal(colours[0], colours[1])
    assert not np.array_equal(colours[2], colours[3])


def test_vertex_colours_without_a_mirror_permutation_give_each_vertex_its_own():
    """A run without flips has no mirror permutation (``None``): one colour per vertex, as with the
    identity permutation, instead of a TypeError."""
    vertices = np.zeros((5, 3), np.float32)
    np.testing.assert_array_equal(
        vertex_colours(vertices, None, seed=2), vertex_colours(vertices, np.arange(5), seed=2)
    )
