"""The tests' name for :mod:`nemo_jax.data.fixtures` (writers of real-format fixture trees)."""

from nemo_jax.data.fixtures import *  # noqa: F403
