"""Image sources: every kind of image basam-ui reads, behind one interface (`base.ImageSource`).

`open_source(path or bytes)` finds the kind that claims the file (by its name and first
bytes, nothing decoded) and opens it; `image_size`, `looks_like_image`, `frame_count` answer
from headers. Kinds: DICOM (`dicom.py`: first, since a DICOM file may carry any extension),
whole-slide images (`slide.py`: vendor formats and pyramidal TIFFs, read by region), photos
(`photo.py`).
A new kind is one module here with a `SourceKind`, added to `KINDS` (first claim wins), and
nothing else in basam_ui branches on kinds. Pure Python over numpy, Pillow, OpenCV, pydicom and
OpenSlide (imported on first use); no torch.
"""

from __future__ import annotations

import io
import os
from typing import Optional

from .base import (
    DEFAULT_MAX_PIXELS, HEAD_BYTES, ImageReadError, ImageSource, ImageTooLargeError, Region, Source, SourceKind,
    source_name,
)  # fmt: skip
from .dicom import DICOM
from .dicom_window import Window
from .photo import PHOTO
from .slide import SLIDE

# first claim wins: DICOM first (a DICOM file may carry any extension), then a pyramidal TIFF
# is a slide before the photo reader would take any TIFF
KINDS: tuple[SourceKind, ...] = (DICOM, SLIDE, PHOTO)

__all__ = [
    "DEFAULT_MAX_PIXELS", "KINDS", "ImageReadError", "ImageSource", "ImageTooLargeError", "Region", "SourceKind",
    "Window", "companion_names", "frame_count", "identity", "image_size", "kind_of", "looks_like_image",
    "named_like_image", "open_source",
]  # fmt: skip


def _head(source: Source) -> bytes:
    """The first HEAD_BYTES of a path, bytes or a seekable stream (the stream is rewound)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source[:HEAD_BYTES])
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return f.read(HEAD_BYTES)
    position = source.tell()
    head = source.read(HEAD_BYTES)
    source.seek(position)
    return head


def kind_of(source: Source) -> Optional[SourceKind]:
    """The kind that claims `source` (a path, bytes or a seekable binary stream), or None.
    Reads the header at most; a path that cannot be read raises OSError."""
    head = _head(source)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return next((kind for kind in KINDS if kind.claims(path, head, path)), None)
    name = str(getattr(source, "name", ""))
    return next((kind for kind in KINDS if kind.streams and kind.claims(name, head)), None)


def open_source(
    source: Source, max_pixels: int = DEFAULT_MAX_PIXELS, frame: int = 0, window: Optional[object] = None
) -> ImageSource:
    """Open an image of any kind.

    Arguments:
      source: a path, the file's bytes, or a binary file object.
      max_pixels: the most pixels a read may return (a photo is refused whole above it; a
        slide refuses a region at a scale above it). Headers are read regardless.
      frame: the item of a multi-frame file, 0-based (`frame_count` says how many).
      window: a display window (a `Window` or its key text) for kinds that window their
        pixels (monochrome DICOM); None: the file's default.

    Returns:
      The opened ImageSource (close it when done).
    Raises ImageReadError when no kind reads it or its header is damaged, or it has no such
    frame; ValueError for a window on a kind without windows; a missing file raises
    FileNotFoundError as usual.
    """
    if not isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)) and not hasattr(source, "read"):
        raise TypeError(f"expected a path, bytes or a binary file object, got {type(source).__name__}")
    if hasattr(source, "read") and not isinstance(source, (bytes, bytearray, memoryview)):
        if not source.seekable():
            source = io.BytesIO(source.read())
    kind = kind_of(source) or PHOTO  # unclaimed: let the photo reader say what it is not
    options: dict[str, object] = {}
    if frame != 0:
        if "frame" not in kind.options:
            raise ImageReadError(f"{source_name(source)}: a {kind.name} has one frame; there is no frame {frame + 1}")
        options["frame"] = frame
    if window is not None:
        if "window" not in kind.options:
            raise ValueError(f"{source_name(source)}: a {kind.name} has no display window")
        options["window"] = window
    return kind.open(source, max_pixels=max_pixels, **options)


def frame_count(source: Source) -> int:
    """How many items (frames) a file holds, from its header: 1 except for multi-frame DICOM
    instances. Raises ImageReadError as `open_source` does. Cheap for files no kind with frames
    claims: only the kinds up to the last one with frames are asked (a folder scan asks this of
    every new file)."""
    asked = KINDS[: max((k + 1 for k, kind in enumerate(KINDS) if kind.frames is not None), default=0)]
    if not asked:
        return 1
    head = _head(source)
    path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    name = path or str(getattr(source, "name", ""))
    kind = next((kind for kind in asked if kind.claims(name, head, path)), None)
    return kind.frames(source) if kind is not None and kind.frames is not None else 1


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image upright, from its header (no pixels decoded)."""
    with open_source(path) as opened:
        return opened.size


def named_like_image(name: str) -> bool:
    """True when some kind claims files with this name's extension."""
    extension = os.path.splitext(name)[1].lower()
    return any(extension in kind.extensions for kind in KINDS)


def identity(path: str | os.PathLike) -> tuple[str, tuple[int, int]]:
    """(fingerprint, (width, height)) of an image file in one opening: what a project records
    when an item is opened. The fingerprint is the file's SHA-256 for photos and a cheap
    identity for slides (`SlideSource.fingerprint`: never gigabytes hashed)."""
    with open_source(path) as opened:
        return opened.fingerprint(), opened.size


def looks_like_image(path: str | os.PathLike, name: Optional[str] = None) -> bool:
    """True when some kind claims the file by its extension (nothing read) or else by its first
    bytes; unreadable files are not images. Listing a folder asks this of every file."""
    name = name if name is not None else os.fspath(path)
    if named_like_image(name):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return False
    return any(kind.magic(head) for kind in KINDS)


def companion_names(path: str | os.PathLike) -> list[str]:
    """Names of the entries beside the image file `path` that are parts of the same item (a
    MIRAX slide's folder, the files of a Hamamatsu VMS index), for kinds whose items are
    several files; [] otherwise. A folder listing shows such an item once, as `path`."""
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    for kind in KINDS:
        if kind.companions is not None and extension in kind.extensions:
            return kind.companions(path)
    return []
