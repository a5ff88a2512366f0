"""Deep Zoom tiles of an image source for a tiled viewer (OpenSeadragon's format): the DZI
descriptor and JPEG or PNG tiles, made by OpenSlide's DeepZoomGenerator and kept in a
bounded, thread-safe LRU cache of encoded tiles.

A slide is tiled from its own pyramid (its OpenSlide handle, `SlideSource.openslide`). Any
other source (a photo) is decoded whole once (its pixel limit applies) and tiled through
`PhotoPyramid` (what `openslide.ImageSlide` is, with halved copies as coarser levels), so that
a zoomed-out tile is cut from a small level rather than shrunk from the full image.

Nothing here touches a path: the caller looks a source up by the project's item id and hands
it over; a tile request is three integers, checked against the pyramid.
"""

from __future__ import annotations

import io
import itertools
import threading
from collections import OrderedDict
from typing import Hashable, Optional

import numpy as np
import openslide
from openslide.deepzoom import DeepZoomGenerator

from .base import ImageSource

DEFAULT_TILE_SIZE = 254  # + 2 px overlap = 256, OpenSeadragon's default
DEFAULT_OVERLAP = 1
DEFAULT_CACHE_BYTES = 64 << 20
DEFAULT_QUALITY = 80
FORMATS = {"jpeg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png")}
MIN_LEVEL_SIDE = 256  # PhotoPyramid halves until the long side is at most this


class TileNotFound(LookupError):
    """The tile address lies outside the pyramid (a web route answers 404)."""


