"""Reading images for segmentation: a PNG, JPEG, TIFF, BMP or WebP file (or its bytes) in,
an H×W×3 uint8 RGB array out, upright as the camera meant it."""

from __future__ import annotations

import io
import os
import struct
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, Union

import numpy as np
from PIL import Image, ImageOps

DEFAULT_MAX_PIXELS = 150_000_000

# Only these decoders run: Pillow's others include ones that shell out (EPS -> Ghostscript).
# (Multi-picture camera JPEGs come through "JPEG" as Pillow's MPO images.)
SUPPORTED_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF")

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

# EXIF orientation tag value -> the transpose that makes the image upright (as ImageOps.exif_transpose)
_ORIENTATION = 0x0112
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Pillow's decompression-bomb limit is a process global read inside Image.open; loads that
# change it for their duration take turns so they do not restore each other's value.
_PILLOW_LIMIT_LOCK = threading.Lock()


class ImageReadError(ValueError):
    """The source is not a readable image: corrupt, truncated, or of an unsupported kind."""


class ImageTooLargeError(ValueError):
    """The image has more pixels than the allowed limit (found from its header, before decoding)."""


def load_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode `source` (a path, the file's bytes, or a binary file object) to H×W×3 uint8 RGB.

    EXIF orientation is applied. Grayscale, palette and CMYK images become RGB; transparent
    pixels are composited on white; 16-bit and float images are stretched from their own
    min..max to 0..255. Raises ImageTooLargeError when width×height exceeds `max_pixels`
    (checked from the header, nothing is decoded) and ImageReadError for anything that is not
    a readable image. A missing file raises FileNotFoundError as usual.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    name = _source_name(source)
    with _binary_stream(source) as fp, _PILLOW_LIMIT_LOCK:
        saved_limit = Image.MAX_IMAGE_PIXELS
        try:
            # Pillow's guard would refuse big headers before we can read the size, with a
            # message about attacks; ours below names the file, its size and the limit.
            Image.MAX_IMAGE_PIXELS = None
            image = _open_header(fp, name)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    f"{name}: image is {width}x{height} = {width * height:,} pixels, over the limit of "
                    f"{max_pixels:,} pixels"
                )
            # Pillow re-checks while decoding (e.g. TIFF tile sizes): let it use our limit.
            Image.MAX_IMAGE_PIXELS = max_pixels
            return _decode(image, fp, name)
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit


def _source_name(source: ImageSource) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<image bytes>"
    if isinstance(source, (str, os.PathLike)):
        return str(Path(source))
    return str(getattr(source, "name", "<image stream>"))


@contextmanager
def _binary_stream(source: ImageSource) -> Iterator[BinaryIO]:
    """A seekable binary stream over `source`; files opened here are closed afterwards."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fp:
            yield fp
    elif hasattr(source, "read"):
        yield source if source.seekable() else io.BytesIO(source.read())
    else:
        raise TypeError(f"expected a path, bytes or a binary file object, got {type(source).__name__}")


def _open_header(fp: BinaryIO, name: str) -> Image.Image:
    """Identify the image and read its header (Image.open decodes no pixels)."""
    try:
        return Image.open(fp, formats=SUPPORTED_FORMATS)
    except Image.UnidentifiedImageError as e:
        raise ImageReadError(
            f"{name}: not a readable image (supported: {', '.join(SUPPORTED_FORMATS)})"
        ) from e
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise ImageReadError(f"{name}: cannot read the image header ({e})") from e


def _decode(image: Image.Image, fp: BinaryIO, name: str) -> np.ndarray:
    try:
        if _is_16bit_multichannel(image):
            # Pillow has no 16-bit RGB mode: it opens these as 8-bit RGB keeping only the high
            # byte, which turns a 12-bit scan nearly black. OpenCV reads the full values.
            fp.seek(0)
            rgb = _rgb8_from_opencv(fp.read(), name)
            transpose = _UPRIGHT.get(image.getexif().get(_ORIENTATION, 1))
            return np.array(Image.fromarray(rgb).transpose(transpose)) if transpose is not None else rgb
        return _to_rgb8(ImageOps.exif_transpose(image))
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError) as e:
        raise ImageReadError(f"{name}: corrupt or truncated image ({e})") from e


def _is_16bit_multichannel(image: Image.Image) -> bool:
    """True for 16-bit-per-channel RGB(A)/LA files, which Pillow would truncate to 8 bits."""
    if image.mode not in ("RGB", "RGBA", "LA"):
        return False
    for tile in image.tile:
        rawmode = tile.args if isinstance(tile.args, str) else (tile.args or ("",))[0]
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def _to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow mode to H×W×3 uint8 RGB."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        gray = _stretch_to_uint8(np.asarray(image), full_scale=1.0 if image.mode == "F" else 65535.0)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        return _on_white(rgba[..., :3], rgba[..., 3])
    return np.array(image.convert("RGB"))


def _rgb8_from_opencv(data: bytes, name: str) -> np.ndarray:
    import cv2  # only needed for 16-bit colour files

    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ImageReadError(f"{name}: corrupt or truncated 16-bit image")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    channels = pixels.shape[2]
    full_scale = float(np.iinfo(pixels.dtype).max) if pixels.dtype.kind in "ui" else 1.0
    color = pixels[..., 2::-1] if channels >= 3 else pixels[..., :1]  # BGR -> RGB
    rgb = _stretch_to_uint8(color, full_scale)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    if channels in (2, 4):
        alpha = (pixels[..., channels - 1].astype(np.float32) * (255.0 / full_scale) + 0.5).astype(np.uint8)
        return _on_white(rgb, alpha)
    return rgb


def _stretch_to_uint8(values: np.ndarray, full_scale: float) -> np.ndarray:
    """Map the data's own min..max onto 0..255 (scans often fill only 10-12 of 16 bits).

    A constant image has no range: it maps by `full_scale` instead (65535 -> 255 for 16 bits).
    """
    data = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(data.min()), float(data.max())
    if high > low:
        data -= low
        data *= 255.0 / (high - low)
    else:
        data[...] = np.clip(low / full_scale, 0.0, 1.0) * 255.0
    data += 0.5
    return data.astype(np.uint8)


def _on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite uint8 `rgb` over white with uint8 `alpha` (255 = opaque)."""
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    # integer blend in uint16: rgb*a + 255*(255-a) <= 255*255, so it cannot overflow
    a = alpha.astype(np.uint16)[..., None]
    out = (rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)
