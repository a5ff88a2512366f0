"""Listing a project folder: image files by extension (or a 16-byte sniff), nothing decoded.

`scan_folder(DIR)` walks DIR recursively and returns the image paths relative to DIR (POSIX
separators, sorted) and the other files as skipped. Hidden files and folders (names starting
with ".", which includes the default database folder `.basam-ui`) are not listed, nor are
folders holding an `EXPORT_MARKER` file (exports written inside the project folder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

# the extensions of the formats `basam_ui.image_io.load_image` reads (PNG, JPEG incl. MPO,
# TIFF, BMP, WebP, GIF)
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".tif", ".tiff", ".bmp", ".dib", ".webp", ".gif"}
)

# leading bytes of those formats, for files whose name has no image extension
_MAGIC = (
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

EXPORT_MARKER = ".basam-ui-export"

PathLike = Union[str, os.PathLike]


@dataclass
class ScanResult:
    """What a folder holds: `images` and `skipped` are paths relative to the root, sorted."""

    root: Path
    images: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def looks_like_image(path: PathLike, name: Optional[str] = None) -> bool:
    """True when the file name has an image extension, else when its first bytes are an
    image signature (reads at most 16 bytes; unreadable files are not images)."""
    name = name if name is not None else os.fspath(path)
    if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return head.startswith(_MAGIC)


def scan_folder(root: PathLike) -> ScanResult:
    """Every file under `root` (recursively, not following folder links), split into images
    and skipped files. Raises NotADirectoryError / FileNotFoundError for a bad root."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    result = ScanResult(root=root)
    stack = [""]
    while stack:
        prefix = stack.pop()
        try:
            entries = list(os.scandir(root / prefix if prefix else root))
        except OSError:
            result.skipped.append(prefix or ".")
            continue
        if prefix and any(entry.name == EXPORT_MARKER for entry in entries):
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{prefix}/{entry.name}" if prefix else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file()
            except OSError:
                is_dir = is_file = False
            if is_dir:
                stack.append(rel)
            elif is_file and looks_like_image(entry.path, entry.name):
                result.images.append(rel)
            else:
                result.skipped.append(rel)
    result.images.sort()
    result.skipped.sort()
    return result


def header_size(path: PathLike) -> tuple[int, int]:
    """(width, height) of the image upright, as `load_image` returns it (EXIF orientations
    5-8 swap the sides), read from the header: no pixels are decoded."""
    from PIL import Image, UnidentifiedImageError

    from ..image_io import SUPPORTED_FORMATS, ImageReadError

    try:
        with Image.open(path, formats=SUPPORTED_FORMATS) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc})") from exc
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)
