"""The DICOM image source against files made here (tests/dicoms.py): windowing checked against an
independent computation of PS3.3 C.11.2.1.2 / C.11.2.1.3, colour conversions, frames, windows,
refusals, detection, and that nothing returned carries the fake patient's data."""

from __future__ import annotations

import io
import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

import dicoms
from basam_ui.image_io import load_image
from basam_ui.sources import (
    ImageReadError, ImageTooLargeError, Region, Window, frame_count, image_size, kind_of, looks_like_image, open_source,
)  # fmt: skip
from basam_ui.sources.dicom import DicomSource
from dicoms import LEAKS


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, dicoms.Made]:
    folder = tmp_path_factory.mktemp("dicoms")
    return {
        "mammogram": dicoms.mammogram(folder),
        "radiograph": dicoms.radiograph(folder),
        "frames": dicoms.multiframe(folder),
        "jpeg": dicoms.jpeg_photo(folder),
        "jpeg2000": dicoms.jpeg2000_photo(folder),
        "ybr": dicoms.ybr_photo(folder),
        "palette": dicoms.palette_image(folder),
    }


# --- the standard's windowing, written out independently ----------------------------------


def linear(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR) onto 0..255, piece by piece as the standard states it."""
    x = x.astype(np.float64)
    low, high = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    middle = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
    return np.where(x <= low, 0.0, np.where(x > high, 255.0, middle))


def linear_exact(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """C.11.2.1.3.2 (LINEAR_EXACT)."""
    x = x.astype(np.float64)
    middle = ((x - c) / w + 0.5) * 255
    return np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 255.0, middle))


def sigmoid(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """C.11.2.1.3.1 (SIGMOID)."""
    return 255.0 / (1 + np.exp(-4 * (x.astype(np.float64) - c) / w))


def grey(levels: np.ndarray) -> np.ndarray:
    return np.round(levels).astype(np.int64)


def assert_grey(rgb: np.ndarray, expected: np.ndarray) -> None:
    """`rgb` is grey (three equal channels) and within one level of `expected` everywhere."""
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()
    difference = np.abs(rgb[..., 0].astype(np.int64) - grey(expected))
    assert difference.max() <= 1, f"{int((difference > 1).sum())} pixels off by more than one level"


def mammogram_modality(stored: np.ndarray) -> np.ndarray:
    return stored.astype(np.float64) * dicoms.MAMMOGRAM_SLOPE + dicoms.MAMMOGRAM_INTERCEPT


# --- monochrome: modality LUT, windows, MONOCHROME1 ------------------------------------------


def test_mammogram_opens_under_its_first_window_inverted(made) -> None:
    m = made["mammogram"]
    c, w, name = dicoms.MAMMOGRAM_WINDOWS[0]
    with open_source(m.path) as source:
        assert isinstance(source, DicomSource) and source.size == (256, 320)
        assert source.window.name == name
        rgb = source.read()
    expected = 255 - linear(mammogram_modality(m.pixels), c, w)  # MONOCHROME1: inverted after windowing
    assert_grey(rgb, expected)
    assert 30 < rgb.mean() < 225 and rgb.std() > 10  # a real picture, not a flat field
    np.testing.assert_array_equal(load_image(m.path), rgb)  # load_image: the default window


def test_mammogram_windows_are_listed_and_selectable(made) -> None:
    m = made["mammogram"]
    with open_source(m.path) as source:
        names = [w.name for w in source.windows]
        assert names == ["STANDARD", "HARDER", "auto", "full range"]
        harder = source.windows[1]
        assert harder.key() == "linear:24000:16000" and "HARDER" in harder.label()
        by_object = source.with_window(harder).read()
    c, w, _ = dicoms.MAMMOGRAM_WINDOWS[1]
    assert_grey(by_object, 255 - linear(mammogram_modality(m.pixels), c, w))
    with open_source(m.path, window="linear:24000:16000") as by_key:
        assert by_key.window.name == "HARDER"  # the key finds the preset again, name and all
        np.testing.assert_array_equal(by_key.read(), by_object)
    with DicomSource(m.path, window=Window(24000, 16000)) as typed:
        np.testing.assert_array_equal(typed.read(), by_object)
    with open_source(m.path) as first:
        assert np.abs(first.read().astype(int) - by_object.astype(int)).mean() > 5  # the windows differ


def test_typed_window_and_full_range(made) -> None:
    m = made["mammogram"]
    modality = mammogram_modality(m.pixels)
    with open_source(m.path, window=Window(15000, 5000, name="typed")) as source:
        assert_grey(source.read(), 255 - linear(modality, 15000, 5000))
    low, high = sorted((0 * 2.0 - 1000, 65535 * 2.0 - 1000))  # every 16-bit value, rescaled
    with open_source(m.path, window="full range") as source:
        assert_grey(source.read(), 255 - linear_exact(modality, (low + high) / 2, high - low))
        assert source.provenance()["window"]["key"] == "full"


def test_radiograph_without_window_gets_the_automatic_one(made) -> None:
    m = made["radiograph"]
    with open_source(m.path) as source:
        assert [w.name for w in source.windows] == ["auto", "full range"]
        assert source.provenance()["window"]["center"] is None  # resolved only by reading
        rgb = source.read()
        recorded = source.provenance()["window"]
    low, high = np.percentile(m.pixels.astype(np.float64), [0.5, 99.5])
    assert m.pixels.min() < low and high < m.pixels.max()  # the outliers lie outside the window
    assert_grey(rgb, linear_exact(m.pixels, (low + high) / 2, high - low))
    assert recorded["key"] == "auto:0.5-99.5"
    assert recorded["center"] == pytest.approx((low + high) / 2, abs=0.5)
    assert recorded["width"] == pytest.approx(high - low, abs=1)


@pytest.mark.parametrize("function", ["LINEAR_EXACT", "SIGMOID"])
def test_voi_lut_function_from_the_file(tmp_path: Path, function: str) -> None:
    m = dicoms.radiograph(tmp_path, WindowCenter=1800, WindowWidth=1200, VOILUTFunction=function)
    with open_source(m.path) as source:
        assert source.window.function == function and source.window.key() == f"{function.lower()}:1800:1200"
        rgb = source.read()
    formula = linear_exact if function == "LINEAR_EXACT" else sigmoid
    assert_grey(rgb, formula(m.pixels, 1800, 1200))


def test_voi_lut_sequence(tmp_path: Path) -> None:
    table = (np.sqrt(np.arange(3000) / 2999) * 65535).astype(np.uint16)  # entries for values 500..3499
    item = dicoms.voi_lut_item(500, table, 16, "SQRT")
    m = dicoms.radiograph(tmp_path, VOILUTSequence=Sequence([item]))
    with open_source(m.path) as source:
        assert source.window.name == "SQRT" and source.window.key() == "voi-lut:0"
        rgb = source.read()
    index = np.clip(m.pixels.astype(np.int64) - 500, 0, len(table) - 1)
    assert_grey(rgb, table[index] / 65535 * 255)


def test_window_width_one_is_a_threshold(tmp_path: Path) -> None:
    m = dicoms.radiograph(tmp_path, WindowCenter=2000, WindowWidth=1)
    with open_source(m.path) as source:
        rgb = source.read()
    assert_grey(rgb, np.where(m.pixels > 1999.5, 255.0, 0.0))


def test_window_keys_round_trip_and_bad_windows_are_refused() -> None:
    for window in (Window(40, 400), Window(-600.5, 1500, "SIGMOID"), Window.auto(), Window.full_range()):
        assert Window.parse(window.key()).key() == window.key()
    assert Window.parse("auto") == Window.auto() and Window.parse("full range") == Window.full_range()
    assert Window(40, 400, name="brain").key() == Window(40, 400).key()  # names do not change pixels
    with pytest.raises(ValueError, match="width"):
        Window(40, 0.5)  # LINEAR needs a width of at least 1
    with pytest.raises(ValueError, match="not a window"):
        Window.parse("bright please")
    with pytest.raises(ValueError, match="function"):
        Window(40, 400, "CUBIC")


def test_enhanced_ct_frames_read_their_functional_groups(tmp_path: Path) -> None:
    m = dicoms.enhanced_ct(tmp_path)
    assert frame_count(m.path) == 3
    with open_source(m.path, frame=2) as source:
        assert source.window.key() == "linear:40:400" and source.window.name == "SOFT TISSUE"
        assert source.provenance()["pixel_spacing_mm"] == [0.8, 0.8]  # from the shared Pixel Measures
        assert source.provenance()["pixel_spacing_source"] == "PixelSpacing"
        assert_grey(source.read(), linear(m.pixels[2] - 1024.0, 40, 400))  # rescale from the functional groups


def test_functional_groups_give_each_frame_its_own_rescale_and_window(tmp_path: Path, made) -> None:
    ds = pydicom.dcmread(made["frames"].path)
    shared = Dataset()
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 2, -100, "US"
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for k in range(3):
        voi, group = Dataset(), Dataset()
        voi.WindowCenter, voi.WindowWidth = 3000 + 1000 * k, 4000
        group.FrameVOILUTSequence = Sequence([voi])
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    path = tmp_path / "enhanced.dcm"
    ds.save_as(path)
    for k in range(3):
        with open_source(path, frame=k) as source:
            assert source.window.key() == f"linear:{3000 + 1000 * k}:4000"
            assert_grey(source.read(), linear(made["frames"].pixels[k] * 2.0 - 100, 3000 + 1000 * k, 4000))


# --- colour -------------------------------------------------------------------------------


def test_uncompressed_ybr_full_becomes_rgb(made) -> None:
    m = made["ybr"]
    with open_source(m.path) as source:
        assert source.windows == () and source.window is None
        rgb = source.read()
    assert np.abs(rgb.astype(int) - m.pixels.astype(int)).max() <= 2  # rounding of the stored YBR


def ybr_full_to_rgb(ybr: np.ndarray) -> np.ndarray:
    """PS3.3 C.7.6.3.1.2's inverse: YBR_FULL -> RGB (float)."""
    y, cb, cr = (ybr[..., i].astype(np.float64) for i in range(3))
    r, g, b = y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), y + 1.772 * (cb - 128)
    return np.stack([r, g, b], axis=2)


