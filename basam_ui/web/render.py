"""Pictures for the app: a bounded-size display copy of the image, masks overlaid on it, and
the SAM / BA-SAM difference view. NumPy and OpenCV only (no Gradio, no torch).

Masks arrive at the original resolution; everything drawn here is at the display size
(long side <= `max_side`), so a 6000 px image costs the same per click as a 1600 px one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

RGB = tuple[int, int, int]
SAM_COLOR: RGB = (30, 136, 229)  # blue
BASAM_COLOR: RGB = (255, 143, 0)  # orange
BOTH_COLOR: RGB = (245, 245, 245)  # near white: both masks agree
POSITIVE_COLOR: RGB = (34, 197, 94)
NEGATIVE_COLOR: RGB = (239, 68, 68)
BOX_COLOR: RGB = (255, 200, 0)
MASK_ALPHA = 0.45
JPEG_QUALITY = 90


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


def mask_coverage(mask: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    """Coverage (uint8, 0..255) of each display pixel by a full-resolution bool mask."""
    import cv2

    cover = mask.astype(np.uint8) * 255
    if cover.shape != tuple(shape_hw):
        cover = cv2.resize(cover, (shape_hw[1], shape_hw[0]), interpolation=cv2.INTER_AREA)
    return cover


def overlay(
    display: np.ndarray,
    cover: Optional[np.ndarray],
    color: RGB,
    points: Sequence[tuple[float, float, int]] = (),
    box: Optional[Sequence[float]] = None,
    original_hw: Optional[tuple[int, int]] = None,
) -> np.ndarray:
    """The display image with a mask (its `mask_coverage`, or None) filled in `color` with
    its outline, and the prompts (original-pixel coordinates; `original_hw` is the
    original size) drawn on top."""
    import cv2

    out = display.copy()
    if cover is not None:
        x, y, w, h = cv2.boundingRect(cover)  # blend only where the mask is
        if w and h:
            part = np.s_[y : y + h, x : x + w]
            alpha = cover[part].astype(np.float32) * (MASK_ALPHA / 255.0)
            base = display[part].astype(np.float32)
            out[part] = cv2.convertScaleAbs(base + (np.array(color, np.float32) - base) * alpha[..., None])
        # the outline: inside pixels next to an outside one (a morphological gradient costs
        # the same for any mask, where tracing contours of a ragged mask took 100+ ms)
        inside = (cover >= 128).astype(np.uint8)
        width = max(1, max(display.shape[:2]) // 800)
        edge = inside > cv2.erode(inside, np.ones((2 * width + 1, 2 * width + 1), np.uint8))
        out[edge] = color
    draw_prompts(out, points, box, original_hw or display.shape[:2])
    return out


def draw_prompts(
    image: np.ndarray,
    points: Sequence[tuple[float, float, int]],
    box: Optional[Sequence[float]],
    original_hw: tuple[int, int],
) -> None:
    """Draw points (green positive, red negative) and the box in place, mapping original
    pixel coordinates to the image's size."""
    import cv2

    sy = image.shape[0] / original_hw[0]
    sx = image.shape[1] / original_hw[1]
    radius = max(4, max(image.shape[:2]) // 110)
    if box is not None:
        x0, y0, x1, y1 = box
        cv2.rectangle(
            image, (round(x0 * sx), round(y0 * sy)), (round(x1 * sx), round(y1 * sy)), BOX_COLOR,
            thickness=max(2, radius // 3), lineType=cv2.LINE_AA,
        )
    for x, y, label in points:
        centre = (round(x * sx), round(y * sy))
        cv2.circle(image, centre, radius + 2, (255, 255, 255), thickness=-1, lineType=cv2.LINE_AA)
        cv2.circle(image, centre, radius, POSITIVE_COLOR if label else NEGATIVE_COLOR, thickness=-1, lineType=cv2.LINE_AA)


def difference(display: np.ndarray, sam_cover: np.ndarray, basam_cover: np.ndarray) -> np.ndarray:
    """Where two masks (their `mask_coverage`) differ, on a dimmed grey copy of the image:
    pixels only in SAM in SAM_COLOR, only in BA-SAM in BASAM_COLOR, in both a light
    BOTH_COLOR veil; a display pixel counts as in a mask when the mask covers half of it."""
    import cv2

    in_sam = sam_cover >= 128
    in_basam = basam_cover >= 128
    grey = cv2.convertScaleAbs(cv2.cvtColor(display, cv2.COLOR_RGB2GRAY), alpha=0.35)
    out = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    out[in_sam & ~in_basam] = SAM_COLOR
    out[in_basam & ~in_sam] = BASAM_COLOR
    both = in_sam & in_basam
    # agreement: a light veil that keeps the image's texture visible underneath
    out[both] = (out[both] * 0.4 + np.array(BOTH_COLOR, np.float32) * 0.6).astype(np.uint8)
    return out


def save_jpeg(image: np.ndarray, path: Path, quality: int = JPEG_QUALITY) -> Path:
    """Write an RGB array as a JPEG with full-resolution chroma (4:4:4, so coloured mask
    edges stay sharp); returns the path."""
    from PIL import Image

    Image.fromarray(image).save(path, "JPEG", quality=quality, subsampling=0)
    return path


def save_png(image: np.ndarray, path: Path) -> Path:
    """Write an RGB array as a PNG with fast compression (lossless); returns the path."""
    from PIL import Image

    Image.fromarray(image).save(path, "PNG", compress_level=1)
    return path
