"""Inputs read within their bounds: hostile weight files (``.pth`` without torch, ``.npz``,
``.safetensors``) are refused before any array is viewed or allocated, naming the file and the tensor;
image files are read as their owners see them (upright, 8-bit RGB); uniform crops are told apart from
real objects.

The hostile ``.pth`` files are written by the tests (``tests/torch_files.py``, no torch needed), from
the globals a real checkpoint uses only: what makes them hostile is the offsets, sizes and strides.
"""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from torch_files import save_torch_views, save_torch_zip

from nemo_jax import models
from nemo_jax.data import fixtures, pascal3d
from nemo_jax.data.images import (
    UNIFORM_PIXEL_SPREAD,
    is_uniform,
    pixel_spread,
    read_image,
)
from nemo_jax.models.pretrained import read_pretrained
from nemo_jax.models.weight_bounds import MAX_EXPANSION, WeightFileError

_FLAT = np.arange(16, dtype=np.float32) + 0.5


def _refused(path, *patterns):
    """load_state_dict raises one WeightFileError whose single line names ``path`` and every pattern."""
    with pytest.raises(WeightFileError) as info:
        models.load_state_dict(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for pattern in patterns:
        assert pattern in message, (pattern, message)
    return message


def _peak_mib(fn) -> float:
    """The peak of memory traced (python and numpy allocations) while ``fn`` runs, MiB."""
    tracemalloc.start()
    try:
        fn()
    except ValueError:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def _by_index(flat, offset, size, stride):
    """A strided view's values by explicit index arithmetic (the definition, not numpy's strides)."""
    out = np.empty(size, flat.dtype)
    for index in np.ndindex(*size):
        out[index] = flat[offset + sum(i * s for i, s in zip(index, stride, strict=True))]
    return out


# ---- .pth: offsets, sizes and strides ----------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pth_negative_stride_far_before_the_storage_is_refused_not_a_crash(tmp_path, legacy):
    # stride -2**40 from the last element: before the fix this read unmapped memory (exit 139)
    path = tmp_path / "far.pth"
    save_torch_views(
        path, {"0": _FLAT}, {"layer1.0.conv1.weight": ("0", 15, (4,), (-(2**40),))}, legacy=legacy
    )
    _refused(path, "'layer1.0.conv1.weight'", "negative stride")


def test_pth_small_negative_stride_is_refused_not_read_before_the_storage(tmp_path):
    path = tmp_path / "small.pth"
    save_torch_views(path, {"0": _FLAT}, {"fc.weight": ("0", 0, (2, 2), (-3, 1))})
    _refused(path, "'fc.weight'", "negative stride")


def test_pth_negative_storage_offset_is_refused(tmp_path):
    path = tmp_path / "offset.pth"
    save_torch_views(path, {"0": _FLAT}, {"bn1.bias": ("0", -4, (4,), (1,))})
    _refused(path, "'bn1.bias'", "negative storage offset")


def test_pth_view_whose_highest_element_leaves_the_storage_is_refused(tmp_path):
    path = tmp_path / "past.pth"
    # offset 10 + 3 * 2 = element 16 of a 16-element storage
    save_torch_views(path, {"0": _FLAT}, {"bn1.weight": ("0", 10, (4,), (2,))})
    _refused(path, "'bn1.weight'", "runs past its storage")


def test_pth_zero_stride_tensor_in_a_small_file_is_refused_before_allocating(tmp_path):
    path = tmp_path / "zero_stride.pth"
    save_torch_views(path, {"0": _FLAT}, {"conv1.weight": ("0", 0, (400_000_000,), (0,))})
    assert path.stat().st_size < 1000  # 1.6 GB claimed by a file of a few hundred bytes
    message = _refused(path, "'conv1.weight'", f"at most {MAX_EXPANSION} times its size")
    assert "1600000000 bytes" in message
    assert _peak_mib(lambda: models.load_state_dict(path)) < 16


def test_pth_tensor_claiming_4_eib_is_refused_with_a_message(tmp_path):
    path = tmp_path / "exbi.pth"
    # 2**60 float32 elements = 4 EiB, every one inside the storage (stride 0)
    save_torch_views(path, {"0": _FLAT}, {"fc.weight": ("0", 0, (2**30, 2**30), (0, 0))})
    _refused(path, "'fc.weight'", "4611686018427387904 bytes")


def test_pth_empty_tensor_with_absurd_other_axes_is_refused_but_ordinary_empty_ones_load(tmp_path):
    path = tmp_path / "empty.pth"
    save_torch_views(path, {"0": _FLAT}, {"fc.bias": ("0", 0, (0, 2**62, 2**62), (1, 1, 1))})
    _refused(path, "'fc.bias'", "empty")
    ok = tmp_path / "empty_ok.pth"
    save_torch_views(ok, {"0": _FLAT}, {"fc.bias": ("0", 0, (0, 8), (8, 1))})
    sd = models.load_state_dict(ok)
    assert sd["fc.bias"].shape == (0, 8) and sd["fc.bias"].dtype == np.float32


def test_pth_size_or_stride_that_is_not_an_integer_is_refused(tmp_path):
    path = tmp_path / "float_stride.pth"
    save_torch_views(path, {"0": _FLAT}, {"fc.weight": ("0", 0, (2, 2), (2.5, 1))})
    _refused(path, "'fc.weight'", "not an integer")


def test_pth_refusal_names_the_key_under_its_wrapper(tmp_path):
    path = tmp_path / "wrapped.pth"
    save_torch_views(path, {"0": _FLAT}, {"module.fc.weight": ("0", 0, (4,), (-1,))}, wrap="state_dict")
    _refused(path, "'module.fc.weight' (under 'state_dict')")


def test_pth_strided_and_shared_storage_views_still_load(tmp_path):
    """Legitimate views: a transposed window at an offset, two tensors on one storage (tied weights),
    a zero-stride (expanded) row, a broadcast size-1 axis with an arbitrary stride, a 0-d scalar."""
    views = {
        "fc.weight": ("0", 1, (3, 4), (1, 4)),
        "tied.weight": ("0", 1, (3, 4), (1, 4)),
        "expanded": ("0", 2, (3, 5), (0, 1)),
        "broadcast": ("0", 3, (1, 4), (10**12, 2)),
        "scalar": ("0", 7, (), ()),
    }
    for legacy in (False, True):
        path = tmp_path / f"views_{legacy}.pth"
        save_torch_views(path, {"0": _FLAT}, views, legacy=legacy)
        sd = models.load_state_dict(path)
        for name, (_, offset, size, stride) in views.items():
            want = _by_index(_FLAT, offset, size, stride)
            assert sd[name].shape == tuple(size) and sd[name].dtype == np.float32, name
            np.testing.assert_array_equal(sd[name], want, err_msg=name)
            assert sd[name].flags.c_contiguous and sd[name].flags.owndata, name


def test_pth_legacy_storage_view_reads_its_window_and_is_bounded(tmp_path):
    # torch < 0.4 storage views: key 'v' is elements [4, 10) of root storage '0'
    path = tmp_path / "view.pth"
    save_torch_views(
        path, {"0": _FLAT}, {"w": ("v", 1, (2, 2), (2, 1))}, legacy=True, views={"v": ("0", 4, 6)}
    )
    np.testing.assert_array_equal(models.load_state_dict(path)["w"], _FLAT[4:10][[[1, 2], [3, 4]]])
    bad = tmp_path / "view_past.pth"
    save_torch_views(bad, {"0": _FLAT}, {"w": ("v", 0, (2,), (1,))}, legacy=True, views={"v": ("0", 12, 6)})
    _refused(bad, "'w'", "storage view 'v'", "runs past its storage")


def test_pth_legacy_storage_claiming_more_than_the_file_holds_is_refused(tmp_path):
    for numel in (2**61, -5):
        path = tmp_path / f"count_{numel}.pth"
        save_torch_views(path, {"0": _FLAT}, {"w": ("0", 0, (4,), (1,))}, legacy=True, numel={"0": numel})
        _refused(path, "storage '0'", f"claims {numel} elements")


def test_pth_deflated_storage_inflating_past_the_budget_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.pth"
    zeros = np.zeros(16 * 2**20, np.float32)  # 64 MiB, deflates to ~64 KiB
    save_torch_views(path, {"0": zeros}, {"w": ("0", 0, (4,), (1,))}, compress=True)
    assert path.stat().st_size < 2**20
    _refused(path, "storage '0'", f"at most {MAX_EXPANSION} times its size")
    assert _peak_mib(lambda: models.load_state_dict(path)) < 16
    # an ordinary deflated checkpoint (weights barely compress) still loads
    ok = tmp_path / "deflated.pth"
    weights = np.random.default_rng(0).normal(size=4096).astype(np.float32)
    save_torch_views(ok, {"0": weights}, {"w": ("0", 0, (64, 64), (64, 1))}, compress=True)
    np.testing.assert_array_equal(models.load_state_dict(ok)["w"], weights.reshape(64, 64))


def _zip_pickle(path, data_pkl: bytes):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/version", "3\n")


def test_pth_pickle_claiming_4_eib_of_bytes_is_refused_with_a_message(tmp_path):
    path = tmp_path / "binbytes.pth"
    _zip_pickle(path, b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"abc.")  # BINBYTES8
    _refused(path, "cannot read torch checkpoint")


def test_pth_shared_containers_are_resolved_once_not_once_per_path(tmp_path):
    # L0 = []; L(i+1) = [L(i), L(i)]: 2**20 paths through 21 lists (a 2**60 version of this file
    # would never finish if every path were walked)
    ops = bytearray(b"\x80\x04]\x94")
    for i in range(20):
        ops += b"](h" + bytes([i]) + b"h" + bytes([i]) + b"e\x94"
    path = tmp_path / "laughs.pth"
    _zip_pickle(path, bytes(ops) + b".")
    depth, node = 0, models.load_torch_checkpoint(path)
    while node:
        assert node[0] is node[1]  # the one list, not two copies
        node, depth = node[0], depth + 1
    assert depth == 20


def test_pth_containers_nested_too_deep_are_refused(tmp_path):
    path = tmp_path / "deep.pth"
    _zip_pickle(path, b"\x80\x02" + b"]" * 5000 + b"a" * 4999 + b".")
    _refused(path, "nested deeper than")


def test_pth_hostile_file_through_the_pretrained_loader_is_one_line_naming_field_file_and_key(tmp_path):
    path = tmp_path / "hostile.pth"
    save_torch_views(path, {"0": _FLAT}, {"conv1.weight": ("0", 15, (4,), (-(2**40),))})
    cfg = models.default_config()
    cfg.name, cfg.pretrained = "resnet18", str(path)
    for load in (lambda: models.load_pretrained(cfg, {}), lambda: read_pretrained(cfg)):
        with pytest.raises(WeightFileError) as info:
            load()
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith("config.model.pretrained: ")
        assert str(path) in message and "'conv1.weight'" in message


# ---- a normal checkpoint, every container ------------------------------------------------------


def _resnet18_state_dict() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(18)
    sd = {}
    for name, shape in models.torchvision_resnet_shapes("resnet18").items():
        if name.endswith("num_batches_tracked"):
            sd[name] = np.array(rng.integers(0, 10**6), np.int64)
        else:
            sd[name] = rng.standard_normal(shape, np.float32)
    return sd


def test_normal_converted_resnet_state_dict_still_loads_bit_for_bit(tmp_path):
    sd = _resnet18_state_dict()
    paths = [tmp_path / "zip.pth", tmp_path / "legacy.pth", tmp_path / "sd.npz", tmp_path / "sd.safetensors"]
    save_torch_zip(paths[0], sd)
    save_torch_zip(paths[1], sd, legacy=True)
    models.save_state_dict(paths[2], sd)
    models.save_state_dict(paths[3], sd)
    compressed = tmp_path / "compressed.npz"
    np.savez_compressed(compressed, **sd)
    for path in paths + [compressed]:
        back = models.load_state_dict(path)
        assert set(back) == set(sd), path
        for name, want in sd.items():
            got = back[name]
            assert got.dtype == want.dtype and got.shape == want.shape, (path, name)
            assert got.tobytes() == want.tobytes(), (path, name)
    assert models.check_trunk_weights(models.load_state_dict(paths[0]), "resnet18", source="zip.pth") > 11e6
    # read once before the model exists, merged later: the same trunk as reading at merge time
    cfg = models.default_config()
    cfg.name, cfg.pretrained = "resnet18", str(paths[0])
    module = models.build_backbone(cfg)
    abstract = jax.eval_shape(lambda k: module.init(k, jnp.zeros((1, 64, 64, 3))), jax.random.key(0))
    early = models.load_pretrained(cfg, abstract, pretrained=read_pretrained(cfg))
    late = models.load_pretrained(cfg, abstract)
    want = sd["layer4.1.conv2.weight"].transpose(2, 3, 1, 0)
    for variables in (early, late):
        np.testing.assert_array_equal(variables["params"]["trunk"]["layer4_1"]["conv2"]["kernel"], want)
        np.testing.assert_array_equal(variables["batch_stats"]["trunk"]["bn1"]["var"], sd["bn1.running_var"])


# ---- .safetensors ------------------------------------------------------------------------------


def _safetensors(path, header: dict, data: bytes):
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


def test_safetensors_header_running_past_the_file_is_refused(tmp_path):
    path = tmp_path / "header.safetensors"
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    _refused(path, "header of 1099511627776 bytes runs past the end of the file")


@pytest.mark.parametrize(
    "entry,pattern",
    [
        ({"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}, "outside the file's 16 bytes"),
        ({"dtype": "F32", "shape": [2**62, 4], "data_offsets": [0, 16]}, "needs 73786976294838206464 bytes"),
        ({"dtype": "F32", "shape": [0, 2**62], "data_offsets": [0, 0]}, "empty"),
        ({"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 16]}, "negative size"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [8, 4]}, "outside"),
        ({"dtype": "F32", "shape": [2.5], "data_offsets": [0, 16]}, "not an integer"),
        ({"dtype": "OBJ", "shape": [4], "data_offsets": [0, 16]}, "unsupported dtype"),
    ],
    ids=[
        "offsets_past_data",
        "shape_overflow",
        "empty_huge_axis",
        "negative_size",
        "reversed",
        "float",
        "dtype",
    ],
)
def test_safetensors_tensor_outside_the_file_is_refused_naming_it(tmp_path, entry, pattern):
    path = tmp_path / "bad.safetensors"
    _safetensors(path, {"layer1.0.bn1.weight": entry}, np.zeros(4, np.float32).tobytes())
    _refused(path, "'layer1.0.bn1.weight'", pattern)


# ---- .npz --------------------------------------------------------------------------------------


def test_npz_object_array_member_is_refused_naming_file_and_member(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, **{"fc.weight": np.ones(3, np.float32), "fc.bias": np.array([{"x": 1}], dtype=object)})
    _refused(path, "'fc.bias.npy'", "object array")


def _npy_member(shape, dtype, data: bytes) -> bytes:
    """A ``.npy`` file: its header (magic included) says ``shape`` and ``dtype``, then ``data``."""
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + data


def test_npz_member_whose_header_claims_more_than_it_stores_is_refused_before_allocation(tmp_path):
    path = tmp_path / "claims.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("conv1.weight.npy", _npy_member((2**28,), np.float32, b"\0" * 16))
    _refused(path, "'conv1.weight.npy'", "header claims shape (268435456,)")
    assert _peak_mib(lambda: models.load_state_dict(path)) < 16


def test_npz_compressed_member_inflating_past_the_budget_is_refused(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, w=np.zeros(16 * 2**20, np.float32))
    _refused(path, "'w.npy'", f"at most {MAX_EXPANSION} times its size")


# ---- images ------------------------------------------------------------------------------------


def test_16_bit_png_is_stretched_by_its_own_range_not_white(tmp_path):
    k = np.arange(256, dtype=np.uint16).reshape(16, 16)
    path = tmp_path / "deep.png"
    Image.fromarray(1000 + 240 * k).save(path)  # 1000 .. 62200: all over 255
    assert Image.open(path).mode == "I;16"
    rgb = read_image(path)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, np.repeat(k.astype(np.uint8)[..., None], 3, -1))


def test_16_bit_big_endian_tiff_and_constant_16_bit_image(tmp_path):
    k = np.arange(256, dtype=np.uint16).reshape(16, 16)
    path = tmp_path / "big.tif"
    Image.fromarray((5 + 3 * k).astype(">u2")).save(path)
    assert Image.open(path).mode == "I;16B"
    np.testing.assert_array_equal(read_image(path)[..., 1], k)
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(flat)
    assert (read_image(flat) == 255).all()  # a constant keeps its place on the 16-bit scale


def test_float_tiff_is_stretched_by_its_own_range_and_nan_is_refused(tmp_path):
    k = np.arange(256).reshape(16, 16)
    path = tmp_path / "float.tif"
    Image.fromarray((-1.0 + k * (4.0 / 255)).astype(np.float32)).save(path)
    assert Image.open(path).mode == "F"
    np.testing.assert_array_equal(read_image(path)[..., 2], k)
    bad = tmp_path / "nan.tif"
    values = np.zeros((4, 4), np.float32)
    values[1, 2] = np.nan
    Image.fromarray(values).save(bad)
    with pytest.raises(ValueError, match=r"nan\.tif: image mode F holds NaN"):
        read_image(bad)


# orientation -> how the displayed image follows from the stored pixels (EXIF 2.3, tag 0x0112)
_UPRIGHT = {
    3: lambda a: a[::-1, ::-1],
    6: lambda a: np.rot90(a, -1),  # the top row of the stored pixels becomes the right column
    8: lambda a: np.rot90(a, 1),
    2: lambda a: a[:, ::-1],
}


@pytest.mark.parametrize("tag", [6, 3, 8, 2])
def test_exif_rotated_jpeg_is_read_upright(tmp_path, tag):
    rng = np.random.default_rng(tag)
    stored = np.kron(rng.integers(0, 256, (3, 5, 3)), np.ones((8, 8, 1))).astype(np.uint8)  # 24 x 40
    exif = Image.Exif()
    exif[0x0112] = tag
    path = tmp_path / f"turned{tag}.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    as_stored = np.asarray(Image.open(path).convert("RGB"))  # the decoded pixels, tag ignored
    upright = read_image(path)
    np.testing.assert_array_equal(upright, _UPRIGHT[tag](as_stored))
    if tag in (6, 8):
        assert upright.shape == (40, 24, 3)
    # where annotations refer to the stored pixels the tag is refused, naming file and tag
    with pytest.raises(ValueError, match=rf"turned{tag}\.jpg: EXIF orientation {tag} "):
        read_image(path, orientation="refuse")
    with pytest.raises(ValueError, match=rf"turned{tag}\.jpg: EXIF orientation"):
        pascal3d.load_image(str(path))


def test_dataset_readers_keep_untagged_images_as_stored(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (12, 20, 3)).astype(np.uint8)
    path = tmp_path / "plain.png"
    Image.fromarray(pixels).save(path)
    np.testing.assert_array_equal(np.asarray(pascal3d.load_image(str(path))), pixels)
    exif = Image.Exif()
    exif[0x0112] = 1
    tagged = tmp_path / "tag1.png"
    Image.fromarray(pixels).save(tagged, exif=exif)
    np.testing.assert_array_equal(read_image(tagged, orientation="refuse"), pixels)


def test_occluded_fixture_reader_refuses_a_turned_source_image(tmp_path):
    manual = tmp_path / "manual"
    views = fixtures.write_pascal3d(str(manual), per_split=(1, 0))
    (name,) = views
    src = manual / "PASCAL3D+_release1.1" / "Images" / "car_imagenet" / f"{name}.JPEG"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(src).save(src, exif=exif)
    with pytest.raises(ValueError, match=rf"{name}\.JPEG: EXIF orientation 6"):
        fixtures.write_occluded(str(manual), views, levels=(1,))


def test_palette_png_reads_as_its_colours_and_transparency_as_black(tmp_path):
    palette = [10, 20, 30, 200, 100, 50, 0, 255, 0] + [0] * (256 * 3 - 9)
    index = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette)
    path = tmp_path / "palette.png"
    image.save(path)
    want = np.array(palette, np.uint8).reshape(256, 3)[index]
    np.testing.assert_array_equal(read_image(path), want)
    image.save(tmp_path / "clear.png", transparency=1)  # colour 1 fully transparent
    want[index == 1] = 0
    np.testing.assert_array_equal(read_image(tmp_path / "clear.png"), want)


def test_rgba_grey_and_bilevel_images_read_as_rgb(tmp_path):
    Image.fromarray(np.array([[[200, 100, 50, 128], [9, 9, 9, 255]]], np.uint8)).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), [[[100, 50, 25], [9, 9, 9]]])  # over black
    Image.fromarray(np.array([[0, 77, 255]], np.uint8)).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), [[[0] * 3, [77] * 3, [255] * 3]])
    Image.fromarray(np.array([[True, False]])).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_image(tmp_path / "b.png"), [[[255] * 3, [0] * 3]])


