"""Figure 1 and accuracy-vs-occlusion PNGs; loss landscape minimum at the rendered pose."""

import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from nemo_jax.eval import evaluate_records
from nemo_jax.inference import PARAMETERS, SearchInputs, loss_landscape
from nemo_jax.mesh import cuboid_mesh
from nemo_jax.render import RasterSettings
from nemo_jax.viz import accuracy_vs_occlusion, draw_figure_one, figure_one, mesh_overlay, occlusion_image
from nemo_jax.viz import figures as viz_figures

H, W, C = 12, 20, 8
BACKGROUND, VISIBLE, OCCLUDED = viz_figures.OCCLUSION_COLORS  # RGB in [0, 1]
TAB_BLUE, TAB_ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's first two line colours


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _capture_figures(monkeypatch) -> list:
    """Keeps the figures the viz functions close, to read their axes after the PNG is written."""
    figures = []
    monkeypatch.setattr(viz_figures.plt, "close", figures.append)
    return figures


def _png_pixel(png, fig, ax, x, y):
    """The RGB of the written PNG at data point (x, y) of ``ax``."""
    scale = png.shape[1] / fig.bbox.width  # savefig dpi / figure dpi
    dx, dy = ax.transData.transform((x, y))
    return png[int(png.shape[0] - dy * scale), int(dx * scale)].astype(int)


def test_occlusion_image_colours_each_cell_by_its_class():
    occ = np.array([[0, 1, 0], [1, 0, 1]], bool)  # occluder outside the object counts as background
    mask = np.array([[0, 1, 1], [0, 0, 1]], bool)
    img = occlusion_image(occ, mask)
    assert img.shape == (2, 3, 3)
    expected = np.array([[BACKGROUND, OCCLUDED, VISIBLE], [BACKGROUND, BACKGROUND, OCCLUDED]])
    np.testing.assert_array_equal(img, expected)
    assert len({tuple(c) for c in (BACKGROUND, VISIBLE, OCCLUDED)}) == 3


def _hue_deg(rgb):
    return 360.0 * matplotlib.colors.rgb_to_hsv(np.asarray(rgb, float))[..., 0]


def test_occlusion_image_paper_colours():
    """The paper's occluder panel: background yellow, visible object green, occluded object red."""
    occ = np.array([[0, 1, 0, 1]], bool)  # an occluder flag outside the object is still background
    mask = np.array([[0, 1, 1, 0]], bool)
    img = occlusion_image(occ, mask)
    hue = _hue_deg(img[0])
    sat = matplotlib.colors.rgb_to_hsv(img[0])[:, 1]
    assert np.all(sat > 0.6)  # saturated colours, not greys
    background, occluded, visible, background2 = hue
    assert 45 <= background <= 65 and background2 == background  # yellow
    assert 100 <= visible <= 150  # green
    assert occluded <= 10 or occluded >= 350  # red
    with pytest.raises(ValueError, match="differ"):
        occlusion_image(occ, mask[:, :3])


