"""Files the canvas shows: a bounded-size display copy of the image, a lossless
full-resolution copy (written off the click path), and both masks packed into one small
PNG for the browser to draw. NumPy, OpenCV and Pillow only (no Gradio, no torch).
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np

JPEG_QUALITY = 90
# palette of the packed masks: entry v is (v, 0, 0) (the browser swaps in each view's own
# colours before decoding it)
MASK_PALETTE = [v if c == 0 else 0 for v in range(16) for c in range(3)]


def display_size(original_hw: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(h, w) of the display copy: the original scaled down so its long side is <= max_side."""
    height, width = original_hw
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """H x W x 3 uint8 -> a copy whose long side is <= max_side (area interpolation)."""
    import cv2

    h, w = display_size(image.shape[:2], max_side)
    if (h, w) == image.shape[:2]:
        return image.copy()
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def save_jpeg(image: np.ndarray, path: Path, quality: int = JPEG_QUALITY) -> Path:
    """Write an RGB array as a JPEG with full-resolution chroma (4:4:4); returns the path."""
    from PIL import Image

    Image.fromarray(image).save(path, "JPEG", quality=quality, subsampling=0)
    return path


def save_png_atomically(image: np.ndarray, path: Path) -> Path:
    """Write an RGB array as a PNG (lossless, fast compression) under a temporary name, then
    rename it, so a reader never sees a partial file; returns the path."""
    import cv2

    partial = path.with_name(path.name + ".part")
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"could not encode {path.name}")
    partial.write_bytes(encoded.tobytes())
    os.replace(partial, path)
    return path


def pack_masks(sam: np.ndarray, basam: np.ndarray) -> bytes:
    """Two H x W bool masks -> one 4-bit palette PNG at their size, pixel value
    sam | basam << 1 | sam_edge << 2 | basam_edge << 3 (an edge pixel: inside, with a
    4-neighbour outside; the browser draws them as the outline)."""
    import cv2
    from PIL import Image

    if sam.shape != basam.shape or sam.ndim != 2:
        raise ValueError(f"masks must be two H x W arrays of one shape, got {sam.shape} and {basam.shape}")
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    packed = np.zeros(sam.shape, np.uint8)
    for bit, mask in ((0, sam), (1, basam)):
        inside = mask.view(np.uint8) if mask.dtype == bool else (mask != 0).astype(np.uint8)
        edge = inside & ~cv2.erode(inside, cross, borderType=cv2.BORDER_REPLICATE)
        packed |= (inside << bit) | (edge << (bit + 2))
    image = Image.fromarray(packed, "P")
    image.putpalette(MASK_PALETTE)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", bits=4, compress_level=1)
    return buffer.getvalue()


def unpack_masks(png: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of `pack_masks`: (sam, basam) H x W bool."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        values = np.asarray(image)
    return (values & 1).astype(bool), (values & 2).astype(bool)


def data_url(png: bytes) -> str:
    """PNG bytes as a data: URL (sent inside the canvas's `masks` prop)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
