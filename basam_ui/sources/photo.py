"""Photos: PNG, JPEG, TIFF, BMP, WebP and GIF files (or their bytes) read with Pillow, upright as
the camera meant it, as H x W x 3 uint8 RGB.

EXIF orientation is applied. Grayscale, palette and CMYK images become RGB; transparent pixels
are composited on white; 16-bit and float images are stretched from their own min..max to
0..255 (16-bit colour files through OpenCV, which keeps all their bits). An image over the
pixel limit is refused from its header, before anything is decoded.
"""

from __future__ import annotations

import struct
import threading
from typing import BinaryIO, Optional

import numpy as np
from PIL import Image, ImageOps

from .base import (
    DEFAULT_MAX_PIXELS, FileSource, ImageReadError, Region, Source, SourceKind, check_max_pixels, scaled_size,
)  # fmt: skip

# Only these decoders run: Pillow's others include ones that shell out (EPS -> Ghostscript).
# (Multi-picture camera JPEGs come through "JPEG" as Pillow's MPO images.)
SUPPORTED_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF")
EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".tif", ".tiff", ".bmp", ".dib", ".webp", ".gif"})
# leading bytes of those formats, for files whose name has no image extension
MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"II*\x00",
    b"MM\x00*",
    b"II+\x00",  # BigTIFF
    b"MM\x00+",
    b"BM",
    b"GIF87a",
    b"GIF89a",
)

# EXIF orientation tag value -> the transpose that makes the image upright (as ImageOps.exif_transpose)
ORIENTATION = 0x0112
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Pillow's decompression-bomb limit is a process global read inside Image.open; reads that
# change it for their duration take turns so they do not restore each other's value.
_PILLOW_LIMIT_LOCK = threading.Lock()


def magic(head: bytes) -> bool:
    """A photo's first bytes (for files whose name has no image extension)."""
    return head.startswith(MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


class PhotoSource(FileSource):
    """A photo file (or bytes, or a binary stream): the header is read on opening, the pixels
    by `read` (the whole image is decoded; a region is cut from it)."""

    kind = "photo"
    plain_file = True

    def __init__(self, source: Source, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.max_pixels = check_max_pixels(max_pixels)
        self.take(source)
        with self.stream() as fp, _unlimited():
            image = _open_header(fp, self.name)
            self.raw_size = image.size  # as stored, before EXIF orientation
            self.format = image.format
            try:  # reading the EXIF block may read past a damaged header
                self.orientation = _orientation(image)
            except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
                raise ImageReadError(f"{self.name}: cannot read the image header ({e})") from e

    @property
    def size(self) -> tuple[int, int]:
        width, height = self.raw_size
        return (height, width) if self.orientation in (5, 6, 7, 8) else (width, height)

    def read(self, region: Optional[Region] = None, scale: float = 1.0) -> np.ndarray:
        self.check()
        with self.stream() as fp, _PILLOW_LIMIT_LOCK:
            saved_limit = Image.MAX_IMAGE_PIXELS
            try:
                # Pillow re-checks while decoding (e.g. TIFF tile sizes): let it use our limit
                Image.MAX_IMAGE_PIXELS = self.max_pixels
                image = _open_header(fp, self.name)
                rgb = _decode(image, fp, self.name)
            finally:
                Image.MAX_IMAGE_PIXELS = saved_limit
        return cut(rgb, region, scale)

    def provenance(self) -> dict:
        return {"kind": self.kind, "format": self.format}


def cut(rgb: np.ndarray, region: Optional[Region], scale: float) -> np.ndarray:
    """`region` of a decoded image at `scale` (area interpolation when shrinking)."""
    if region is not None:
        r = region.clipped((rgb.shape[1], rgb.shape[0]))
        rgb = rgb[r.y : r.y + r.height, r.x : r.x + r.width]
    if scale == 1.0:
        return np.ascontiguousarray(rgb)
    import cv2

    width, height = scaled_size(rgb.shape[1], rgb.shape[0], scale)
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


class _unlimited:
    """Pillow's decompression-bomb guard off while a header is read: it would refuse big
    headers with a message about attacks before we can read the size; ours names the file,
    its size and the limit."""

    def __enter__(self) -> None:
        _PILLOW_LIMIT_LOCK.acquire()
        self.saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None

    def __exit__(self, *exc: object) -> None:
        Image.MAX_IMAGE_PIXELS = self.saved
        _PILLOW_LIMIT_LOCK.release()


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


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation from the header. A PNG's eXIf chunk may follow the pixel data,
    where Pillow would decode the whole image to find it: only one before the pixels counts."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return int(image.getexif().get(ORIENTATION, 1))


def _decode(image: Image.Image, fp: BinaryIO, name: str) -> np.ndarray:
    try:
        if _is_16bit_multichannel(image):
            # Pillow has no 16-bit RGB mode: it opens these as 8-bit RGB keeping only the high
            # byte, which turns a 12-bit scan nearly black. OpenCV reads the full values.
            fp.seek(0)
            rgb = _rgb8_from_opencv(fp.read(), name)
            transpose = _UPRIGHT.get(image.getexif().get(ORIENTATION, 1))
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
        gray = stretch_to_uint8(np.asarray(image), full_scale=1.0 if image.mode == "F" else 65535.0)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        return on_white(rgba[..., :3], rgba[..., 3])
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
    rgb = stretch_to_uint8(color, full_scale)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    if channels in (2, 4):
        alpha = (pixels[..., channels - 1].astype(np.float32) * (255.0 / full_scale) + 0.5).astype(np.uint8)
        return on_white(rgb, alpha)
    return rgb


def stretch_to_uint8(values: np.ndarray, full_scale: float) -> np.ndarray:
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


def on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite uint8 `rgb` over white with uint8 `alpha` (255 = opaque)."""
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    # integer blend in uint16: rgb*a + 255*(255-a) <= 255*255, so it cannot overflow
    a = alpha.astype(np.uint16)[..., None]
    out = (rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


PHOTO = SourceKind("photo", EXTENSIONS, magic, PhotoSource, streams=True)
