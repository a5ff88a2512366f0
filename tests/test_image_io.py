"""load_image against real files of every kind the app accepts, made here in tmp_path."""

from __future__ import annotations

import io
import resource
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from basam_ui.image_io import DEFAULT_MAX_PIXELS, ImageReadError, ImageTooLargeError, load_image

from photos import DATA as PHOTOS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG with a valid IHDR (8-bit RGB) claiming width×height, and no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def with_png_exif(png: bytes, orientation: int) -> bytes:
    """`png` with an eXIf chunk (placed right after IHDR) holding an EXIF orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = exif.tobytes()
    data = data[6:] if data.startswith(b"Exif\x00\x00") else data
    ihdr_end = 8 + 25  # signature, then IHDR: length, type, 13 bytes, CRC
    return png[:ihdr_end] + png_chunk(b"eXIf", data) + png[ihdr_end:]


def noise_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# --- orientation -------------------------------------------------------------------------

# where the stored image's top-left corner ends up after applying EXIF orientation 1..8
CORNER_AFTER = {1: "tl", 2: "tr", 3: "br", 4: "bl", 5: "tl", 6: "tr", 7: "br", 8: "bl"}


def corner_pixel(image: np.ndarray, corner: str, inset: int = 3) -> np.ndarray:
    h, w = image.shape[:2]
    row = inset if corner[0] == "t" else h - 1 - inset
    col = inset if corner[1] == "l" else w - 1 - inset
    return image[row, col]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg(tmp_path: Path, orientation: int) -> None:
    stored = np.zeros((24, 40, 3), np.uint8)
    stored[...] = (0, 0, 255)
    stored[:8, :8] = (255, 0, 0)  # red marker on the stored top-left corner (one JPEG block)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif)

    image = load_image(path)
    expected_shape = (40, 24, 3) if orientation >= 5 else (24, 40, 3)  # 5-8 swap width and height
    assert image.shape == expected_shape and image.dtype == np.uint8
    for corner in ("tl", "tr", "bl", "br"):
        r, g, b = (int(v) for v in corner_pixel(image, corner))
        if corner == CORNER_AFTER[orientation]:
            assert r > 200 and b < 60, (corner, r, g, b)
        else:
            assert b > 200 and r < 60, (corner, r, g, b)


# --- 16-bit ------------------------------------------------------------------------------


def gradient16(low: int, high: int, height: int = 8, width: int = 64) -> np.ndarray:
    row = np.linspace(low, high, width).round().astype(np.uint16)
    return np.tile(row, (height, 1))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_gray_scaled_by_its_real_range(tmp_path: Path, suffix: str) -> None:
    values = gradient16(0, 4095)  # a 12-bit scan in a 16-bit file
    path = tmp_path / f"gray16{suffix}"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")  # really stored as 16-bit

    image = load_image(path)
    assert image.shape == (8, 64, 3) and image.dtype == np.uint8
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 0] == image[..., 2]).all()
    assert image[0, 0, 0] == 0 and image[0, -1, 0] == 255  # 4095 -> 255, not 4095 / 257 = 15
    expected = np.round(values[0].astype(float) / 4095 * 255)
    assert np.abs(image[0, :, 0].astype(float) - expected).max() <= 1


def test_16bit_offset_range_is_stretched(tmp_path: Path) -> None:
    path = tmp_path / "offset16.png"
    Image.fromarray(gradient16(1000, 3000)).save(path)
    image = load_image(path)
    assert image[0, 0, 0] == 0 and image[0, -1, 0] == 255
    assert abs(int(image[0, 32, 0]) - round((1000 + 2000 * 32 / 63 - 1000) / 2000 * 255)) <= 1


def test_16bit_constant_image_does_not_divide_by_zero(tmp_path: Path) -> None:
    path = tmp_path / "flat16.png"
    Image.fromarray(np.full((5, 7), 65535, np.uint16)).save(path)
    with np.errstate(all="raise"):
        image = load_image(path)
    assert image.shape == (5, 7, 3)
    assert (image == 255).all()  # no range to stretch: full scale 65535 -> 255


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_rgb_keeps_all_bits_and_channel_order(tmp_path: Path, suffix: str) -> None:
    rgb = np.zeros((6, 10, 3), np.uint16)
    rgb[..., 0] = 4095  # red at the top of the data's range
    rgb[..., 2] = 2048  # blue half way
    rgb[:, 0] = 0  # a black column so the range starts at 0
    path = tmp_path / f"rgb16{suffix}"
    assert cv2.imwrite(str(path), rgb[..., ::-1])  # OpenCV writes BGR
    # Pillow alone would give 8-bit RGB from the high bytes only (4095 -> 15)
    assert Image.open(path).mode == "RGB"

    image = load_image(path)
    assert image.shape == (6, 10, 3) and image.dtype == np.uint8
    assert tuple(image[0, 5]) == (255, 0, 128)
    assert tuple(image[0, 0]) == (0, 0, 0)


def test_16bit_rgb_png_with_exif_orientation(tmp_path: Path) -> None:
    rgb = np.zeros((4, 10, 3), np.uint16)
    rgb[0, 0] = (4000, 0, 0)  # red marker top-left
    ok, encoded = cv2.imencode(".png", rgb[..., ::-1])
    assert ok
    path = tmp_path / "rgb16_rot.png"
    path.write_bytes(with_png_exif(encoded.tobytes(), 6))

    image = load_image(path)
    assert image.shape == (10, 4, 3)  # rotated 90° clockwise
    assert tuple(image[0, 3]) == (255, 0, 0)  # marker now top-right
    assert image[..., 0].sum() == 255


# --- colour modes ------------------------------------------------------------------------


def test_cmyk_jpeg(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (32, 16), (255, 0, 0, 0))  # cyan
    cmyk.paste((0, 0, 0, 255), (16, 0, 32, 16))  # right half black
    path = tmp_path / "cmyk.jpg"
    cmyk.save(path, quality=95)
    assert Image.open(path).mode == "CMYK"

    image = load_image(path)
    assert image.shape == (16, 32, 3)
    r, g, b = (int(v) for v in image[8, 4])
    assert r < 30 and g > 225 and b > 225  # cyan
    assert image[8, 24].max() < 30  # black


def test_rgba_transparent_pixels_become_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255  # opaque red ...
    rgba[0, 0, 3] = 0  # ... except one fully transparent pixel
    rgba[1, 1] = (0, 0, 0, 128)  # and one half-transparent black
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba).save(path)

    image = load_image(path)
    assert image.shape == (4, 6, 3)
    assert tuple(image[0, 0]) == (255, 255, 255)
    assert tuple(image[2, 2]) == (255, 0, 0)
    assert all(abs(int(v) - 127) <= 1 for v in image[1, 1])


def test_gray_alpha_png(tmp_path: Path) -> None:
    la = Image.new("LA", (3, 2), (40, 255))
    la.putpixel((2, 1), (40, 0))
    path = tmp_path / "la.png"
    la.save(path)
    image = load_image(path)
    assert tuple(image[0, 0]) == (40, 40, 40) and tuple(image[1, 2]) == (255, 255, 255)


def test_palette_png_with_transparency(tmp_path: Path) -> None:
    indices = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    palette_image = Image.frombytes("P", (3, 2), indices.tobytes())
    palette_image.putpalette([0, 0, 0, 0, 200, 0, 10, 20, 30] + [0] * (256 * 3 - 9))
    path = tmp_path / "palette.png"
    palette_image.save(path, transparency=0)  # index 0 is transparent
    assert Image.open(path).mode == "P"

    image = load_image(path)
    assert image.shape == (2, 3, 3)
    assert tuple(image[0, 0]) == (255, 255, 255) and tuple(image[1, 2]) == (255, 255, 255)
    assert tuple(image[0, 1]) == (0, 200, 0) and tuple(image[0, 2]) == (10, 20, 30)


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grayscale(tmp_path: Path, mode: str) -> None:
    gray = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (3, 1))
    source = Image.fromarray(gray).convert(mode)
    path = tmp_path / f"gray_{mode}.png"
    source.save(path)
    image = load_image(path)
    expected = np.asarray(source.convert("L"))
    assert image.shape == (3, 25, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], expected)
    if mode == "1":
        assert set(np.unique(image)) <= {0, 255}


@pytest.mark.parametrize("suffix,options", [(".bmp", {}), (".webp", {"lossless": True}), (".tif", {}), (".png", {})])
def test_lossless_round_trip(tmp_path: Path, suffix: str, options: dict) -> None:
    rgb = noise_rgb(17, 23)
    path = tmp_path / f"noise{suffix}"
    Image.fromarray(rgb).save(path, **options)
    np.testing.assert_array_equal(load_image(path), rgb)


def test_lossy_webp_and_jpeg_load_close(tmp_path: Path) -> None:
    smooth = np.zeros((32, 48, 3), np.uint8)
    smooth[..., 0] = np.linspace(0, 255, 48).astype(np.uint8)
    smooth[..., 1] = 90
    for suffix in (".webp", ".jpg"):
        path = tmp_path / f"smooth{suffix}"
        Image.fromarray(smooth).save(path, quality=95)
        image = load_image(path)
        assert image.shape == smooth.shape
        assert np.abs(image.astype(int) - smooth).mean() < 4


# --- sources -----------------------------------------------------------------------------


def test_bytes_and_file_object_sources(tmp_path: Path) -> None:
    rgb = noise_rgb(9, 11, seed=3)
    path = tmp_path / "src.png"
    Image.fromarray(rgb).save(path)
    data = path.read_bytes()
    np.testing.assert_array_equal(load_image(data), rgb)
    np.testing.assert_array_equal(load_image(io.BytesIO(data)), rgb)
    with open(path, "rb") as fp:
        np.testing.assert_array_equal(load_image(fp), rgb)
    np.testing.assert_array_equal(load_image(str(path)), rgb)


def test_real_photo_loads_with_its_size() -> None:
    path = PHOTOS / "corgi-2048x1365.jpg"
    image = load_image(path)
    assert image.shape == (1365, 2048, 3) and image.dtype == np.uint8
    assert image.std() > 10  # a photograph, not a blank


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file_is_refused(tmp_path: Path, suffix: str) -> None:
    full = tmp_path / f"full{suffix}"
    Image.fromarray(noise_rgb(64, 64)).save(full)
    cut = tmp_path / f"cut{suffix}"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])

    with pytest.raises(ImageReadError, match=f"cut{suffix}"):
        load_image(cut)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # the global is left alone


def test_text_file_named_png_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match="notes.png") as info:
        load_image(path)
    assert isinstance(info.value, ValueError)


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nope.png")


def test_huge_header_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(100_000, 100_000))
    assert path.stat().st_size < 100
    limit_before = Image.MAX_IMAGE_PIXELS
    peak_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as info:
        load_image(path)
    elapsed = time.perf_counter() - start

    message = str(info.value)
    assert "bomb.png" in message and "100000x100000" in message and f"{DEFAULT_MAX_PIXELS:,}" in message
    assert isinstance(info.value, ValueError)
    assert elapsed < 1.0  # decoding 10^10 pixels would take minutes (or fail allocating 30 GB)
    peak_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kb) / 1024
    assert peak_growth_mb < 50
    assert Image.MAX_IMAGE_PIXELS == limit_before  # Pillow's own guard is restored


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.fromarray(noise_rgb(100, 120)).save(path)
    with pytest.raises(ImageTooLargeError, match="120x100"):
        load_image(path, max_pixels=11_999)
    assert load_image(path, max_pixels=12_000).shape == (100, 120, 3)
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(path, max_pixels=0)