def test_uncompressed_ybr_full_422_becomes_rgb(tmp_path: Path) -> None:
    m = dicoms.ybr422_photo(tmp_path)
    expected = np.clip(ybr_full_to_rgb(m.pixels), 0, 255)
    assert np.abs(load_image(m.path).astype(int) - expected).max() <= 1.5


@pytest.mark.parametrize("case, tolerance", [("jpeg", 3), ("jpeg2000", 2)])
def test_compressed_colour_matches_an_independent_decoder(made, case: str, tolerance: int) -> None:
    m = made[case]  # m.pixels: Pillow's decode of the very bytes encapsulated
    rgb = load_image(m.path)
    difference = np.abs(rgb.astype(int) - m.pixels.astype(int))
    assert difference.max() <= tolerance and difference.mean() < 0.5


def test_palette_colour_goes_through_its_tables(made) -> None:
    m = made["palette"]
    expected = np.stack([table[m.pixels] / 65535 * 255 for table in dicoms.palette_tables()], axis=2)
    assert np.abs(load_image(m.path).astype(int) - np.round(expected)).max() <= 1


def test_colour_images_take_no_window(made) -> None:
    with pytest.raises(ValueError, match="no display window"):
        open_source(made["jpeg"].path, window="auto")
    with pytest.raises(ValueError, match="no display window"):
        open_source(dicoms_photo_png(made), window="auto")


