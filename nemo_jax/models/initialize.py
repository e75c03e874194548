"""A network's initial variables, compiled as one program at a light optimisation level.

On XLA's CPU backend most of a network's initialisation is the compilation of the threefry
random-bit generator every parameter draws from, unrolled once per parameter array: about 50 s for
the 'tiny' backbone at XLA's default ``xla_backend_optimization_level`` (2), and as much as the whole
first training step costs to compile. Initialisation runs once per run, so how fast its code runs
does not matter; level 1 compiles it 2 to 6 times faster (tiny, ResNet-50 and EfficientNet-Lite0
backbones on a 2-core CPU) and computes the same bits: threefry is integer arithmetic and the
float transforms (uniform, truncated normal) are IEEE operations that the optimisation level does not
reorder (``tests/test_models_initialize.py`` compares both bit for bit).
"""

from __future__ import annotations

from typing import Any

import jax

#: XLA options for the initialisation's compilation (see the module docstring).
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def init_variables(module, key: jax.Array, *inputs: Any, **kwargs: Any) -> dict:
    """``module.init(key, *inputs, **kwargs)`` (flax.linen), jitted and compiled with
    :data:`INIT_COMPILER_OPTIONS` on the CPU (other backends: their defaults). Called inside a
    transformation (``jax.eval_shape``, an outer ``jit``), it is traced as ``module.init``.

    Args:
      module: a flax.linen module.
      key: a PRNG key (raw ``[2]`` uint32 or typed).
      *inputs: example inputs (arrays: their shapes and dtypes define the variables).
      **kwargs: static keyword arguments of the module's ``__call__`` (e.g. ``train=False``).

    Returns:
      The variables, e.g. ``{'params': ..., 'batch_stats': ...}``.
    """
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((key, inputs))):
        return module.init(key, *inputs, **kwargs)  # inside a transformation (eval_shape, jit): traced
    fn = jax.jit(lambda k, *xs: module.init(k, *xs, **kwargs))
    lowered = fn.lower(key, *inputs)
    options = INIT_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
    return lowered.compile(compiler_options=options)(key, *inputs)
