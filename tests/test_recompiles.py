"""The jitted hot paths trace once: repeated calls with same-shape inputs reuse the compilation
(``chex.assert_max_traces`` around the traced python functions, test side; library unchanged)."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import pytest

from nemo_jax import mesh
from nemo_jax.train import state, step

SIZE, BATCH = 32, 2


class _StandIn(nn.Module):
    """Stride-8 unit features with batch norm: the backbone's interface at a fraction of the cost."""

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Conv(4, (8, 8), strides=(8, 8))(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def test_train_step_traces_once_over_steps(random_batch):
    """Steps 0..3 (warmup schedule, 2-step gradient accumulation, the state fed back donated, new
    batches each step) run one compilation; a batch of another size is a new trace."""
    v, f = mesh.cuboid_mesh([-1, -0.6, -0.4], [1, 0.6, 0.4], 30)
    tc = ml_collections.ConfigDict(
        dict(
            lr=1e-3,
            schedule="cosine",
            warmup_steps=2,
            steps=4,
            grad_accum=2,
            weight_decay=1e-4,
            optimizer="adamw",
            grad_accum_phase="end",
        )
    )
    tx = state.make_optimizer(tc)
    model = _StandIn()
    s = state.create_train_state(
        jax.random.PRNGKey(0),
        model,
        mesh.init_neural_mesh(jax.random.PRNGKey(1), v, f, 4, 8),
        tx,
        (SIZE, SIZE),
    )
    cfg = step.StepConfig(image_size=(SIZE, SIZE), flip_prob=0.5, distance_thr=4.0, clutter_per_image=2)
    chex.clear_trace_counter()
    train_step = chex.assert_max_traces(step.make_train_step(model, tx, cfg, lambda im: im / 255.0), n=1)
    fn = step.jit_step(train_step)
    losses = []
    for i in range(4):
        s, metrics = fn(s, step.select_fields(random_batch(BATCH, SIZE, seed=i)))
        assert bool(metrics["finite"]), i
        losses.append(float(metrics["loss"]))
    assert int(s.step) == 4 and len(set(losses)) == 4  # four real steps on four batches
    with pytest.raises(AssertionError, match="traced > 1 times"):
        fn(s, step.select_fields(random_batch(BATCH + 1, SIZE, seed=9)))