def test_cmyk_jpeg_reads_as_its_rgb(tmp_path):
    rgb = np.kron(
        np.array([[[250, 30, 30], [30, 200, 60]], [[20, 40, 220], [240, 240, 240]]]), np.ones((8, 8, 1))
    )
    rgb = rgb.astype(np.uint8)
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    got = read_image(path)
    assert got.dtype == np.uint8 and got.shape == rgb.shape
    assert np.abs(got.astype(int) - rgb).max() <= 12  # JPEG error only


def test_unsupported_mode_unreadable_and_missing_files_are_named(tmp_path):
    Image.new("LAB", (4, 4)).save(tmp_path / "lab.tif")
    with pytest.raises(ValueError, match=r"lab\.tif: image mode LAB cannot be read as 8-bit RGB"):
        read_image(tmp_path / "lab.tif")
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.jpg: unreadable image"):
        read_image(tmp_path / "notes.jpg")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "whole.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes()[:300])
    with pytest.raises(ValueError, match=r"cut\.jpg: unreadable image"):
        read_image(tmp_path / "cut.jpg")
    with pytest.raises(FileNotFoundError, match=r"gone\.png: missing image"):
        read_image(tmp_path / "gone.png")
    with pytest.raises(FileNotFoundError, match="is a directory"):
        read_image(tmp_path)


