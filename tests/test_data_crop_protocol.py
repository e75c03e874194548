"""A run's crop protocol: statistics of the training crops, and crops of new boxes made like them."""

import numpy as np
import pytest

from nemo_jax.data import crop_protocol


def _example(box, px, py, size=(64, 96)):
    return {"image": np.zeros((*size, 3), np.uint8), "box": np.asarray(box, np.float32), "px": px, "py": py}


def test_statistics_then_crop_for_box_reproduce_the_training_crop():
    """Training crops of one geometry: an image box maps back to the same scale and corner."""
    size = (64, 96)
    scale, image_box = 0.5, np.array([100.0, 50.0, 300.0, 150.0])  # pixel edges, image pixels
    principal_image = np.array([210.0, 95.0])  # the object's projected centre, off the box centre
    corner = scale * principal_image - np.array([size[1] / 2, size[0] / 2])
    crop_box = scale * image_box - np.tile(corner, 2)
    source = [_example(crop_box, size[1] / 2, size[0] / 2, size)] * 5
    stats = crop_protocol.box_statistics(source)
    assert stats["image_size"] == list(size) and stats["examples"] == 5
    diag = np.hypot(*(crop_box[2:] - crop_box[:2]))
    assert stats["box_diagonal_ratio"] == pytest.approx(diag / np.hypot(96, 64))
    np.testing.assert_allclose(stats["principal_offset"], [10 / 200, -5 / 100], atol=1e-6)
    got = crop_protocol.crop_for_box(image_box, size, stats)
    np.testing.assert_allclose(got, [scale, *corner], rtol=1e-5)


def test_medians_object_masks_and_files(tmp_path):
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 4:20] = 1  # pixel edges 3.5..19.5 x 7.5..23.5
    ex = {"image": np.zeros((32, 32, 3), np.uint8), "object_mask": mask, "px": 11.5, "py": 15.5}
    np.testing.assert_allclose(crop_protocol.example_box(ex), [3.5, 7.5, 19.5, 23.5])
    small = _example([0, 0, 10, 10], 5.0, 5.0, (32, 32))
    stats = crop_protocol.box_statistics([small, ex, ex])
    assert stats["box_diagonal_ratio"] == pytest.approx(0.5)  # the median: 16 / 32
    assert crop_protocol.box_statistics([{"image": np.zeros((8, 8, 3)), "px": 4.0, "py": 4.0}]) is None
    assert crop_protocol.read(str(tmp_path)) is None
    crop_protocol.write(str(tmp_path), stats)
    assert crop_protocol.read(str(tmp_path)) == stats
    (tmp_path / crop_protocol.FILENAME).write_text('{"image_size": [32, 32]}')
    with pytest.raises(ValueError, match="crop_protocol.json: field 'box_diagonal_ratio' missing"):
        crop_protocol.read(str(tmp_path))


def test_fill_protocol_and_bad_boxes():
    # the box's longer side (40 px) spans 0.6 of the crop's shorter side (64 px), centred
    scale, x0, y0 = crop_protocol.crop_for_box([10, 20, 50, 40], (64, 96), crop_protocol.fill_protocol(0.6))
    assert scale == pytest.approx(0.6 * 64 / 40)
    assert scale * 30 - x0 == pytest.approx(48) and scale * 30 - y0 == pytest.approx(32)
    with pytest.raises(ValueError, match="x1 > x0"):
        crop_protocol.crop_for_box([10, 20, 10, 40], (64, 96), crop_protocol.fill_protocol(0.6))
    with pytest.raises(ValueError, match="fill"):
        crop_protocol.fill_protocol(0.0)
