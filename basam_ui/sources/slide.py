"""Whole-slide images: pathology slides read with OpenSlide, by region, from their pyramid.

A file is a slide when OpenSlide recognises a vendor format in it (Aperio .svs, Hamamatsu
.ndpi/.vms/.vmu, Leica .scn, MIRAX .mrxs, Sakura .svslide, Ventana .bif, Philips and other
vendor TIFFs), or when it is a tiled TIFF with a pyramid (two levels or more). A tiled TIFF
with one level stays a photo (`photo.py`), under the photos' pixel limit.

Nothing here reads level 0 whole: `read(region, scale)` reads the level that fits the scale,
chunk by chunk (`pyramid.py`), and refuses outputs over `max_pixels`. A slide's associated
images (label, macro, thumbnail) often show patient names: this module never reads them, and
`provenance()` copies only named, non-identifying properties.

Multi-file slides are one item: a MIRAX `.mrxs` owns the folder of the same name beside it, a
Hamamatsu `.vms`/`.vmu` the image files its index names (`companions`).
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .base import (
    DEFAULT_MAX_PIXELS, ImageReadError, ImageSource, ImageTooLargeError, Region, Source, SourceKind, scaled_size,
    source_name,
)  # fmt: skip
from .photo import on_white
from .pyramid import read_from_pyramid

GENERIC_TIFF = "generic-tiff"  # OpenSlide's name for a tiled TIFF of no vendor
TIFF_EXTENSIONS = frozenset({".tif", ".tiff"})
# extensions only slides have (a TIFF is a slide or a photo after a look at its header)
VENDOR_EXTENSIONS = frozenset({".svs", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif"})
EXTENSIONS = VENDOR_EXTENSIONS | TIFF_EXTENSIONS
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

# The files of a Hamamatsu VMS/VMU index (section, then keys naming files beside it).
VMS_SECTION = "Virtual Microscope Specimen"
VMS_FILE_KEYS = ("imagefile", "mapfile", "optimisationfile", "macroimage")

# fingerprint(): how much of each file is hashed (the start and the end), and the scheme's
# name (part of what is hashed, so a later change of scheme cannot collide with this one)
HEAD_TAIL_BYTES = 1 << 20
COMPANION_HEAD_TAIL_BYTES = 64 << 10
FINGERPRINT_SCHEME = "basam-ui slide fingerprint 1"
# OpenSlide's cache of decoded slide tiles, one for all slides open in the process (each handle
# would otherwise hold its own 32 MiB: a server with many slides open grows with their number)
DECODED_TILE_CACHE_BYTES = 128 << 20
_decoded_tiles = None
_decoded_tiles_lock = threading.Lock()
# get_best_level_for_downsample: vendors round level sizes down, so a level meant as 4x may
# measure 4.0007x; a read at 1/4 should still use it (the 0.07% is resampled)
LEVEL_TOLERANCE = 1.01


def magic(head: bytes) -> bool:
    """A TIFF's first bytes (a pyramidal TIFF without an extension is still found)."""
    return head.startswith(TIFF_MAGIC)


def is_slide(path: str) -> bool:
    """Whether the file at `path` is read as a slide: a vendor extension (a damaged file is
    still a slide, and opening it says what is wrong), a vendor format OpenSlide detects, or a
    generic tiled TIFF with at least two levels."""
    if os.path.splitext(path)[1].lower() in VENDOR_EXTENSIONS:
        return True
    import openslide

    try:
        vendor = openslide.OpenSlide.detect_format(path)
        if vendor is None:
            return False
        if vendor != GENERIC_TIFF:
            return True
        with openslide.OpenSlide(path) as slide:
            return slide.level_count >= 2
    except (openslide.OpenSlideError, OSError):
        return False


