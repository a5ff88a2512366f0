"""The image-source interface: one readable image item of any kind (a photo, a slide, a DICOM
frame), what it can tell about itself without decoding pixels, and its pixels, whole or a
region at a scale. The engine and the project store read images only through it; each kind is
one module of this package (`photo.py`, ...), registered in `sources/__init__.py`.
"""

from __future__ import annotations

import io
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, ClassVar, Optional, Union

import numpy as np

from ..checkpoints import sha256_file

DEFAULT_MAX_PIXELS = 150_000_000  # ordinary images larger than this are refused (slides are read by region)
HEAD_BYTES = 132  # what kinds sniff: enough for DICOM's "DICM" at offset 128
IDENTIFYING = "identifying"  # provenance key of values that identify a study (UIDs): written only where allowed

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]  # what `open_source` takes


class ImageReadError(ValueError):
    """The source is not a readable image: corrupt, truncated, or of an unsupported kind."""


class ImageTooLargeError(ValueError):
    """The image has more pixels than the allowed limit (found from its header, before decoding)."""


@dataclass(frozen=True)
class Region:
    """A rectangle of an image in its full-resolution (level-0) pixels: x, y of its top-left
    corner, its width and height."""

    x: int
    y: int
    width: int
    height: int

    def clipped(self, size: tuple[int, int]) -> "Region":
        """The part inside an image of (width, height) `size`; ValueError when nothing is."""
        x0, y0 = max(0, int(self.x)), max(0, int(self.y))
        x1, y1 = min(size[0], int(self.x + self.width)), min(size[1], int(self.y + self.height))
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"region {self} lies outside the {size[0]}x{size[1]} image")
        return Region(x0, y0, x1 - x0, y1 - y0)


class ImageSource(ABC):
    """One image item, opened. Subclasses read their kind; `kind` names it ("photo", ...).

    `name` is how messages name it; `path` the file (None for bytes). Opening reads the
    header only; `read` decodes pixels. Close it (or use it as a context manager) when done.

    What a kind may have beyond that (defaults here, so callers never ask which kind it is):
    `frames` (how many items its file holds) and `frame` (this one, 0-based); `windows` (the
    display windows it offers, `sources.Window`s; empty: its pixels are shown as they are) and
    `window` (the one `read` uses), with `with_window` and `window_record`; `inverted`: its grey
    levels fall as its values rise (DICOM MONOCHROME1); `plain_file`: its file is an ordinary
    image file other programs read as it is (a photo), so exports may link or copy it; when
    False they write its pixels instead (a DICOM frame: its file carries patient data).
    """

    kind: ClassVar[str]
    plain_file: ClassVar[bool] = False
    # True for kinds too large to decode whole (slides): read by region, shown in tiles from
    # their own pyramid, annotated in fields; False: decoded whole (photos, DICOM frames)
    regions: ClassVar[bool] = False
    name: str
    path: Optional[Path]
    frames: int = 1
    frame: int = 0
    windows: tuple = ()
    window: Optional[Any] = None
    inverted: bool = False

    @property
    @abstractmethod
    def size(self) -> tuple[int, int]:
        """(width, height) of the full-resolution image, upright, from its header."""

    @abstractmethod
    def read(self, region: Optional[Region] = None, scale: float = 1.0) -> np.ndarray:
        """Pixels as an H x W x 3 uint8 RGB array.

        Arguments:
          region: the part to read, in full-resolution pixels (None: the whole image).
          scale: output pixels per full-resolution pixel (<= 1 reads a reduced copy).

        Returns:
          The region's pixels, round(height * scale) x round(width * scale) x 3.
        Raises ImageReadError (or ImageTooLargeError) naming the source.
        """

    def check(self) -> None:
        """Raise what reading the whole image would raise that the header already tells (e.g.
        ImageTooLargeError), without decoding anything; kinds read by region raise nothing."""

    def fingerprint(self) -> str:
        """What identifies the item's content for the project store (stored as its "sha256"):
        the file's SHA-256 by default; kinds whose files are huge may hash less."""
        if self.path is None:
            raise ImageReadError(f"{self.name}: has no file to fingerprint")
        return sha256_file(self.path)

    def with_window(self, window: Any) -> "ImageSource":
        """The same item under another display window (a `Window` or its key text); None: the
        default. A kind without windows takes only None."""
        if window is not None:
            raise ValueError(f"{self.name}: a {self.kind} has no display window")
        return self

    def window_record(self) -> Optional[dict[str, Any]]:
        """The window `read` uses as provenance records it (`Window.record()`: key, name,
        function, centre and width; an automatic window's centre and width once read), or
        None for a kind without windows."""
        return None

    @property
    def pixel_size(self) -> Optional[tuple[float, float]]:
        """Microns per full-resolution pixel (x, y) when the item says (a slide's mpp, a DICOM's
        pixel spacing), else None (`pixel_size_um` of its provenance)."""
        return pixel_size_um(self.provenance())

    def provenance(self) -> dict[str, Any]:
        """Fields of the item worth recording with what is made from it (kind-specific:
        e.g. a pixel size, "pixel_spacing_mm" [row, column] where known); never
        patient-identifying data. Values that identify a study without naming the patient
        (DICOM UIDs) sit under the key IDENTIFYING ("identifying"): write them only where
        that is allowed (`public_provenance` drops them)."""
        return {"kind": self.kind}

    def close(self) -> None:
        """Release the file (a no-op for kinds that hold nothing open)."""

    def __enter__(self) -> "ImageSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileSource(ImageSource):
    """A source read from a file and decoded whole (a photo, a DICOM frame): a path, or bytes
    kept in memory (a stream is read once, as it may not be read again). `take(source)` sets
    `name`, `path` and the bytes; `stream()` opens it for reading, as often as needed; `check`
    refuses an image over `max_pixels` before anything is decoded."""

    _data: Optional[bytes] = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    def check(self) -> None:
        """ImageTooLargeError when the image has more pixels than `max_pixels` (it would be
        decoded whole), from the header."""
        width, height = self.size
        if width * height > self.max_pixels:
            raise ImageTooLargeError(
                f"{self.name}: image is {width}x{height} = {width * height:,} pixels, over the limit of "
                f"{self.max_pixels:,} pixels"
            )

    def take(self, source: Source) -> None:
        self.name = source_name(source)
        self.path = Path(source) if isinstance(source, (str, os.PathLike)) else None
        self._data = None
        if self.path is None:
            if isinstance(source, (bytes, bytearray, memoryview)):
                self._data = bytes(source)
            elif hasattr(source, "read"):
                self._data = source.read()
            else:
                raise TypeError(f"expected a path, bytes or a binary file object, got {type(source).__name__}")

    def stream(self) -> BinaryIO:
        return open(self.path, "rb") if self.path is not None else io.BytesIO(self._data)


