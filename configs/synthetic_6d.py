"""A synthetic-set run for ``estimate_pose --mode 6d`` (position and distance searched too):
``configs/synthetic_cpu.py`` plus translation and scale augmentation and a longer schedule,
``--config configs/synthetic_6d.py:car --config.data.data_dir=DIR``.

The augmentation (``nemo_jax.train.augment.shift_scale_example``: the image and its camera moved
and zoomed together) teaches the backbone features of objects off the crop's centre and at other
scales, which the 6D search meets; a backbone trained on centred crops only scored 6D 55 % against
the centred protocol's 100 % on the car (README "6D pose"). The ranges and steps were chosen on
the synthetic validation set (seed 1) with ``tools/six_d_check.py --seed 1 --views 30``: car,
1,600 steps, shift 8 px and zoom 0.9-1.11 (6D 100 % vs centred 100 %, with 4 6D starts) against
shift 16 px and zoom 0.8-1.25 (90 % vs 97 %), shift 12 px and zoom 0.85-1.18 (87 % vs 97 %) and the
chosen ranges at 2,400 steps (93 % vs 100 %). The price is occlusion robustness in the centred
protocol (README "6D pose").
"""

from nemo_jax import recipes


def get_config(category: str = "car"):
    c = recipes.synthetic_cpu(category)
    c.train.steps = 1600
    c.train.shift_px = 8.0
    c.train.scale_range = (0.9, 1.11)
    return c