class TileCache:
    """Encoded tiles by key, at most `max_bytes` of them in all, the least recently used
    dropped first. Thread-safe; one cache can serve many TileMakers (keys carry their owner)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative integer, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now (at most `max_bytes`)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> Optional[bytes]:
        """The tile stored under `key` (now the most recently used), or None."""
        with self._lock:
            data = self._items.get(key)
            if data is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return data

    def put(self, key: Hashable, data: bytes) -> None:
        """Store a tile, dropping the least recently used ones past `max_bytes` (a tile larger
        than the whole cache is not stored)."""
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)

    def discard(self, owner: Hashable) -> None:
        """Drop every tile whose key starts with `owner` (a closed TileMaker's)."""
        with self._lock:
            for key in [k for k in self._items if isinstance(k, tuple) and k and k[0] == owner]:
                self._bytes -= len(self._items.pop(key))


class PhotoPyramid(openslide.AbstractSlide):
    """A decoded image (H x W x 3 uint8) as an OpenSlide slide with coarser levels, what
    openslide.ImageSlide is for one level: level k is the image halved k times (area average,
    sizes rounded up, as Deep Zoom's levels) down to a long side of at most `min_side`; its
    downsample is 2^k exactly, so Deep Zoom tiles are cut from a level without resampling
    (ImageSlide alone shrinks the full image for every zoomed-out tile: 1.6 s a tile for a
    96 MP photo). Levels stay numpy arrays (3 bytes a pixel; reads are thread-safe)."""

    def __init__(self, rgb: np.ndarray, min_side: int = MIN_LEVEL_SIDE):
        import cv2

        super().__init__()
        levels = [np.ascontiguousarray(rgb)]
        while max(levels[-1].shape[:2]) > min_side:
            height, width = levels[-1].shape[:2]
            levels.append(cv2.resize(levels[-1], (-(-width // 2), -(-height // 2)), interpolation=cv2.INTER_AREA))
        self._levels: Optional[list[np.ndarray]] = levels

    @classmethod
    def detect_format(cls, filename) -> None:  # type: ignore[override]
        return None  # made from pixels, never from a file

    @property
    def _arrays(self) -> list[np.ndarray]:
        if self._levels is None:
            raise ValueError("Cannot read from a closed slide")
        return self._levels

    @property
    def level_count(self) -> int:
        return len(self._arrays)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((level.shape[1], level.shape[0]) for level in self._arrays)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(float(1 << k) for k in range(len(self._arrays)))

    @property
    def properties(self) -> dict[str, str]:
        return {}

    @property
    def associated_images(self) -> dict:
        return {}

    def get_best_level_for_downsample(self, downsample: float) -> int:
        return max(0, min(len(self._arrays) - 1, int(np.floor(np.log2(max(downsample, 1.0)) + 1e-9))))

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]):
        """RGBA pixels of `level` from level-0 `location` (transparent outside the image)."""
        from PIL import Image

        if not 0 <= level < len(self._arrays):
            raise openslide.OpenSlideError("Invalid level")
        pixels = self._arrays[level]
        x, y = location[0] >> level, location[1] >> level
        width, height = size
        tile = np.zeros((height, width, 4), np.uint8)
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(pixels.shape[1], x + width), min(pixels.shape[0], y + height)
        if x1 > x0 and y1 > y0:
            tile[y0 - y : y1 - y, x0 - x : x1 - x, :3] = pixels[y0:y1, x0:x1]
            tile[y0 - y : y1 - y, x0 - x : x1 - x, 3] = 255
        return Image.fromarray(tile, "RGBA")

    def close(self) -> None:
        self._levels = None


class TileMaker:
    """Deep Zoom tiles of one image source.

    Arguments:
      source: an open ImageSource (a slide is tiled from its pyramid; another source is
        decoded whole now: ImageTooLargeError / ImageReadError as for `read`).
      tile_size, overlap: the Deep Zoom tile geometry.
      format: "jpeg" (default) or "png" (lossless, larger).
      quality: JPEG quality.
      cache: a TileCache to share (default: a private one of DEFAULT_CACHE_BYTES).
    Deep Zoom's top level is level 0's pixels, 1:1; each level below halves it.
    """

    _owners = itertools.count()

    def __init__(
        self,
        source: ImageSource,
        tile_size: int = DEFAULT_TILE_SIZE,
        overlap: int = DEFAULT_OVERLAP,
        format: str = "jpeg",
        quality: int = DEFAULT_QUALITY,
        cache: Optional[TileCache] = None,
    ):
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        self.name = source.name
        self.format = format
        self.quality = int(quality)
        self.cache = cache if cache is not None else TileCache()
        self._owner = ("tiles", next(self._owners))
        handle = getattr(source, "openslide", None)
        self._photo = None if handle is not None else PhotoPyramid(source.read())
        self._generator = DeepZoomGenerator(handle or self._photo, tile_size, overlap, limit_bounds=False)

    @property
    def media_type(self) -> str:
        """The tiles' MIME type ("image/jpeg" or "image/png")."""
        return FORMATS[self.format][1]

    @property
    def level_count(self) -> int:
        """Deep Zoom levels: the last is level 0's pixels, each one before it half as large."""
        return int(self._generator.level_count)

    @property
    def level_tiles(self) -> tuple[tuple[int, int], ...]:
        """(columns, rows) of tiles per Deep Zoom level."""
        return tuple(self._generator.level_tiles)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """(width, height) in pixels per Deep Zoom level."""
        return tuple(self._generator.level_dimensions)

    def dzi_xml(self) -> str:
        """The DZI descriptor (tile size, overlap, format, level-0 size)."""
        return self._generator.get_dzi("jpeg" if self.format == "jpeg" else "png")

    def tile(self, level: int, col: int, row: int) -> bytes:
        """The encoded tile at Deep Zoom `level`, column `col`, row `row` (from the cache when
        it is there). Raises TileNotFound for an address outside the pyramid."""
        for value in (level, col, row):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TileNotFound(f"{self.name}: tile address must be integers, got {(level, col, row)!r}")
        key = (self._owner, int(level), int(col), int(row))
        data = self.cache.get(key)
        if data is not None:
            return data
        try:
            image = self._generator.get_tile(int(level), (int(col), int(row)))
        except ValueError as e:  # DeepZoomGenerator: "Invalid level" / "Invalid address"
            raise TileNotFound(f"{self.name}: no tile at level {level}, column {col}, row {row} ({e})") from None
        data = self._encode(image)
        self.cache.put(key, data)
        return data

    def _encode(self, image) -> bytes:
        buffer = io.BytesIO()
        if self.format == "jpeg":
            # 4:4:4: chroma subsampling (Pillow's default 4:2:0) smears colour edges a pixel or
            # two wide, the detail an annotator zooms to 1:1 for
            image.save(buffer, "JPEG", quality=self.quality, subsampling=0)
        else:
            image.save(buffer, "PNG", compress_level=3)
        return buffer.getvalue()

    def close(self) -> None:
        """Drop this maker's tiles from the cache and release a photo's decoded levels (the
        source itself stays open: its owner closes it)."""
        self.cache.discard(self._owner)
        if self._photo is not None:
            self._photo.close()
            self._photo = None
