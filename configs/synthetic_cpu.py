"""CPU-sized training on the data package's synthetic set (64 x 64 images, tiny backbone):
``--config configs/synthetic_cpu.py:car --config.data.data_dir=DIR``."""

from nemo_jax import recipes


def get_config(category: str = "car"):
    """The recipe, each value with its reason: :func:`nemo_jax.recipes.synthetic_cpu`."""
    return recipes.synthetic_cpu(category)