# ---- uniform crops -----------------------------------------------------------------------------


def _jpeg(pixels: np.ndarray, quality: int = 75) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.mark.parametrize("value", [255, 128, 12, 0], ids=["white", "grey", "dark", "zero"])
def test_constant_crops_are_uniform_even_through_jpeg_and_sensor_noise(value):
    crop = np.full((96, 128, 3), value, np.uint8)
    assert float(pixel_spread(crop)) == 0.0 and bool(is_uniform(crop))
    noisy = np.clip(value + np.random.default_rng(value).normal(0, 3, crop.shape), 0, 255).astype(np.uint8)
    assert bool(is_uniform(_jpeg(noisy)))


def _low_contrast_object(contrast: float, base: float) -> np.ndarray:
    """A fixture car's silhouette, shaded like a lit surface, ``contrast`` levels over a ``base`` grey
    background with a faint texture, through JPEG."""
    view = {"azimuth": 30.0, "elevation": 10.0, "theta": 0.0, "distance": 40.0, "focal": 1.0, "px": 81.0,
            "py": 61.0, "viewport": 3000.0}  # fmt: skip
    mask = fixtures.silhouette(fixtures.cad_mesh("car")[0], view)
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w]
    shade = 0.5 + 0.5 * np.cos((xx - w / 2) / w * 3.0) * np.cos((yy - h / 2) / h * 2.0)
    grey = base + np.where(mask, contrast * shade, 0.0) + np.random.default_rng(0).normal(0, 1.0, (h, w))
    tint = np.array([1.0, 0.95, 0.9])
    return _jpeg(np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8), quality=85)


