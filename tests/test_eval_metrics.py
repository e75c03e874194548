"""NeMo's metric against a float64 scipy.linalg.logm transcription; results JSON and table."""

import json
import math

import jax
import numpy as np
import pytest
import scipy.linalg

from nemo_jax.eval import evaluate_records, format_table, records_from_search, rotation_error, summarize
from nemo_jax.geometry import rotation_from_viewpoint


def _nemo_rotation(a, e, t):
    """NeMo's get_transformation_matrix rotation, float64, written out independently."""

    def rz(x):
        return np.array([[np.cos(x), -np.sin(x), 0], [np.sin(x), np.cos(x), 0], [0, 0, 1]])

    def rx(x):
        return np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])

    return rz(t) @ rx(e - np.pi / 2) @ rz(-a)


def _scipy_error(pred, true):
    rel = _nemo_rotation(*pred).T @ _nemo_rotation(*true)
    return np.linalg.norm(np.real(scipy.linalg.logm(rel)), "fro") / np.sqrt(2)


def test_rotation_error_matches_scipy_logm():
    rng = np.random.default_rng(0)
    pred = rng.uniform([0, -1.5, -np.pi], [2 * np.pi, 1.5, np.pi], (200, 3))
    # Include near-identical and moderately close pairs (logm is well conditioned below ~pi).
    true = np.concatenate(
        [pred[:50] + rng.normal(0, 1e-3, (50, 3)), pred[50:100] + rng.normal(0, 0.3, (50, 3))]
    )
    true = np.concatenate([true, rng.uniform([0, -1.5, -np.pi], [2 * np.pi, 1.5, np.pi], (100, 3))])
    ours = rotation_error(pred.T, true.T)
    ref = np.array([_scipy_error(p, t) for p, t in zip(pred, true, strict=True)])
    keep = ref < np.pi - 1e-3  # logm's branch is ambiguous at exactly pi
    assert keep.sum() > 190
    np.testing.assert_allclose(ours[keep], ref[keep], atol=1e-7)
    # And the jax geometry's geodesic distance (float32) agrees.
    from nemo_jax.geometry import geodesic_distance

    rp = jax.vmap(rotation_from_viewpoint)(*np.float32(pred.T))
    rt = jax.vmap(rotation_from_viewpoint)(*np.float32(true.T))
    np.testing.assert_allclose(np.asarray(geodesic_distance(rp, rt))[keep], ref[keep], atol=2e-3)


def test_summarize_thresholds_and_median():
    errs = np.deg2rad([1.0, 5.0, 9.99, 10.01, 29.9, 30.1, 100.0])
    s = summarize(errs)
    assert s["n"] == 7
    assert s["acc_pi18"] == pytest.approx(3 / 7)
    assert s["acc_pi6"] == pytest.approx(5 / 7)
    assert s["med_err_deg"] == pytest.approx(10.01)


def _record(i, cat, level, err_deg):
    true = {"azimuth": 0.3, "elevation": 0.2, "theta": 0.0}
    # An in-plane rotation by err_deg gives exactly that rotation error.
    pred = dict(true, theta=math.radians(err_deg))
    return {"id": f"img{i}", "category": cat, "level": level, "pred": pred, "true": true}


def test_results_json_per_category_level_and_weighted_mean():
    recs = [_record(0, "car", 0, 5), _record(1, "car", 0, 40), _record(2, "car", 1, 2)]
    recs += [_record(3 + i, "bus", 0, 20) for i in range(3)]
    out = evaluate_records(recs)
    res = out["results"]
    assert set(res) == {"car", "bus", "mean"}
    assert res["car"]["L0"] == pytest.approx({"n": 2, "acc_pi6": 0.5, "acc_pi18": 0.5, "med_err_deg": 22.5})
    assert res["car"]["L1"]["n"] == 1 and "L1" not in res["bus"]
    # Mean weighted by image count: (1 + 3) / 5 correct at pi/6 on L0.
    assert res["mean"]["L0"]["n"] == 5
    assert res["mean"]["L0"]["acc_pi6"] == pytest.approx(4 / 5)
    assert res["mean"]["L0"]["med_err_deg"] == pytest.approx(20.0)
    assert out["predictions"][1]["error_deg"] == pytest.approx(40.0)
    table = format_table(out, title="demo")
    assert "car" in table and "mean" in table and "80.0" in table