def dicoms_photo_png(made) -> Path:
    from PIL import Image

    path = made["jpeg"].path.with_name("photo.png")
    Image.fromarray(made["jpeg"].pixels).save(path)
    return path


def test_lossless_jpeg2000_monochrome_reads_the_same_values(tmp_path: Path, made) -> None:
    ds = pydicom.dcmread(made["radiograph"].path)
    ds.compress(uid.JPEG2000Lossless, generate_instance_uid=False)
    path = tmp_path / "j2k.dcm"
    ds.save_as(path)
    np.testing.assert_array_equal(load_image(path), load_image(made["radiograph"].path))


def test_every_listed_transfer_syntax_has_a_decoder() -> None:
    from pydicom.pixels import get_decoder

    syntaxes = (
        uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1, uid.JPEGLSLossless,
        uid.JPEGLSNearLossless, uid.JPEG2000Lossless, uid.JPEG2000, uid.HTJ2KLossless, uid.HTJ2K, uid.RLELossless,
    )  # fmt: skip
    missing = [ts.name for ts in syntaxes if not get_decoder(ts).is_available]
    assert not missing, f"no decoder plugin installed for {missing}"


# --- frames -------------------------------------------------------------------------------


def test_frames_are_items(made) -> None:
    m = made["frames"]
    assert frame_count(m.path) == 3 and frame_count(made["mammogram"].path) == 1
    c, w = dicoms.FRAME_WINDOW
    reads, fingerprints = [], set()
    for k in range(3):
        with open_source(m.path, frame=k) as source:
            assert source.name.endswith(f"[frame {k + 1} of 3]")
            assert source.provenance()["frame"] == k + 1 and source.provenance()["frames"] == 3
            reads.append(source.read())
            fingerprints.add(source.fingerprint())
        assert_grey(reads[-1], linear(m.pixels[k], c, w))
    assert len(fingerprints) == 3 and not np.array_equal(reads[0], reads[1])
    with open_source(made["mammogram"].path) as single:
        assert len(single.fingerprint()) == 64  # a single-frame file: the file's SHA-256 alone
    with pytest.raises(ImageReadError, match="has 3 frame.*no frame 4"):
        open_source(m.path, frame=3)
    with pytest.raises(ImageReadError, match="one frame"):
        open_source(dicoms_photo_png(made), frame=1)