@pytest.mark.parametrize("contrast,base", [(40, 110), (16, 20), (16, 200)], ids=["mid", "dim", "bright"])
def test_real_low_contrast_object_crop_is_not_uniform(contrast, base):
    crop = _low_contrast_object(contrast, base)
    assert np.ptp(crop) < 80
    assert float(pixel_spread(crop)) > 1.5 * UNIFORM_PIXEL_SPREAD
    assert not bool(is_uniform(crop))


def test_uniform_image_beside_crop_padding_is_uniform_when_the_padding_is_left_out():
    crop = np.zeros((64, 96, 3), np.uint8)
    crop[:, 30:80] = 250  # a white image that does not fill its crop: zeros beside it
    valid = np.zeros((64, 96), bool)
    valid[:, 30:80] = True
    assert not bool(is_uniform(crop))
    assert bool(is_uniform(crop, valid)) and float(pixel_spread(crop, valid)) == 0.0
    assert float(pixel_spread(crop, np.zeros((64, 96), bool))) == 0.0


def test_pixel_spread_is_the_same_under_jit_and_vmap():
    crops = np.stack([_low_contrast_object(16, 20), np.full((120, 160, 3), 128, np.uint8)])
    one = np.array([float(pixel_spread(c)) for c in crops])
    batched = np.asarray(jax.jit(jax.vmap(pixel_spread))(jnp.asarray(crops)))
    np.testing.assert_allclose(batched, one, rtol=1e-5, atol=1e-5)
    assert list(np.asarray(jax.vmap(is_uniform)(crops))) == [False, True]


@pytest.mark.extended
def test_rendered_synthetic_car_at_low_contrast_is_not_uniform():
    from nemo_jax.data.synthetic import SyntheticOptions, generate

    options = SyntheticOptions(categories=("car",), train_per_category=1, render_batch=1, height=96, width=96)
    image = next(generate(options, "train"))["image"].astype(np.float64)
    dim = np.round((image - image.mean()) * 0.05 + 20).astype(np.uint8)  # about 13 levels of range
    assert np.ptp(dim) <= 16
    assert not bool(is_uniform(_jpeg(dim, quality=90)))
