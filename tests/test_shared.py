"""One backbone for several categories: one neural mesh per category
stacked, mixed-category batches, cross-category negatives, one checkpoint scoring every category,
the category search, the common canvas, and the errors for a category the run does not know."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import tiny_config

from nemo_jax import eval as eval_lib
from nemo_jax.apps import estimate as estimate_app
from nemo_jax.apps import evaluate as evaluate_app
from nemo_jax.data import canvas
from nemo_jax.train import category_data, contrastive, loop, run, sources
from nemo_jax.train.state import create_train_state, make_optimizer
from nemo_jax.train.step import StepConfig, make_train_step

CATEGORIES = ("slab", "tower")
# Clearly different meshes: a long low box and a tall narrow one (CAD frame, z up, CAD units).
BOUNDS = {
    "slab": {"lower": (-1.0, -0.4, -0.3), "upper": (1.0, 0.4, 0.3)},
    "tower": {"lower": (-0.4, -0.4, -0.9), "upper": (0.4, 0.4, 0.9)},
}


def shared_config(steps: int = 60):
    c = tiny_config(steps)
    c.categories = CATEGORIES
    c.category = ""
    c.mesh.kind = "cuboid"
    c.mesh.category_overrides = BOUNDS
    c.train.no_flip_categories = ()
    c.train.cross_category_negatives = False
    return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A shared run of two categories (60 steps), its final state and held-out rendered images."""
    config = shared_config()
    workdir = str(tmp_path_factory.mktemp("shared") / "run")
    _, state = loop.train(config, workdir)
    _, held = sources.build_sources(config, run.build_category_meshes(config), None, None)
    return config, workdir, state, held


class HeldOut:
    """Rendered held-out images as an evaluation split (``category`` as the dataset's label)."""

    path, split, categories = "toy-held-out", "test_l0", list(CATEGORIES)

    def __init__(self, held):
        self.held = held

    def __len__(self):
        return len(self.held)

    def indices_of(self, category):
        c = CATEGORIES.index(category)
        return [i for i in range(len(self.held)) if int(self.held[i]["category_index"]) == c]

    def __getitem__(self, i):
        ex = self.held[i]
        return dict(ex, id=f"toy_{i}", category=int(ex["category_index"]), occlusion_level=0)


GRID = dict(azimuths_deg=tuple(range(0, 360, 45)), elevations_deg=(15.0,), thetas_deg=(0.0,), steps=0)


class StubBackbone(nn.Module):
    """A one-layer stand-in for the backbone (stride 4, unit features): compiles in a moment."""

    dim: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = nn.Conv(self.dim, (4, 4), strides=4)(x)
        return y / jnp.linalg.norm(y, axis=-1, keepdims=True)


@pytest.mark.extended  # ~30 s (compiling a train step); the trained run below checks both banks learn
def test_mixed_batch_updates_each_category_bank_only_from_its_images():
    """A batch of category-0 images moves bank 0 and leaves bank 1 and its clutter queue alone."""
    config = shared_config(steps=4)
    config.train.batch_size = 4
    neural, meshes, _ = run.build_neural_mesh(config, jax.random.PRNGKey(0))
    assert neural.features.shape[0] == 2 and meshes.num_meshes == 2
    model, preprocess = StubBackbone(int(config.model.feature_dim)), lambda x: x / 255.0
    tx = make_optimizer(config.train)
    cfg = StepConfig.from_config(config)
    state = create_train_state(jax.random.PRNGKey(1), model, neural, tx, cfg.image_size)
    train_src, _ = sources.build_sources(config, meshes, None, None)
    only_first = [train_src[i] for i in range(len(train_src)) if int(train_src[i]["category_index"]) == 0][:4]
    assert len(only_first) == 4
    batch = {k: np.stack([ex[k] for ex in only_first]) for k in only_first[0]}
    new, metrics = jax.jit(make_train_step(model, tx, cfg, preprocess))(state, batch)
    assert bool(metrics["finite"])
    moved = np.linalg.norm(np.asarray(new.mesh.features - neural.features), axis=-1)  # [C, V]
    assert np.mean(moved[0] > 1e-4) > 0.3
    np.testing.assert_array_equal(np.asarray(new.mesh.features[1]), np.asarray(neural.features[1]))
    np.testing.assert_array_equal(np.asarray(new.mesh.clutter[1]), np.asarray(neural.clutter[1]))
    assert not np.array_equal(np.asarray(new.mesh.clutter[0]), np.asarray(neural.clutter[0]))


