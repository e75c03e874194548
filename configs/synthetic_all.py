"""One backbone for every category of the synthetic set (CPU-sized, as ``synthetic_cpu.py``):
``python tools/train.py --config configs/synthetic_all.py --workdir RUN --config.data.data_dir=DIR``.

One neural mesh (vertex bank + clutter queue) per category, stacked; batches mix categories (the
synthetic set has one image size for all). ``--config.train.cross_category_negatives=True`` makes
the other categories' vertices negatives too. ``tools/evaluate.py --workdir RUN`` scores every
category from the one checkpoint; ``--category_mode=search`` infers the category as well.
"""

from nemo_jax import recipes


def get_config(categories: str = "car,chair,aeroplane"):
    c = recipes.synthetic_cpu("car")
    c.categories = tuple(x for x in categories.split(",") if x)
    c.category = ""  # a shared run: config.categories
    c.mesh.category_overrides = {}
    # The per-category runs take 800 (car) + 1,200 + 1,200 steps of 16 images; the shared run sees
    # every category in each batch.
    c.train.steps = 1600
    c.train.batch_size = 16
    c.train.cross_category_negatives = False
    # As synthetic_cpu.py: the chair's textures are not mirror-symmetric, the aeroplane needs flips.
    c.train.flip_prob = 0.5
    c.train.no_flip_categories = tuple(x for x in ("chair",) if x in c.categories)
    # Three categories' clutter queues: keep each one as long as a per-category run's.
    c.train.clutter_size = 320
    return c
