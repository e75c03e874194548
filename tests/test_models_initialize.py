"""Initial variables compiled at the light optimisation level are the default compilation's bit
for bit: the speed-up changes no number of a run (whose state was always initialised jitted)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nemo_jax import models
from nemo_jax.models.layers import batch_norm, conv


class _Small(nn.Module):
    """The draws a backbone makes: conv kernels (truncated normal), batch norm, a dense layer with
    a uniform bias, an embedding (normal)."""

    @nn.compact
    def __call__(self, x, train: bool):
        x = conv(8, 3, 2, name="conv")(x)
        x = nn.relu(batch_norm(train, name="bn")(x))
        x = nn.Dense(5, bias_init=nn.initializers.uniform(0.1))(x.mean(axis=(1, 2)))
        table = self.param("table", nn.initializers.normal(0.02), (7, 5))
        return x + table.sum(0)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_init_variables_equal_the_default_compilation_bit_for_bit():
    module, key = _Small(), jax.random.PRNGKey(7)
    x = jnp.zeros((1, 16, 16, 3), jnp.float32)
    got = models.init_variables(module, key, x, train=False)
    assert set(got) == {"params", "batch_stats"}
    default = jax.jit(lambda k: module.init(k, x, train=False))(key)
    assert jax.tree.structure(got) == jax.tree.structure(default)
    for a, b in zip(_leaves(got), _leaves(default), strict=True):
        np.testing.assert_array_equal(a, b)
    assert models.INIT_COMPILER_OPTIONS == {"xla_backend_optimization_level": 1}


def test_init_variables_inside_a_transformation_is_traced_as_init():
    module, key = _Small(), jax.random.PRNGKey(7)
    x = jnp.zeros((1, 16, 16, 3), jnp.float32)
    shapes = jax.eval_shape(lambda k: models.init_variables(module, k, x, train=False), key)
    want = jax.eval_shape(lambda k: module.init(k, x, train=False), key)
    described = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), tree)
    assert described(shapes) == described(want)