def test_results_json_round_trip_recomputes_the_same_metrics(tmp_path):
    """The results JSON written to disk reads back to the same numbers, and its prediction records
    alone reproduce every metric (as tools re-evaluating a saved run do)."""
    errs = {"car": {0: [3, 12, 45], 2: [8, 31]}, "bus": {0: [29, 31], 2: [1]}}
    recs = [
        _record(f"{cat}{lv}{i}", cat, lv, e)
        for cat, per_level in errs.items()
        for lv, es in per_level.items()
        for i, e in enumerate(es)
    ]
    out = evaluate_records(recs)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(out, indent=2))
    back = json.loads(path.read_text())
    assert back["results"] == out["results"]  # floats survive the text round trip exactly
    assert list(back["results"]["car"]) == ["L0", "L2"]
    # every number checked against the errors written above (degrees), not against the module
    for cat, per_level in errs.items():
        for lv, es in per_level.items():
            r = back["results"][cat][f"L{lv}"]
            assert r["n"] == len(es)
            assert r["acc_pi6"] == pytest.approx(np.mean(np.array(es) < 30))
            assert r["acc_pi18"] == pytest.approx(np.mean(np.array(es) < 10))
            assert r["med_err_deg"] == pytest.approx(np.median(es), abs=1e-9)
    pooled_l2 = [8, 31, 1]
    assert back["results"]["mean"]["L2"]["med_err_deg"] == pytest.approx(8.0, abs=1e-9)
    assert back["results"]["mean"]["L2"]["acc_pi6"] == pytest.approx(2 / len(pooled_l2))
    by_id = {p["id"]: p for p in back["predictions"]}
    assert by_id["imgcar02"]["error_deg"] == pytest.approx(45.0)
    assert by_id["imgbus01"]["level"] == "L0" and by_id["imgbus01"]["error_rad"] == pytest.approx(
        math.radians(31)
    )
    # re-evaluating the saved records gives the saved results
    assert evaluate_records(back["predictions"])["results"] == back["results"]


def test_bad_records_raise_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        evaluate_records([])
    bad = _record(0, "car", 0, 5)
    del bad["pred"]["theta"]
    with pytest.raises(ValueError, match="'pred'"):
        evaluate_records([bad])
    nan = _record(0, "car", 0, 5)
    nan["true"]["azimuth"] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        evaluate_records([nan])
    with pytest.raises(ValueError, match="missing field 'level'"):
        evaluate_records([{"id": 1, "category": "car"}])


def test_records_from_search():
    class Result:  # duck-typed PoseResult
        azimuth = np.array([0.1, 0.2])
        elevation = np.array([0.0, 0.1])
        theta = np.array([0.0, 0.0])
        distance = np.array([5.0, 5.0])
        loss = np.array([0.5, 0.6])

    recs = records_from_search(
        Result(), ["a", "b"], ["car", "car"], [0, 2], [0.1, 0.2], [0.0, 0.1], [0.0, 0.5]
    )
    out = evaluate_records(recs)
    assert out["predictions"][0]["error_rad"] == pytest.approx(0.0, abs=1e-9)
    assert out["predictions"][1]["level"] == "L2"
    assert out["predictions"][1]["error_rad"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ids"):
        records_from_search(Result(), ["a"], ["car"] * 2, [0, 0], [0, 0], [0, 0], [0, 0])


def test_ece_by_hand():
    from nemo_jax.eval import expected_calibration_error, reliability_bins

    conf = [0.05, 0.15, 0.95, 0.95, 1.0]
    correct = [False, False, True, False, True]
    # bins of width 0.1: [0, 0.1) holds 0.05 (acc 0), [0.1, 0.2) 0.15 (acc 0), the last bin holds
    # 0.95, 0.95 and 1.0 (c = 1 falls in it): acc 2/3, mean confidence 0.9667
    expected = (0.05 + 0.15 + 3 * abs(2 / 3 - (0.95 + 0.95 + 1.0) / 3)) / 5
    assert expected_calibration_error(conf, correct) == pytest.approx(expected, abs=1e-12)
    table = reliability_bins(conf, correct)
    assert [b["n"] for b in table] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert table[9]["accuracy"] == pytest.approx(2 / 3) and table[2]["accuracy"] is None
    # perfectly calibrated: each bin's accuracy equals its confidence
    assert expected_calibration_error([0.25] * 4 + [0.75] * 4, [1, 0, 0, 0, 1, 1, 1, 0]) == 0.0
    # two bins instead of ten: 0.05 and 0.15 share [0, 0.5)
    two = (2 * abs(0 - 0.1) + 3 * abs(2 / 3 - 2.9 / 3)) / 5
    assert expected_calibration_error(conf, correct, bins=2) == pytest.approx(two, abs=1e-12)
    assert math.isnan(expected_calibration_error([], []))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([1.5], [True])


def test_auroc_equals_the_mann_whitney_pair_count():
    from nemo_jax.eval import auroc

    # by hand: positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs ordered
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)  # a tie counts one half
    assert auroc([0.1, 0.2], [1, 1]) is None  # one class only
    rng = np.random.default_rng(0)
    for _ in range(5):
        score = rng.integers(0, 6, size=40).astype(float)  # many ties
        label = rng.uniform(size=40) < 0.4
        pos, neg = score[label], score[~label]
        pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        assert auroc(score, label) == pytest.approx(pairs / (len(pos) * len(neg)), abs=1e-12)


