"""NeMo on PASCAL3D+ with ONE backbone for all 12 categories:
``--config configs/nemo_pascal3d_all.py [--config configs/nemo_pascal3d_all.py:car,bus]``.

One neural mesh (vertex bank + clutter queue) per category, stacked; batches mix categories. NeMo's
crops differ in size per category, so every crop is pasted at the centre of one common canvas (the
largest height x the largest width of the chosen categories; padding in ImageNet's mean colour,
vertices outside the crop never visible; :mod:`nemo_jax.data.canvas`), which keeps one static shape
and one compilation for every category. Otherwise NeMo's recipe, as ``nemo_pascal3d.py``.
``--config.train.cross_category_negatives=True`` makes other categories' vertices negatives too.
"""

from nemo_jax import defaults, recipes
from nemo_jax.data.canvas import canvas_size

ALL = ",".join(defaults.CROP_SIZES)


def get_config(categories: str = ALL):
    cats = tuple(x for x in categories.split(",") if x)
    unknown = [x for x in cats if x not in defaults.CROP_SIZES]
    if unknown or not cats:
        known = sorted(defaults.CROP_SIZES)
        raise ValueError(f"nemo_pascal3d_all: unknown categories {unknown}; known: {known}")
    c = recipes.nemo_pascal3d(cats[0])
    c.categories = cats
    c.category = ""  # a shared run: config.categories
    c.data.image_size = canvas_size([defaults.CROP_SIZES[x] for x in cats])
    c.mesh.category_overrides = {}
    c.train.cross_category_negatives = False
    c.train.no_flip_categories = ()
    # NeMo trains 800 epochs per category's network; here 800 epochs of all the categories' images
    # (nemo_pascal3d.py's train.epochs): every image is seen as often as in NeMo's per-category runs.
    return c
