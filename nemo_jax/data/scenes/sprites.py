"""The ``objects`` occluder family's sprites: shaded, textured procedural objects cut out.

OccludedPASCAL3D+ pastes segments of MS-COCO objects; the generated trees paste renders of this
project's own procedural objects (:mod:`nemo_jax.data.scenes.categories`), any category, sub-type,
view and appearance, cut out along their silhouette (no background, no ground shadow).
"""

from __future__ import annotations

import numpy as np

from nemo_jax.data.occlusion import Sprite
from nemo_jax.data.scenes import categories, renderer, views


def object_sprites(rng: np.random.Generator, count: int, names=categories.CATEGORIES) -> list[Sprite]:
    """``count`` sprites of objects of random categories among ``names``, cycling through them in
    order so every category is present; rendered on the scenes' canvas (the object fills 80-95 %
    of it) and cut to the silhouette's box."""
    chosen, models, scene_views, rngs = [], [], [], []
    for k in range(count):
        name = names[k % len(names)]
        sub = np.random.default_rng(rng.integers(2**63))
        cad = categories.cad_models(name)
        model = cad[int(sub.integers(len(cad)))]
        view = views.sample_view(sub, model, fill=(0.8, 0.95), image_size=views.CANVAS, truncation=0.0)
        chosen.append(name)
        models.append(model)
        scene_views.append(view)
        rngs.append(sub)
    rasters = renderer.rasterize(models, scene_views, [False] * count)
    out = []
    for name, model, view, raster, sub in zip(chosen, models, scene_views, rasters, rngs, strict=True):
        rendered = renderer.shade(model, view, raster, sub)
        ys, xs = np.nonzero(rendered.mask)
        if len(xs) == 0:
            continue
        window = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        rgb = np.round(np.clip(rendered.rgb[window], 0, 1) * 255).astype(np.uint8)
        out.append(Sprite(rgb=rgb, mask=rendered.mask[window].copy(), category=name))
    return out
