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
from nemo_jax.viz import (
    accuracy_vs_occlusion,
    draw_figure_one,
    figure_one,
    mesh_overlay,
    occlusion_image,
)

H, W, C = 12, 20, 8


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _hue_deg(rgb):
    return 360.0 * matplotlib.colors.rgb_to_hsv(np.asarray(rgb, float))[..., 0]


def test_occlusion_image_paper_colours():
    """The paper's occluder panel: background yellow, visible object green, occluded object red."""
    occ = np.array([[0, 1, 0, 1]], bool)  # an occluder flag outside the object is still background
    mask = np.array([[0, 1, 1, 0]], bool)
    img = occlusion_image(occ, mask)
    assert img.shape == (1, 4, 3)
    hue = _hue_deg(img[0])
    sat = matplotlib.colors.rgb_to_hsv(img[0])[:, 1]
    assert np.all(sat > 0.6)  # saturated colours, not greys
    background, occluded, visible, background2 = hue
    assert 45 <= background <= 65 and background2 == background  # yellow
    assert 100 <= visible <= 150  # green
    assert occluded <= 10 or occluded >= 350  # red
    with pytest.raises(ValueError, match="differ"):
        occlusion_image(occ, mask[:, :3])


def test_figure_one_and_landscape(tmp_path):
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
    png = Image.open(path)
    assert png.size[0] > png.size[1] > 100

    # Landscapes around the ground truth: the ground truth is the centre of every x-axis (angles in
    # degrees), also for an azimuth given a whole turn away; the prediction is marked inside.
    truth = np.array([0.9, 0.1, -0.2, 5.3], np.float32)
    land_gt = loss_landscape(inputs, truth, settings, num=5, span_deg=60)
    shifted = truth + np.array([2 * np.pi, 0, 0, 0], np.float32)
    fig = draw_figure_one(image, v, f, pose, 240.0, 4 * pp, occluder, mask, land_gt, shifted)
    axes = {ax.get_label(): ax for ax in fig.axes}
    for i, name in enumerate(PARAMETERS):
        values = land_gt[name][0]
        assert values[2] == pytest.approx(truth[i])
        lo, hi = axes[f"landscape:{name}"].get_xlim()
        expected = truth[i] if name == "distance" else np.degrees(truth[i])
        assert 0.5 * (lo + hi) == pytest.approx(expected, abs=1e-3), name
    # The occluder panel shows the paper's colours per pixel class and keeps a legend.
    panel = axes["occluder"]
    shown = np.asarray(panel.images[0].get_array())
    np.testing.assert_allclose(shown, occlusion_image(occluder, mask))
    labels = [t.get_text() for t in panel.get_legend().get_texts()]
    assert labels == ["background", "visible object", "occluded object"]
    assert [t.get_text() for t in axes["landscape:azimuth"].get_legend().get_texts()] == [
        "prediction",
        "ground truth",
    ]
    plt.close(fig)
    with pytest.raises(ValueError, match="image must be"):
        figure_one(tmp_path / "x.png", image[..., 0], v, f, pose, 240.0, pp, occluder, mask)


def test_accuracy_vs_occlusion(tmp_path):
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
                        "pred": dict(t, theta=e),
                        "true": t,
                    }
                )
        return evaluate_records(out)

    nemo = recs([[0.1, 0.2], [0.1, 0.9], [0.2, 0.8], [1.0, 0.3]])
    base = recs([[0.1, 0.2], [0.9, 0.9], [1.2, 0.8], [1.0, 1.3]])
    path = accuracy_vs_occlusion(tmp_path / "acc.png", {"NeMo": nemo, "baseline": base["results"]})
    assert Image.open(path).size[0] > 100
    with pytest.raises(ValueError, match="no category 'bus'"):
        accuracy_vs_occlusion(tmp_path / "acc2.png", {"NeMo": nemo}, category="bus")