@pytest.mark.extended
def test_figure_one_and_landscape(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    v, f = cuboid_mesh([-0.2, -0.5, -0.17], [0.2, 0.5, 0.17], 100)
    vf = _unit(rng.normal(size=(len(v), C))).astype(np.float32)
    clutter = _unit(rng.normal(size=C)).astype(np.float32)
    pose = np.array([0.5, 0.3, 0.1, 5.0], np.float32)
    pp = np.array([W / 2, H / 2], np.float32)
    settings = RasterSettings(H, W, tile_height=4, tile_width=4, cull_backfaces=True, tile_budget=300)
    # Observed map: the mesh's own features where it renders, clutter elsewhere.
    from nemo_jax.geometry import camera_from_viewpoint
    from nemo_jax.render import render_exact

    out, _ = render_exact(
        v, f, camera_from_viewpoint(*pose, pp[0], pp[1], 60.0, 1.0), settings, attributes=vf
    )
    mask = np.asarray(out.coverage) > 0.5
    obs = np.where(mask[..., None], _unit(np.asarray(out.features) + 1e-9), clutter).astype(np.float32)
    inputs = SearchInputs(obs, vf, clutter, v, f, 60.0, pp, pose[3])  # focal_px 60
    land = loss_landscape(inputs, pose, settings, num=9, span_deg=40)
    assert set(land) == set(PARAMETERS)
    for i, name in enumerate(PARAMETERS):
        values, losses = land[name]
        assert values.shape == losses.shape == (9,)
        assert values[4] == pytest.approx(pose[i])
        assert np.argmin(losses) == 4, (name, losses)  # the rendered pose is the minimum
    with pytest.raises(ValueError, match="non-finite"):
        loss_landscape(inputs.replace(observed=np.full_like(obs, np.nan)), pose, settings)

    image = np.full((4 * H, 4 * W, 3), 90, np.uint8)
    over = mesh_overlay(image, v, f, pose, 240.0, 4 * pp)
    assert over.shape == image.shape and (over != image).any(axis=-1).sum() > 0.3 * mask.sum() * 16
    occluder = mask & (np.arange(W)[None] < W // 2)
    captured = _capture_figures(monkeypatch)
    path = figure_one(
        tmp_path / "fig" / "figure1.png",
        image,
        v,
        f,
        pose,
        240.0,
        4 * pp,
        occluder,
        mask,
        landscape=land,
        true_pose=pose + 0.05,
        title="test",
    )
    png = np.asarray(Image.open(path).convert("RGB"))
    fig = captured[-1]
    panels = fig.axes
    assert len(panels) == 3 + len(PARAMETERS)
    # occluder panel: every feature cell of the PNG has its class's colour
    label = np.where(mask, np.where(occluder, 2, 1), 0)
    assert set(np.unique(label)) == {0, 1, 2}
    colours = np.rint(np.array([BACKGROUND, VISIBLE, OCCLUDED]) * 255).astype(int)
    cell = image.shape[0] / H  # image pixels per feature cell
    for r in range(H):
        for c in range(W):
            got = _png_pixel(png, fig, panels[2], (c + 0.5) * cell, (r + 0.5) * cell)
            assert np.abs(got - colours[label[r, c]]).max() <= 2, (r, c, got, label[r, c])
    # landscape panels: the plotted curve is the landscape, its minimum sits on the prediction line
    for i, name in enumerate(PARAMETERS):
        ax = panels[3 + i]
        curve, prediction, truth = ax.lines[:3]
        values, losses = land[name]
        to_unit = np.degrees if name != "distance" else (lambda x: x)
        np.testing.assert_allclose(curve.get_xdata(), to_unit(values), rtol=1e-6)
        np.testing.assert_allclose(curve.get_ydata(), losses, rtol=1e-6)
        x_min = curve.get_xdata()[np.argmin(curve.get_ydata())]
        assert prediction.get_xdata()[0] == pytest.approx(x_min, abs=1e-4)
        assert x_min == pytest.approx(to_unit(pose[i]), abs=1e-4)
        assert truth.get_xdata()[0] == pytest.approx(to_unit(pose[i] + 0.05), abs=1e-4)
        # and the PNG shows them: the black curve at its first sample, the blue line at mid height
        x0, y0 = curve.get_xdata()[0], curve.get_ydata()[0]
        assert _png_pixel(png, fig, ax, x0, y0).max() < 110, name
        y_mid = float(np.mean(ax.get_ylim()))
        assert np.abs(_png_pixel(png, fig, ax, x_min, y_mid) - TAB_BLUE).max() <= 40, name
    with pytest.raises(ValueError, match="image must be"):
        figure_one(tmp_path / "x.png", image[..., 0], v, f, pose, 240.0, pp, occluder, mask)

    # Landscapes around the ground truth: the ground truth is the centre of every x-axis (angles in
    # degrees), also for an azimuth given a whole turn away.
    truth = np.array([0.9, 0.1, -0.2, 5.3], np.float32)
    land_gt = loss_landscape(inputs, truth, settings, num=5, span_deg=60)
    shifted = truth + np.array([2 * np.pi, 0, 0, 0], np.float32)
    fig = draw_figure_one(image, v, f, pose, 240.0, 4 * pp, occluder, mask, land_gt, shifted)
    axes = {ax.get_label(): ax for ax in fig.axes}
    for i, name in enumerate(PARAMETERS):
        assert land_gt[name][0][2] == pytest.approx(truth[i])
        lo, hi = axes[f"landscape:{name}"].get_xlim()
        expected = truth[i] if name == "distance" else np.degrees(truth[i])
        assert 0.5 * (lo + hi) == pytest.approx(expected, abs=1e-3), name
    # The occluder panel keeps a legend naming the three classes (outside the map).
    labels = [t.get_text() for t in axes["occluder"].get_legend().get_texts()]
    assert labels == ["background", "visible object", "occluded object"]
    plt.close(fig)


def test_accuracy_vs_occlusion_plots_the_given_accuracies(tmp_path, monkeypatch):
    def recs(errs_by_level):
        out = []
        for level, errs in enumerate(errs_by_level):
            for i, e in enumerate(errs):
                t = {"azimuth": 0.0, "elevation": 0.0, "theta": 0.0}
                out.append(
                    {
                        "id": f"{level}-{i}",
                        "category": "car",
                        "level": level,
                        "pred": dict(t, theta=e),  # an in-plane error of e radians
                        "true": t,
                    }
                )
        return evaluate_records(out)

    nemo_errs = [[0.1, 0.2], [0.1, 0.9], [0.2, 0.8], [1.0, 0.3]]
    base_errs = [[0.1, 0.2], [0.9, 0.9], [1.2, 0.8], [1.0, 1.3]]
    nemo, base = recs(nemo_errs), recs(base_errs)
    captured = _capture_figures(monkeypatch)
    path = accuracy_vs_occlusion(tmp_path / "acc.png", {"NeMo": nemo, "baseline": base["results"]})
    png = np.asarray(Image.open(path).convert("RGB"))
    fig = captured[-1]
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.lines}
    # Acc@pi/6 (pi/6 = 0.524 rad) in percent, per level, from the errors above
    expected = {"NeMo": [100.0, 50.0, 50.0, 50.0], "baseline": [100.0, 0.0, 0.0, 0.0]}
    for name, values in expected.items():
        np.testing.assert_array_equal(lines[name].get_xdata(), [0, 1, 2, 3])
        np.testing.assert_allclose(lines[name].get_ydata(), values)
    # the PNG has each method's marker at its points (baseline drawn last: on top at level 0)
    for level, value in enumerate(expected["baseline"]):
        assert np.abs(_png_pixel(png, fig, ax, level, value) - TAB_ORANGE).max() <= 30, level
    for level, value in list(enumerate(expected["NeMo"]))[1:]:
        assert np.abs(_png_pixel(png, fig, ax, level, value) - TAB_BLUE).max() <= 30, level
    # another metric: the median errors in degrees
    accuracy_vs_occlusion(tmp_path / "med.png", {"NeMo": nemo}, metric="med_err_deg")
    (med_line,) = captured[-1].axes[0].lines
    np.testing.assert_allclose(med_line.get_ydata(), np.degrees(np.median(nemo_errs, axis=1)), rtol=1e-6)
    with pytest.raises(ValueError, match="no category 'bus'"):
        accuracy_vs_occlusion(tmp_path / "acc2.png", {"NeMo": nemo}, category="bus")


def test_reliability_diagram_draws_each_bins_accuracy(tmp_path, monkeypatch):
    from nemo_jax.viz import reliability_diagram

    # bin [0.1, 0.2): 4 images, 1 right (25 %); bin [0.8, 0.9): 4 images, 3 right (75 %)
    conf = np.array([0.15] * 4 + [0.85] * 4)
    correct = np.array([1, 0, 0, 0, 1, 1, 1, 0], bool)
    captured = _capture_figures(monkeypatch)
    path = reliability_diagram(tmp_path / "rel.png", conf, correct)
    png = np.asarray(Image.open(path).convert("RGB"))
    fig = captured[-1]
    ax = fig.axes[0]
    assert "ECE 0.100" in ax.get_title()  # |0.25 - 0.15| and |0.75 - 0.85|, half the images each
    # inside each bar (below its accuracy) blue, above it the white background
    for x, acc in ((0.15, 0.25), (0.85, 0.75)):
        assert np.abs(_png_pixel(png, fig, ax, x - 0.03, acc - 0.1) - TAB_BLUE).max() <= 30, x
        assert _png_pixel(png, fig, ax, x - 0.03, acc + 0.1).min() >= 240, x
    # an empty bin draws no bar
    assert _png_pixel(png, fig, ax, 0.45, 0.1).min() >= 240


def test_selective_accuracy_curve(tmp_path, monkeypatch):
    from nemo_jax.viz import selective_accuracy_curve

    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    correct = np.array([1, 1, 1, 1, 0, 1, 0, 0], bool)
    captured = _capture_figures(monkeypatch)
    path = selective_accuracy_curve(tmp_path / "sel.png", conf, correct)
    png = np.asarray(Image.open(path).convert("RGB"))
    fig = captured[-1]
    ax = fig.axes[0]
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), 100 * np.arange(1, 9) / 8)
    np.testing.assert_allclose(line.get_ydata(), 100 * np.cumsum(correct) / np.arange(1, 9))
    # the bound: the 5 right images first, then the 3 wrong ones
    np.testing.assert_allclose(ax.lines[2].get_ydata()[4:], 100 * 5 / np.arange(5, 9))
    # the PNG: the curve (blue) at 5 kept (4 of 5 right: 80 %) and half-way from 4 kept (100 %) to
    # there, where the bound (100 %) lies elsewhere
    assert np.abs(_png_pixel(png, fig, ax, 100 * 5 / 8, 80.0) - TAB_BLUE).max() <= 40
    assert np.abs(_png_pixel(png, fig, ax, 100 * 4.5 / 8, 90.0) - TAB_BLUE).max() <= 40
    assert _png_pixel(png, fig, ax, 100 * 5 / 8, 70.0).min() >= 200  # below the curve: background


