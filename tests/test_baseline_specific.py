"""NeMo's two classification baselines: Res50-General (one classifier for every category) and
Res50-Specific (one per category, each trained on its own category's images), trained at a tiny size
and scored through the baseline's own predictor."""

import json
import os

import numpy as np
import pytest

from configs import baseline_pascal3d, baseline_synthetic
from nemo_jax import data
from nemo_jax import eval as eval_lib
from nemo_jax.baseline import Predictor, load_baseline, load_predictor, make_predict, train_baseline

CATS = ("car", "chair")


def test_configs_select_the_variant():
    assert baseline_synthetic.get_config().variant == "general"
    assert baseline_synthetic.get_config("specific").variant == "specific"
    assert baseline_pascal3d.get_config("specific").variant == "specific"
    assert (
        baseline_pascal3d.get_config().data.input_size
        == baseline_pascal3d.get_config("specific").data.input_size
    )
    with pytest.raises(ValueError, match="unknown variant 'per_class'"):
        baseline_synthetic.get_config("per_class")


def test_predictor_routes_each_category_to_its_own_classifier():
    """The specific predictor calls the category's classifier; the general one serves any category
    it was trained on; an unknown category is an error naming what there is."""
    fake = lambda tag: lambda variables, images: (np.full(len(images), tag), np.zeros(len(images)), variables)
    images = np.zeros((2, 8, 8, 3), np.uint8)
    specific = Predictor(
        "specific", CATS, "runs", {"car": (fake(1.0), np.ones(2)), "chair": (fake(2.0), np.ones(2))}
    )
    assert specific(images, "chair")[0].tolist() == [2.0, 2.0]
    assert specific(images, "car")[0].tolist() == [1.0, 1.0]
    with pytest.raises(
        ValueError, match=r"no Res50-Specific classifier for 'bus' \(has \['car', 'chair'\]\)"
    ):
        specific(images, "bus")
    general = Predictor("general", (), "run", {"": (fake(3.0), np.ones(2))})
    assert general(images, "bus")[0].tolist() == [3.0, 3.0]
    only_car = Predictor("general", ("car",), "run", {"": (fake(3.0), np.ones(2))})
    with pytest.raises(ValueError, match="not on 'chair'"):
        only_car(images, "chair")


def test_a_folder_without_a_baseline_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a baseline run"):
        load_predictor(str(tmp_path), (8, 8, 3))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_predictor(str(tmp_path / "missing"), (8, 8, 3))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    options = data.make_options(
        "synthetic",
        {"categories": ",".join(CATS), "height": 32, "width": 32, "train_per_category": 8,
         "val_per_category": 2, "test_per_category": 3, "neural_vertices": 60},
    )  # fmt: skip
    data.build("synthetic", str(root / "data"), options)
    logs, runs = [], {}
    for variant in ("general", "specific"):
        config = baseline_synthetic.get_config(variant)
        config.data.data_dir = str(root / "data")
        config.model.width = 0.25
        t = config.train
        t.steps, t.batch_size, t.checkpoint_every, t.progress = 4, 4, 4, False
        runs[variant] = (str(root / variant), train_baseline(config, str(root / variant), log=logs.append))
    return root, runs, logs


@pytest.mark.extended
def test_specific_trains_one_classifier_per_category_on_its_own_images(trained):
    root, runs, logs = trained
    workdir, result = runs["specific"]
    # 4 general steps shared out by the image counts (8 and 8): 2 each
    assert result["steps"] == {"car": 2, "chair": 2}
    assert sorted(result["categories"]) == list(CATS)
    for cat in CATS:
        stored = json.load(open(os.path.join(workdir, cat, "config.json")))
        assert stored["variant"] == "specific" and stored["data"]["categories"] == [cat]
        assert stored["train"]["steps"] == 2
        assert len(result["categories"][cat]["losses"]) == 2
        assert f"baseline (Res50-Specific) {cat}: 2 steps on 8 images" in logs
    assert not os.path.exists(os.path.join(workdir, "config.json"))
    assert os.path.isfile(os.path.join(runs["general"][0], "config.json"))
    with pytest.raises(ValueError, match="holds one classifier"):
        config = baseline_synthetic.get_config("specific")
        config.data.data_dir = str(root / "data")
        train_baseline(config, runs["general"][0], log=lambda *_: None)


@pytest.mark.extended
def test_both_variants_score_the_test_images_through_their_predictor(trained):
    """Each variant's predictor scores every test image of both categories (NeMo's metric over the
    records); the specific predictor answers a category with that category's own classifier."""
    root, runs, _ = trained
    test = data.load("synthetic", "test_l0", str(root / "data"))
    shape = tuple(test[0]["image"].shape)
    predictors = {v: load_predictor(runs[v][0], shape) for v in runs}
    assert predictors["general"].variant == "general" and predictors["general"].categories == ()
    assert predictors["specific"].variant == "specific" and predictors["specific"].categories == CATS
    own = {}
    for cat in CATS:
        config, module, variables = load_baseline(os.path.join(runs["specific"][0], cat), shape)
        own[cat] = (make_predict(config, module), variables)
    for variant, predictor in predictors.items():
        records = []
        for cat in CATS:
            idx = test.indices_of(cat)
            images = np.stack([test[i]["image"] for i in idx])
            pred = predictor(images, cat)
            assert all(p.shape == (len(idx),) and np.isfinite(p).all() for p in pred)
            if variant == "specific":
                predict, variables = own[cat]
                for got, want in zip(pred, predict(variables, images), strict=True):
                    np.testing.assert_array_equal(got, np.asarray(want))
            for j, i in enumerate(idx):
                ex = test[i]
                keys = ("azimuth", "elevation", "theta")
                records.append({
                    "id": ex["id"], "category": cat, "level": 0,
                    "pred": {k: float(p[j]) for k, p in zip(keys, pred, strict=True)},
                    "true": {k: float(ex[k]) for k in keys},
                })  # fmt: skip
        results = eval_lib.evaluate_records(records)["results"]
        assert {c: results[c]["L0"]["n"] for c in CATS} == {"car": 3, "chair": 3}
        assert results["mean"]["L0"]["n"] == 6