def companions(path: str) -> list[str]:
    """Names of the entries beside `path` that belong to the same slide: for `X.mrxs`, the
    folder `X`; for a `.vms`/`.vmu` index, the files it names (image tiles, map, macro). Other
    slides are one file."""
    folder, name = os.path.split(path)
    stem, extension = os.path.splitext(name)
    extension = extension.lower()
    if extension == ".mrxs":
        return [stem] if os.path.isdir(os.path.join(folder, stem)) else []
    if extension not in (".vms", ".vmu"):
        return []
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(path, encoding="latin-1")
    except (configparser.Error, OSError):
        return []
    if not parser.has_section(VMS_SECTION):
        return []
    found = []
    for key, value in parser.items(VMS_SECTION):
        value = value.strip()
        # only plain names: the index's files lie beside it, and nothing outside is claimed
        if key.startswith(VMS_FILE_KEYS) and value and os.path.basename(value) == value and value not in (".", ".."):
            if os.path.isfile(os.path.join(folder, value)) and value != name:
                found.append(value)
    return sorted(set(found))


class SlideSource(ImageSource):
    """A whole-slide image, opened with OpenSlide (the handle is `openslide`; tiles.py makes
    Deep Zoom tiles from it). `size` is level 0's; `read` reads by region at a scale."""

    kind = "slide"
    regions = True

    def __init__(self, source: Source, max_pixels: int = DEFAULT_MAX_PIXELS):
        import openslide

        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
            raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
        self.name = source_name(source)
        if not isinstance(source, (str, os.PathLike)):
            raise ImageReadError(f"{self.name}: a slide is read from its file, not from bytes or a stream")
        self.path = Path(source)
        self.max_pixels = max_pixels
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        try:
            self.openslide = openslide.OpenSlide(str(self.path))
        except openslide.OpenSlideUnsupportedFormatError as e:
            raise ImageReadError(f"{self.name}: not a slide format OpenSlide reads") from e
        except (openslide.OpenSlideError, OSError) as e:
            raise ImageReadError(f"{self.name}: cannot open the slide ({e})") from e
        self.openslide.set_cache(_shared_cache())
        properties = self.openslide.properties
        self.vendor: str = properties.get(openslide.PROPERTY_NAME_VENDOR, GENERIC_TIFF)
        self.level_dimensions: tuple[tuple[int, int], ...] = tuple(self.openslide.level_dimensions)
        self.level_downsamples: tuple[float, ...] = tuple(float(d) for d in self.openslide.level_downsamples)
        self.mpp: Optional[tuple[float, float]] = _mpp(properties)
        self._objective_power = _float(properties.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER))
        self._quickhash = properties.get(openslide.PROPERTY_NAME_QUICKHASH1, "")

    @property
    def size(self) -> tuple[int, int]:
        return self.level_dimensions[0]

    @property
    def pixel_size(self) -> Optional[tuple[float, float]]:
        return self.mpp

    def best_level(self, downsample: float) -> int:
        """The pyramid level to read for `downsample` level-0 pixels per output pixel: the
        coarsest one at most that fine (OpenSlide's choice, with LEVEL_TOLERANCE)."""
        return int(self.openslide.get_best_level_for_downsample(downsample * LEVEL_TOLERANCE))

    def read(self, region: Optional[Region] = None, scale: float = 1.0) -> np.ndarray:
        if not scale > 0 or not np.isfinite(scale):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        try:
            box = (region or Region(0, 0, *self.size)).clipped(self.size)
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None
        width, height = scaled_size(box.width, box.height, scale)
        if width * height > self.max_pixels:
            raise ImageTooLargeError(
                f"{self.name}: a {box.width}x{box.height} region at scale {scale:g} is {width}x{height} = "
                f"{width * height:,} pixels, over the limit of {self.max_pixels:,} pixels (read a smaller "
                "region or at a smaller scale)"
            )
        downsample = min(box.width / width, box.height / height)
        level = self.best_level(downsample)
        return read_from_pyramid(
            self._read_level, self.level_dimensions, self.level_downsamples, level, box, (width, height)
        )

    def _read_level(self, level: int, location: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
        import openslide

        try:
            rgba = np.asarray(self.openslide.read_region(location, level, size))
        except openslide.OpenSlideError as e:
            raise ImageReadError(f"{self.name}: cannot read the slide's pixels ({e})") from e
        if rgba[..., 3].min() == 255:  # opaque (the usual case): no blend, no copy
            return rgba[..., :3]
        return on_white(rgba[..., :3], rgba[..., 3])

    def files(self) -> list[Path]:
        """The slide's files: the one opened, then its companions' files (sorted)."""
        found = [self.path]
        for name in companions(str(self.path)):
            entry = self.path.parent / name
            if entry.is_dir():
                found.extend(sorted(p for p in entry.rglob("*") if p.is_file()))
            else:
                found.append(entry)
        return found

    def fingerprint(self) -> str:
        """The slide's identity, without reading gigabytes: the SHA-256 (hex) of a JSON
        document holding, for each file (`files()`), its size and the SHA-256 of its first and
        last MiB (64 KiB for companion files), the level dimensions, and OpenSlide's
        `quickhash-1` (a hash of the slide's metadata and lowest-resolution level, meant to be
        stable across OpenSlide versions; empty where OpenSlide gives none). File names are
        left out, so a renamed or moved slide keeps its identity; any change of size, header,
        index or end of a file changes it. Reads at most 2 MiB per file."""
        files = []
        for index, path in enumerate(self.files()):
            span = HEAD_TAIL_BYTES if index == 0 else COMPANION_HEAD_TAIL_BYTES
            files.append(_head_tail(path, span))
        document = {
            "scheme": FINGERPRINT_SCHEME,
            "files": files,
            "levels": [list(d) for d in self.level_dimensions],
            "quickhash-1": self._quickhash,
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode("utf-8")).hexdigest()

    def provenance(self) -> dict[str, Any]:
        """kind, vendor, levels, level-0 width and height, level sizes and downsamples,
        microns per pixel ([x, y], or None when the slide does not say), objective power (or
        None). Only these: vendor properties can hold names (Aperio's Filename, Title)."""
        width, height = self.size
        return {
            "kind": self.kind,
            "vendor": self.vendor,
            "levels": len(self.level_dimensions),
            "width": width,
            "height": height,
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "level_downsamples": list(self.level_downsamples),
            "mpp": list(self.mpp) if self.mpp is not None else None,
            "objective_power": self._objective_power,
        }

    def close(self) -> None:
        self.openslide.close()


def _shared_cache():
    """The process's OpenSlideCache (made on first use)."""
    global _decoded_tiles
    import openslide

    with _decoded_tiles_lock:
        if _decoded_tiles is None:
            _decoded_tiles = openslide.OpenSlideCache(DECODED_TILE_CACHE_BYTES)
        return _decoded_tiles


def _float(value: Optional[str]) -> Optional[float]:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and np.isfinite(number) and number > 0 else None


def _mpp(properties: Any) -> Optional[tuple[float, float]]:
    """Microns per pixel (x, y) from OpenSlide's properties, or None when the slide lacks them."""
    import openslide

    mpp_x = _float(properties.get(openslide.PROPERTY_NAME_MPP_X))
    mpp_y = _float(properties.get(openslide.PROPERTY_NAME_MPP_Y))
    if mpp_x is None and mpp_y is None:
        return None
    return (mpp_x or mpp_y, mpp_y or mpp_x)  # type: ignore[return-value]


def _head_tail(path: Path, span: int) -> list:
    """[size, sha256 of the first `span` bytes, sha256 of the last `span` bytes] of a file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(span)).hexdigest()
        f.seek(max(0, size - span))
        tail = hashlib.sha256(f.read(span)).hexdigest()
    return [size, head, tail]


def _open(source: Source, max_pixels: int = DEFAULT_MAX_PIXELS) -> SlideSource:
    return SlideSource(source, max_pixels=max_pixels)


SLIDE = SourceKind(
    "slide", EXTENSIONS, magic, _open, streams=False, accepts=is_slide, companions=companions
)