@dataclass(frozen=True)
class SourceKind:
    """An image kind as the registry knows it.

    A file is of this kind when its extension is in `extensions` or its first bytes (at most
    HEAD_BYTES) satisfy `magic`, and, where a kind shares extensions with another (a
    pyramidal TIFF is a slide, a plain one a photo), `accepts(path)` says yes after a look
    at the header. `open(source, max_pixels=...)` opens it (an ImageSource; raises
    ImageReadError); `streams`: it can read bytes and file objects as well as paths.
    `options`: the further keywords `open` takes ("frame": the 0-based frame of a
    multi-frame file; "window": a display window); `frames(source)`: how many frames (items)
    a file holds, from its header (None: always one).
    `companions(path)`, for kinds whose item is several files (a MIRAX `.mrxs` and its
    folder), names the other entries of the file's folder that belong to the item, so that a
    folder listing shows the item once.
    """

    name: str
    extensions: frozenset[str]
    magic: Callable[[bytes], bool]
    open: Callable[..., ImageSource]
    streams: bool = True
    accepts: Optional[Callable[[str], bool]] = None
    options: frozenset[str] = frozenset()
    frames: Optional[Callable[[Source], int]] = None
    companions: Optional[Callable[[str], list[str]]] = None

    def claims(self, name: str, head: bytes, path: Optional[str] = None) -> bool:
        """Whether a file called `name` starting with `head` is of this kind (`path` for the
        deeper look of `accepts`; without it, bytes and streams are judged by name and head)."""
        if os.path.splitext(name)[1].lower() not in self.extensions and not self.magic(head):
            return False
        return self.accepts is None or path is None or self.accepts(path)


def public_provenance(provenance: Optional[dict[str, Any]], keep_identifying: bool = False) -> dict[str, Any]:
    """A provenance dict as it may be shown or written: without its IDENTIFYING part, unless
    `keep_identifying` (e.g. `basam-ui export --keep-uids`)."""
    provenance = dict(provenance or {})
    if not keep_identifying:
        provenance.pop(IDENTIFYING, None)
    return provenance


def pixel_size_um(provenance: Optional[dict[str, Any]]) -> Optional[tuple[float, float]]:
    """Microns per full-resolution pixel (x, y) from an item's provenance: a DICOM's
    "pixel_spacing_mm" [row, column] in mm, or a slide's "mpp" [x, y] in µm; None when the item
    does not say. Pixel areas in µm² and mm² are made from it."""
    provenance = provenance or {}
    spacing = provenance.get("pixel_spacing_mm")
    if spacing:
        return float(spacing[1]) * 1000.0, float(spacing[0]) * 1000.0
    mpp = provenance.get("mpp")
    if mpp:
        return float(mpp[0]), float(mpp[1])
    return None


def check_max_pixels(max_pixels: object) -> int:
    """`max_pixels` if it is a positive integer; ValueError otherwise."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    return max_pixels


def source_name(source: Source) -> str:
    """How messages name a source: its path, or a placeholder for bytes and streams."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<image bytes>"
    if isinstance(source, (str, os.PathLike)):
        return str(Path(source))
    return str(getattr(source, "name", "<image stream>"))


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) of a `scale` copy, at least 1 x 1."""
    return max(1, round(width * scale)), max(1, round(height * scale))