# --- regions, limits, detection -------------------------------------------------------------


def test_region_and_scale(made) -> None:
    with open_source(made["mammogram"].path) as source:
        whole = source.read()
        part = source.read(Region(10, 20, 100, 50))
        half = source.read(scale=0.5)
    np.testing.assert_array_equal(part, whole[20:70, 10:110])
    assert half.shape == (160, 128, 3)


def test_pixel_limit(made) -> None:
    with open_source(made["mammogram"].path, max_pixels=1000) as source:  # the header opens
        with pytest.raises(ImageTooLargeError, match="over the limit"):
            source.read()


def test_detection_by_preamble_extension_bytes_and_stream(tmp_path: Path, made) -> None:
    path = made["mammogram"].path
    bare = tmp_path / "IMG00001"  # what scanners and PACS exports often write: no extension
    shutil.copy(path, bare)
    odd = tmp_path / "scan.png"  # a misleading extension loses to the preamble
    shutil.copy(path, odd)
    reference = load_image(path)
    for source in (bare, odd, path.read_bytes(), io.BytesIO(path.read_bytes())):
        assert kind_of(source).name == "dicom"
        np.testing.assert_array_equal(load_image(source), reference)
    assert looks_like_image(bare) and image_size(bare) == (256, 320)
    with open_source(path.read_bytes()) as from_bytes, open_source(path) as from_file:
        assert from_bytes.fingerprint() == from_file.fingerprint()
    named = tmp_path / "notes.dicom"
    named.write_bytes(b"not a dicom file")
    assert kind_of(named).name == "dicom"  # claimed by its extension, then refused with a reason
    with pytest.raises(ImageReadError, match="notes.dicom"):
        open_source(named)