def test_selective_accuracy_and_confidence_in_results():
    from nemo_jax.eval import selective_accuracy

    kept, acc = selective_accuracy([0.9, 0.2, 0.7, 0.4], [True, False, False, True])
    np.testing.assert_allclose(kept, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(acc, [1.0, 0.5, 2 / 3, 0.5])  # order 0.9, 0.7, 0.4, 0.2
    t = {"azimuth": 0.0, "elevation": 0.0, "theta": 0.0}
    records = [
        {"id": str(i), "category": "car", "level": lv, "pred": dict(t, theta=e), "true": t, "confidence": c}
        for i, (lv, e, c) in enumerate([(0, 0.1, 0.9), (0, 0.2, 0.8), (1, 1.0, 0.3), (1, 0.1, 0.6)])
    ]
    out = evaluate_records(records)["confidence"]
    assert out["all"]["auroc"] == pytest.approx(1.0) and out["all"]["n"] == 4
    assert out["levels"]["L0"]["auroc"] is None  # every L0 image is right
    assert out["levels"]["L1"]["ece"] == pytest.approx((abs(0 - 0.3) + abs(1 - 0.6)) / 2)
    assert "confidence" not in evaluate_records([dict(r, confidence=None) for r in records])
    with pytest.raises(ValueError, match="'confidence' must be a number in"):
        evaluate_records([dict(records[0], confidence=1.2)])


def test_ece_if_calibrated_is_the_sampling_noise_of_a_perfect_calibration():
    from nemo_jax.eval import ece_if_calibrated

    # one bin at 0.5 with n images: E|mean(y) - 1/2| = sqrt(0.25 / n) * sqrt(2 / pi) (normal limit)
    n = 100
    expected = math.sqrt(0.25 / n) * math.sqrt(2 / math.pi)
    got = ece_if_calibrated(np.full(n, 0.5), draws=2000)
    assert got == pytest.approx(expected, rel=0.08)
    assert ece_if_calibrated(np.full(n, 0.5), draws=2000) == got  # deterministic
    assert ece_if_calibrated([0.0, 1.0, 1.0]) == 0.0  # certain outcomes: no noise


def _occluder_counts(occluded_scores, visible_scores, intersection, union):
    """A record's ``occluder`` entry with the same counts at both poses (scores on bin centres)."""
    from nemo_jax.eval import occluder

    hist = lambda s: np.histogram(s, occluder.EDGES)[0].tolist()  # noqa: E731
    counts = {"occluded": hist(occluded_scores), "visible": hist(visible_scores)}
    counts.update(intersection=intersection, union=union)
    return {"region": "object_mask", "predicted_pose": counts, "true_pose": dict(counts, intersection=0)}


def test_occluder_measures_pool_per_level_and_stored_predictions_keep_only_iou_counts():
    from nemo_jax.apps.demo import print_results_table

    recs = [_record(0, "car", 0, 5), _record(1, "car", 1, 40), _record(2, "bus", 1, 3)]
    recs[0]["occluder"] = _occluder_counts([], [0.105, -0.305], 0, 1)  # L0: nothing occluded
    recs[1]["occluder"] = _occluder_counts([0.305, -0.105], [0.105], 1, 3)
    recs[2]["occluder"] = _occluder_counts([0.505], [-0.205, 0.605], 1, 1)
    out = evaluate_records(recs)
    mean = out["results"]["mean"]
    # L1 pooled by hand: positives {0.305, -0.105, 0.505}, negatives {0.105, -0.205, 0.605}: of 9
    # pairs the positive wins 0.305>0.105, 0.305>-0.205, -0.105>-0.205, 0.505>0.105, 0.505>-0.205
    assert mean["L1"]["occluder_auroc"] == pytest.approx(5 / 9)
    assert mean["L1"]["occluder_iou"] == pytest.approx((1 + 1) / (3 + 1))
    assert mean["L1"]["occluder_iou_true_pose"] == pytest.approx(0.0)
    assert out["results"]["bus"]["L1"]["occluder_auroc"] == pytest.approx(1 / 2)
    assert mean["L0"]["occluder_auroc"] is None and mean["L0"]["occluder_iou"] == 0.0
    assert out["occluder"]["levels"]["L1"]["predicted_pose"]["occluded_cells"] == 3
    stored = json.loads(json.dumps(out))
    assert all("occluded" not in p["occluder"]["predicted_pose"] for p in stored["predictions"])
    again = evaluate_records(stored["predictions"])["results"]["mean"]["L1"]  # the IoU, no AUROC
    assert again["occluder_iou"] == mean["L1"]["occluder_iou"] and again["occluder_auroc"] is None
    table = format_table(out).splitlines()
    assert table[0].split()[-1] == "OccAUROC"
    assert table[-1].split()[-1] == f"{5 / 9:.3f}" and table[-2].split()[-1] == "-"
    assert "OccAUROC" not in format_table(evaluate_records([_record(0, "car", 0, 5)]))
    demo = print_results_table({"nemo": out, "baseline": out}).splitlines()
    assert demo[-1].split()[2:4] == ["-", f"{5 / 9:.3f}"]  # after "nemo occ."