def test_cross_category_negatives_add_to_the_denominator():
    """Other categories' vertices as extra negatives raise the loss (more terms in the softmax
    denominator, the same target); masked off they change nothing."""
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    b, v, d, m = 2, 6, 8, 10
    feats, bank = unit(jax.random.normal(k[0], (b, v, d))), unit(jax.random.normal(k[1], (v, d)))
    clutter, samples = unit(jax.random.normal(k[2], (4, d))), unit(jax.random.normal(k[3], (b, 3, d)))
    other = unit(jax.random.normal(k[4], (m, d)))
    visible = jnp.ones((b, v), bool)
    positions = jnp.stack([jnp.arange(v) * 10.0, jnp.zeros(v)], -1)[None].repeat(b, 0)

    @jax.jit
    def losses(other, mask):
        args = (feats, visible, positions, bank, clutter, samples)
        base = contrastive.contrastive_loss(*args, distance_thr=1.0)[0]
        extra = contrastive.contrastive_loss(*args, None, None, other, mask, distance_thr=1.0)[0]
        return base, extra

    base, more = losses(other, jnp.ones((b, m), bool))
    _, none = losses(other, jnp.zeros((b, m), bool))
    assert float(more) > float(base) + 1e-3
    np.testing.assert_allclose(float(none), float(base), rtol=1e-6)


def test_cross_category_negatives_option_reaches_the_step():
    config = shared_config()
    assert not StepConfig.from_config(config).cross_category_negatives
    config.train.cross_category_negatives = True
    config.train.flip_prob = 0.5
    config.train.no_flip_categories = ("tower",)
    cfg = StepConfig.from_config(config)
    assert cfg.cross_category_negatives and cfg.category_flip_probs == (0.5, 0.0)
    config.train.no_flip_categories = ("bus",)
    with pytest.raises(ValueError, match=r"no_flip_categories: \['bus'\]"):
        StepConfig.from_config(config)


@pytest.mark.extended
def test_one_checkpoint_scores_every_category_and_search_finds_the_category(trained, monkeypatch):
    """One shared checkpoint evaluates both categories (per-category + mean results);
    ``category_mode="search"`` picks each rendered image's category (clearly different meshes)."""
    config, workdir, state, held = trained
    init, _, _ = run.build_neural_mesh(config, jax.random.split(jax.random.PRNGKey(0))[0])
    for c in range(2):  # both banks were trained, each by its own images
        moved = np.linalg.norm(np.asarray(state.mesh.features[c] - init.features[c]), axis=-1)
        assert np.mean(moved > 1e-3) > 0.3, c
    monkeypatch.setattr(evaluate_app, "level_source", lambda *a: HeldOut(held))

    def records(mode):
        return evaluate_app.nemo_records(
            workdir, "toy", "", (0,), inference_overrides=GRID, category_mode=mode
        )

    truth = evaluate_app.eval_lib.evaluate_records(records("ground_truth"))
    assert set(truth["results"]) == {*CATEGORIES, "mean"}
    assert truth["results"]["mean"]["L0"]["n"] == len(held)
    assert all("pred_category" not in p for p in truth["predictions"])  # the category was given
    assert "category_acc" not in truth["results"]["mean"]["L0"]
    searched = eval_lib.evaluate_records(records("search"))
    assert [p["pred_category"] for p in searched["predictions"]] == [
        p["category"] for p in truth["predictions"]
    ]
    assert searched["results"]["mean"]["L0"]["category_acc"] == 1.0
    assert "CatAcc" in eval_lib.format_table(searched)
    # the search's loss is never worse than the annotated category's
    for s, t in zip(searched["predictions"], truth["predictions"], strict=True):
        assert s["loss"] <= t["loss"] + 1e-6