# --- refusals -----------------------------------------------------------------------------


def refusal(path_or_bytes, **options) -> str:
    with pytest.raises(ImageReadError) as caught:
        with open_source(path_or_bytes, **options) as source:
            source.read()
    message = str(caught.value)
    assert "\n" not in message and message.count(". ") == 0, f"not one sentence: {message!r}"
    return message


def test_refusals_say_why_in_one_sentence(tmp_path: Path, made) -> None:
    assert "no pixel data (a Basic Text SR Storage)" in refusal(dicoms.structured_report(tmp_path))
    assert "a whole-slide image" in refusal(dicoms.whole_slide(tmp_path))
    assert "MPEG2 Main Profile / Main Level cannot be decoded" in refusal(dicoms.unsupported_syntax(tmp_path))
    assert "truncated" in refusal(dicoms.truncated(made["mammogram"].path, tmp_path, 0.6))  # native pixels cut
    assert "truncated" in refusal(dicoms.truncated(made["jpeg"].path, tmp_path, 0.7))  # a JPEG fragment cut
    last_frame_cut = dicoms.truncated(made["frames"].path, tmp_path, 0.9)  # RLE: opening frame 1 still checks
    assert "truncated" in refusal(last_frame_cut, frame=0)
    assert "not a readable DICOM file" in refusal(dicoms.truncated(made["mammogram"].path, tmp_path, 0.002))
    header_cut = dicoms.truncated(made["mammogram"].path, tmp_path, 0.005, name="header-cut.dcm")
    assert "header-cut.dcm: the file is truncated" in refusal(header_cut)


def test_a_segmentation_is_not_an_image(tmp_path: Path, made) -> None:
    from basam_ui.project.dicom_seg import SegObject, write_segmentation

    mask = np.zeros((320, 256), bool)
    mask[10:40, 10:40] = True
    seg = write_segmentation(made["mammogram"].path, [SegObject("mass", mask, (255, 0, 0))], tmp_path / "seg.dcm")
    assert "a DICOM Segmentation" in refusal(seg)


# --- no patient data in anything returned ----------------------------------------------------


def everything_said(path: Path, **options) -> list[str]:
    """Every text a caller can get from opening and reading `path`: name, repr, provenance,
    windows, fingerprint, errors."""
    said = []
    try:
        with open_source(path, **options) as source:
            source.read()
            said += [source.name, repr(source), json.dumps(source.provenance()), repr(source.provenance())]
            said += [repr(source.windows), repr(source.window), str(source.size), source.fingerprint()]
            said += [w.label() + w.key() + repr(w.record()) for w in source.windows]
    except (ImageReadError, ValueError) as e:
        said += [str(e), repr(e)]
    return said


def test_nothing_returned_carries_patient_data(tmp_path: Path, made, caplog) -> None:
    paths = [m.path for m in made.values()]
    paths += [dicoms.structured_report(tmp_path), dicoms.whole_slide(tmp_path), dicoms.unsupported_syntax(tmp_path)]
    paths += [dicoms.truncated(made["mammogram"].path, tmp_path, 0.6)]
    caplog.set_level(logging.DEBUG)
    said = []
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        for path in paths:
            said += everything_said(path)
        said += everything_said(made["frames"].path, frame=2)
        said += everything_said(made["mammogram"].path, window="auto")
    said += [str(w.message) for w in warned] + [r.getMessage() for r in caplog.records]
    text = "\n".join(said)
    assert "STANDARD" in text and "Digital Mammography" in text  # the texts were gathered
    leaked = [value for value in LEAKS if value.lower() in text.lower()]
    assert not leaked, f"patient data in what the source returned: {leaked}"
    # and the files do carry them, so the check above could fail
    assert str(pydicom.dcmread(made["mammogram"].path).PatientID) == dicoms.PATIENT["PatientID"]
