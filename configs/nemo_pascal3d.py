"""NeMo on PASCAL3D+, one category: ``--config configs/nemo_pascal3d.py:car``.

Crops follow NeMo's protocol: every image rescaled by distance / 5 (the object at distance 5 with a
3000-px focal, ``data.distance``, for every category) and cropped to NeMo's per-category size. The
neural mesh is the SingleCuboid stored with the built dataset (``mesh.kind='dataset'``), or built
from the CAD models with ``--config.mesh.kind=single_cuboid --config.mesh.cad_dir=PASCAL3D+/CAD``.

The ResNet-50 starts from torchvision's ImageNet weights, as NeMo's does: give the file with
``--config.model.pretrained=/path/resnet50-0676ba61.pth`` (read without torch; or its ``.npz`` from
``nemo-jax-convert-weights``). Without it training stops at start and says so;
``--config.model.pretrained=none`` trains from a random initialisation instead.
"""

from nemo_jax import recipes


def get_config(category: str = "car"):
    """The recipe, each value with its reason: :func:`nemo_jax.recipes.nemo_pascal3d`."""
    return recipes.nemo_pascal3d(category)
