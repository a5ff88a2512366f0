"""Reading a region of a multi-resolution image (a pyramid of levels) at any scale, in bounded
pieces: the level that fits the scale is read chunk by chunk (a few thousand level pixels a
side each), shrunk and resampled into the output, so that no read holds more than one chunk of
level pixels besides the output itself.

Geometry: output pixel (u, v) of a read of level-0 region (x, y, w, h) at output size
(ow, oh) covers level-0 [x + u * w/ow, x + (u + 1) * w/ow) (and likewise in y); the value is
sampled at that square's centre. A level with downsample `ds` has its pixel i covering level-0
[i * ds, (i + 1) * ds). When the level pixels per output pixel are >= 2, whole blocks of k x k
level pixels are first averaged (an exact area shrink), then bilinear interpolation maps the
rest; at 1:1 with aligned coordinates the level pixels are copied unchanged.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from .base import Region

CHUNK_LEVEL_PIXELS = 4096  # level pixels a side read at once (4096^2 RGBA = 64 MiB)
MIN_CHUNK = 64  # output pixels a side of a chunk, at least
EPS = 1e-6

# read_level(level, (x0, y0) in level-0 pixels, (width, height) in level pixels) -> H x W x 3 uint8
LevelReader = Callable[[int, tuple[int, int], tuple[int, int]], np.ndarray]


def read_from_pyramid(
    read_level: LevelReader,
    level_dimensions: Sequence[tuple[int, int]],
    level_downsamples: Sequence[float],
    level: int,
    region: Region,
    out_size: tuple[int, int],
) -> np.ndarray:
    """`region` (level-0 pixels, inside the image) resampled to `out_size` from `level`.

    Arguments:
      read_level: reads a rectangle of one level (called with rectangles inside the level).
      level_dimensions, level_downsamples: the pyramid, as OpenSlide gives them.
      level: the level to read (its downsample should be at most the read's).
      region: the level-0 rectangle to read.
      out_size: (width, height) of the result.

    Returns:
      out_size[1] x out_size[0] x 3 uint8 RGB.
    """
    import cv2

    out_w, out_h = out_size
    level_w, level_h = level_dimensions[level]
    ds = float(level_downsamples[level])
    # level pixels per output pixel, per axis, and the whole-block shrink k applied first
    per_x = region.width / out_w / ds
    per_y = region.height / out_h / ds
    k = max(1, int(min(per_x, per_y) + EPS))
    # output pixel u's centre in level coordinates: start + u * step (pixel i spans [i, i+1))
    step_x, step_y = per_x, per_y
    start_x = (region.x + 0.5 * region.width / out_w) / ds
    start_y = (region.y + 0.5 * region.height / out_h) / ds
    grid_x, grid_y = math.floor(region.x / ds), math.floor(region.y / ds)  # where k-blocks start
    chunk = max(MIN_CHUNK, int(CHUNK_LEVEL_PIXELS / max(per_x, per_y)))
    out = np.empty((out_h, out_w, 3), np.uint8)
    for v0 in range(0, out_h, chunk):
        v1 = min(out_h, v0 + chunk)
        rows = _span(start_y, step_y, v0, v1, grid_y, k)
        for u0 in range(0, out_w, chunk):
            u1 = min(out_w, u0 + chunk)
            cols = _span(start_x, step_x, u0, u1, grid_x, k)
            pixels, origin_x, origin_y = _read_padded(read_level, level, ds, (level_w, level_h), cols, rows)
            if k > 1:
                shrunk = (pixels.shape[1] // k, pixels.shape[0] // k)
                pixels = cv2.resize(pixels, shrunk, interpolation=cv2.INTER_AREA)
            # source pixel (in the shrunk chunk) sampled by the chunk's output pixel t:
            # ((centre of u0 + t) - origin) / k - 0.5
            scale_x, scale_y = step_x / k, step_y / k
            offset_x = (start_x + u0 * step_x - origin_x) / k - 0.5
            offset_y = (start_y + v0 * step_y - origin_y) / k - 0.5
            out[v0:v1, u0:u1] = _resample(pixels, (scale_x, scale_y), (offset_x, offset_y), (u1 - u0, v1 - v0))
    return out


def _span(start: float, step: float, t0: int, t1: int, grid: int, k: int) -> tuple[int, int]:
    """Level pixels [lo, hi) that output pixels [t0, t1) sample, widened to whole k-blocks
    counted from `grid`. A centre c samples the two k-blocks around c - k/2 .. c + k/2, which
    lie within c +- 1.5 k; one more pixel covers rounding."""
    lo = math.floor(start + t0 * step - 1.5 * k) - 1
    hi = math.ceil(start + (t1 - 1) * step + 1.5 * k) + 1
    lo = grid + k * math.floor((lo - grid) / k)
    hi = grid + k * math.ceil((hi - grid) / k)
    return lo, hi


def _read_padded(
    read_level: LevelReader, level: int, ds: float, level_size: tuple[int, int], cols: tuple[int, int],
    rows: tuple[int, int],
) -> tuple[np.ndarray, float, float]:
    """Level pixels cols x rows; the part outside the level repeats the edge pixels. Returns
    the pixels and the level coordinates of their top-left corner (OpenSlide takes level-0
    coordinates: with a downsample that is not an integer, the corner it reads from is
    x0 / ds, not always a whole level pixel)."""
    import cv2

    (c0, c1), (r0, r1) = cols, rows
    read_c0, read_c1 = max(0, c0), min(level_size[0], c1)
    read_r0, read_r1 = max(0, r0), min(level_size[1], r1)
    x0, y0 = round(read_c0 * ds), round(read_r0 * ds)
    pixels = read_level(level, (x0, y0), (read_c1 - read_c0, read_r1 - read_r0))
    pad = (read_r0 - r0, r1 - read_r1, read_c0 - c0, c1 - read_c1)  # top, bottom, left, right
    if any(pad):
        pixels = cv2.copyMakeBorder(pixels, *pad, cv2.BORDER_REPLICATE)
    return pixels, x0 / ds - (read_c0 - c0), y0 / ds - (read_r0 - r0)


def _resample(
    pixels: np.ndarray, scale: tuple[float, float], offset: tuple[float, float], size: tuple[int, int]
) -> np.ndarray:
    """Output pixel (t, s) = pixels sampled at (offset_x + t * scale_x, offset_y + s * scale_y)
    (pixel centres at integers): a crop when that is a whole-pixel copy, bilinear otherwise."""
    import cv2

    (scale_x, scale_y), (offset_x, offset_y), (width, height) = scale, offset, size
    ix, iy = round(offset_x), round(offset_y)
    if (
        abs(scale_x - 1) < EPS and abs(scale_y - 1) < EPS and abs(offset_x - ix) < 1e-4 and abs(offset_y - iy) < 1e-4
        and ix >= 0 and iy >= 0 and ix + width <= pixels.shape[1] and iy + height <= pixels.shape[0]
    ):  # fmt: skip
        return pixels[iy : iy + height, ix : ix + width]
    matrix = np.array([[scale_x, 0.0, offset_x], [0.0, scale_y, offset_y]])
    return cv2.warpAffine(
        pixels, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