@pytest.mark.extended
def test_a_category_the_run_does_not_know_is_named_with_the_known_ones(trained, tmp_path):
    _, workdir, _, _ = trained
    with pytest.raises(ValueError, match=r"'bus' is not one of the run's categories \['slab', 'tower'\]"):
        evaluate_app.evaluate(workdir, "toy", "", categories=["bus"])
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(images / "a.png")
    with pytest.raises(ValueError, match=r"'bus' is not one of the run's categories \['slab', 'tower'\]"):
        estimate_app.estimate_poses(
            workdir, str(images), None, str(tmp_path / "out"), fill=0.6, category="bus"
        )
    with pytest.raises(ValueError, match=r"knows several categories \['slab', 'tower'\]; name one"):
        estimate_app.estimate_poses(workdir, str(images), None, str(tmp_path / "out"), fill=0.6)


@pytest.mark.extended
def test_comparison_counts_training_and_parameters(trained):
    from nemo_jax.apps import compare_shared

    config, workdir, state, _ = trained
    time = compare_shared.training_time(workdir)
    assert time["steps"] == 60 and time["images"] == 60 * int(config.train.batch_size) and time["train_s"] > 0
    counts = compare_shared.parameter_count(workdir)
    real = int(np.sum(np.any(np.asarray(state.mesh.features) != 0, -1)))
    assert counts["mesh"] == real * state.mesh.features.shape[-1] + state.mesh.clutter.size
    assert counts["backbone"] == sum(x.size for x in jax.tree.leaves((state.params, state.batch_stats)))
    fake = {
        "results": {
            "mean": {"L0": {"n": 2, "acc_pi6": 0.5, "acc_pi18": 0.5, "med_err_deg": 9.0, "category_acc": 1.0}}
        }
    }
    row = {**fake, "runs": 1, **time, **counts}
    table = compare_shared.format_comparison({"shared": row, "shared, category searched": row})
    assert "100.0" in table and "50.0" in table


def test_crops_of_different_sizes_share_one_canvas():
    ex = {"image": np.full((4, 6, 3), 7, np.uint8), "px": np.float32(3.0), "py": np.float32(2.0)}
    size = canvas.canvas_size([(4, 6), (8, 4)])
    assert size == (8, 6)
    out = canvas.pad_to_canvas(ex, size)
    assert out["image"].shape == (8, 6, 3)
    np.testing.assert_array_equal(out["image"][2:6], ex["image"])  # centred: 2 rows above
    assert tuple(out["image"][0, 0]) == canvas.PAD_COLOUR
    assert (float(out["px"]), float(out["py"])) == (3.0, 4.0)
    np.testing.assert_allclose(out["box"], [-0.5, 1.5, 5.5, 5.5])  # vertices visible only on the crop
    with pytest.raises(ValueError, match="does not fit"):
        canvas.pad_to_canvas(ex, (3, 6))


def test_shared_configs_build():
    from configs import nemo_pascal3d_all, synthetic_all

    c = synthetic_all.get_config()
    assert tuple(c.categories) == ("car", "chair", "aeroplane")
    assert category_data.is_shared_config(c) and StepConfig.from_config(c).category_flip_probs == (
        0.5,
        0.0,
        0.5,
    )
    p = nemo_pascal3d_all.get_config("car,chair")
    assert tuple(p.data.image_size) == (544, 672)  # the largest height and width of the two crops
    with pytest.raises(ValueError, match="unknown categories"):
        nemo_pascal3d_all.get_config("car,spaceship")
