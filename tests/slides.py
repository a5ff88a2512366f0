"""Test slides written by the tests: tiled pyramidal TIFFs (what OpenSlide reads as
"generic-tiff"), written tile by tile with tifffile so level 0 is never in memory, with a
pattern that tells every pixel's position:

- red: 256-px blocks, 30 + 10 * ((bx + 3 * by) % 20) for block (bx, by) = (x // 256, y // 256);
- green: 2-px vertical stripes, 60 where (x // 2) % 2 == 0, else 200;
- blue: 2-px horizontal stripes, likewise in y.

Level k (downsample 2^k) holds the exact mean of level 0 over each 2^k x 2^k window: the red
block is the window's (for k <= 8 a window lies in one block), the stripes average to
60 + 140 * (share of odd stripes): level 1 still shows 1-px stripes, level >= 2 is 130 flat
(except a partial window at the right or bottom edge). `pattern(...)` gives any region of any
level, so tests compare pixels exactly (the tiles are deflate-compressed: lossless).

Equal tiles compress to equal bytes: `write_slide` compresses each distinct tile once, which
makes even a 100,000 x 80,000 px slide quick to write.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

BLOCK = 256
TILE = 256
LOW, HIGH = 60, 200


def block_red(bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    """The red of level-0 block (bx, by) (broadcast)."""
    return (30 + 10 * ((bx + 3 * by) % 20)).astype(np.uint8)


_RED = block_red(np.arange(40), 0)  # red by (bx % 20) + (3 * by % 20), a sum below 40


def _stripe_values(start: int, count: int, level: int, limit: int) -> np.ndarray:
    """Green (or blue) of level-`level` pixels start..start+count-1 along an axis whose level-0
    length is `limit`: the mean of 2-px stripes over each pixel's 2^level window."""
    n = 1 << level
    index = np.arange(start, start + count)
    if n <= 2:
        odd = ((index * n) // 2) % 2  # the window holds one stripe only
        return np.where(odd == 1, HIGH, LOW).astype(np.uint8)
    out = np.full(count, (LOW + HIGH) // 2, np.uint8)  # whole windows hold equal shares
    for i, pixel in enumerate(index):
        lo, hi = pixel * n, min((pixel + 1) * n, limit)
        if hi - lo < n and hi > lo:  # the partial window at the end of the axis
            x = np.arange(lo, hi)
            out[i] = round(LOW + (HIGH - LOW) * float(np.mean((x // 2) % 2)))
    return out


def _axis(start: int, count: int, level: int, limit: int, weight: int) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis: each pixel's share of the red index (weight * block % 20) and its stripe."""
    blocks = (np.arange(start, start + count) << level) // BLOCK
    return ((weight * blocks) % 20).astype(np.uint8), _stripe_values(start, count, level, limit)


def _compose(columns: tuple[np.ndarray, np.ndarray], rows: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    (red_x, green), (red_y, blue) = columns, rows
    out = np.empty((len(red_y), len(red_x), 3), np.uint8)
    out[..., 0] = _RED[red_x[None, :] + red_y[:, None]]
    out[..., 1] = green[None, :]
    out[..., 2] = blue[:, None]
    return out


def level_size(size: tuple[int, int], level: int) -> tuple[int, int]:
    """(width, height) of `level` of a slide whose level 0 is `size` (halved, rounded up)."""
    n = 1 << level
    return -(-size[0] // n), -(-size[1] // n)


def pattern(x: int, y: int, width: int, height: int, level: int = 0, size: Optional[tuple[int, int]] = None) -> np.ndarray:
    """The pattern's pixels: `height` x `width` x 3 uint8 of level `level` from level pixel
    (x, y). `size` is level 0's (width, height), needed for the partial windows at the edges
    of levels >= 2 (default: no partial windows)."""
    limit_x, limit_y = size if size is not None else (1 << 62, 1 << 62)
    return _compose(_axis(x, width, level, limit_x, 1), _axis(y, height, level, limit_y, 3))


def _tiles(size: tuple[int, int], level: int, tile: int, compress_level: int) -> Iterator[bytes]:
    """Level `level`'s tiles, row by row, deflate-compressed (each distinct tile once: a
    tile is known by its rows' and columns' values)."""
    width, height = level_size(size, level)
    encoded: dict[bytes, bytes] = {}
    for ty in range(0, height, tile):
        rows = _axis(ty, min(tile, height - ty), level, size[1], 3)
        for tx in range(0, width, tile):
            columns = _axis(tx, min(tile, width - tx), level, size[0], 1)
            key = b"|".join(a.tobytes() for a in (*columns, *rows))
            if key not in encoded:
                pixels = np.zeros((tile, tile, 3), np.uint8)  # edge tiles are padded
                pixels[: len(rows[0]), : len(columns[0])] = _compose(columns, rows)
                encoded[key] = zlib.compress(pixels.tobytes(), compress_level)
            yield encoded[key]


def write_slide(
    path: Path,
    size: tuple[int, int],
    levels: int,
    mpp: Optional[float] = 0.25,
    tile: int = TILE,
    compress_level: int = 6,
) -> Path:
    """A tiled pyramidal TIFF of the pattern: `levels` levels (2^k downsamples), level 0 of
    (width, height) `size`, microns per pixel `mpp` in the resolution tags (None: none)."""
    import tifffile

    with tifffile.TiffWriter(path, bigtiff=True) as tiff:
        for level in range(levels):
            width, height = level_size(size, level)
            options = {}
            if mpp is not None:
                per_cm = 1e4 / (mpp * (1 << level))
                options = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
            tiff.write(
                _tiles(size, level, tile, compress_level), shape=(height, width, 3), dtype=np.uint8,
                tile=(tile, tile), compression="zlib", photometric="rgb", subfiletype=0 if level == 0 else 1,
                metadata=None, **options,
            )  # fmt: skip
    return path


def write_benchmark_slide(path: Path, size: tuple[int, int]) -> Path:
    """The benchmarks' big slide: levels halving until the smallest is under 1000 px, 0.25
    um/px, quick compression; prints how long writing it took."""
    import time

    levels = 1
    while max(size) >> (levels - 1) > 1000:
        levels += 1
    started = time.perf_counter()
    write_slide(path, size, levels=levels, mpp=0.25, compress_level=1)
    print(f"wrote {path} ({levels} levels, {path.stat().st_size / 2**20:.0f} MiB) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    return path


def write_plain_tiff(path: Path, size: tuple[int, int], tile: int = TILE) -> Path:
    """A tiled TIFF of the pattern with one level only: a photo, not a slide."""
    return write_slide(path, size, levels=1, mpp=None, tile=tile)


PATIENT = "DOE^JANE-4711"  # the name the fake associated images and properties carry
LABEL_RGB = (255, 0, 255)  # associated images are filled with this colour (absent from the pattern)


def write_fake_aperio(path: Path, size: tuple[int, int] = (1024, 768)) -> Path:
    """An Aperio-style .svs (OpenSlide's "aperio" vendor) of the pattern, two levels, whose
    thumbnail, label and macro are LABEL_RGB fields with PATIENT written on them, and whose
    ImageDescription names PATIENT (as Aperio's Filename and Title): what must never leak."""
    import cv2
    import tifffile

    width, height = size
    lines = f"|AppMag = 20|MPP = 0.5|Filename = {PATIENT}|Title = {PATIENT}"

    def associated(w: int, h: int) -> np.ndarray:
        image = np.empty((h, w, 3), np.uint8)
        image[...] = LABEL_RGB
        cv2.putText(image, PATIENT, (5, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        return image

    header = "Aperio Image Library v12.0.15\r\n"
    with tifffile.TiffWriter(path) as tiff:
        common = {"compression": "zlib", "photometric": "rgb", "metadata": None}
        tiff.write(
            pattern(0, 0, width, height, 0, size), tile=(TILE, TILE),
            description=f"{header}{width}x{height} [0,0 {width}x{height}] ({TILE}x{TILE}) ZLIB{lines}", **common,
        )  # fmt: skip
        tiff.write(associated(160, 120), description=f"{header}{width}x{height} -> 160x120 - {lines}", **common)
        low = level_size(size, 1)
        tiff.write(
            pattern(0, 0, *low, 1, size), tile=(TILE, TILE),
            description=f"{header}{width}x{height} -> {low[0]}x{low[1]} - {lines}", **common,
        )  # fmt: skip
        tiff.write(associated(300, 100), description=f"{header}label 300x100", subfiletype=1, **common)
        tiff.write(associated(400, 120), description=f"{header}macro 400x120", subfiletype=9, **common)
    return path


BIG = (20000, 16000)  # 320 MP: over the photo limit; 4 levels, 0.25 um/px
SMALL = (2048, 1536)  # 3 levels, no pixel size


def write_test_slides(folder: Path) -> dict[str, Path]:
    """The slides most tests use (about a second to write): "big" (BIG, 4 levels, mpp 0.25),
    "small" (SMALL, 3 levels, no mpp), "odd" (3001 x 2003, 3 levels: downsamples not exact
    powers of two), "plain" (a tiled one-level TIFF: a photo) and "aperio" (a fake .svs whose
    associated images and properties carry PATIENT)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "big": write_slide(folder / "big.tif", BIG, levels=4, mpp=0.25),
        "small": write_slide(folder / "small.tiff", SMALL, levels=3, mpp=None),
        "odd": write_slide(folder / "odd.tif", (3001, 2003), levels=3, mpp=0.5),
        "plain": write_plain_tiff(folder / "plain.tif", (1000, 700)),
        "aperio": write_fake_aperio(folder / "fake.svs"),
    }