def test_occluder_vs_occlusion_plots_the_auroc_at_both_poses_and_both_accuracies(tmp_path, monkeypatch):
    from nemo_jax.viz import occluder_vs_occlusion

    def level(acc, auroc=None, auroc_true=None):
        entry = {"n": 4, "acc_pi6": acc, "acc_pi18": acc / 2, "med_err_deg": 10.0}
        if auroc is not None or auroc_true is not None:
            entry.update(occluder_auroc=auroc, occluder_auroc_true_pose=auroc_true)
        return entry

    nemo = {"results": {"mean": {
        "L0": level(0.9, None, None),  # no occluded cell: no AUROC
        "L1": level(0.8, 0.7, 0.9), "L2": level(0.6, 0.65, 0.85), "L3": level(0.5, 0.55, 0.8),
    }}}  # fmt: skip
    base = {"mean": {f"L{k}": level(a) for k, a in enumerate((0.9, 0.5, 0.3, 0.1))}}
    captured = _capture_figures(monkeypatch)
    path = occluder_vs_occlusion(tmp_path / "figs" / "occ.png", nemo, base)
    assert Image.open(path).size[0] > 0
    axes = {ax.get_label(): ax for ax in captured[-1].axes}
    lines = {line.get_label(): line for line in axes["occluder"].lines}
    np.testing.assert_array_equal(lines["at predicted pose"].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(lines["at predicted pose"].get_ydata(), [0.7, 0.65, 0.55])
    np.testing.assert_allclose(lines["at true pose"].get_ydata(), [0.9, 0.85, 0.8])
    acc = {line.get_label(): line for line in axes["accuracy"].lines}
    np.testing.assert_allclose(acc["NeMo"].get_ydata(), [90.0, 80.0, 60.0, 50.0])
    np.testing.assert_allclose(acc["baseline"].get_ydata(), [90.0, 50.0, 30.0, 10.0])
    with pytest.raises(ValueError, match="no 'occluder_auroc'"):
        occluder_vs_occlusion(tmp_path / "none.png", base)
