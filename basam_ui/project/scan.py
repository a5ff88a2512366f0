"""Listing a project folder: image files by extension (or their first bytes), nothing decoded.

`scan_folder(DIR)` walks DIR recursively and returns the image paths relative to DIR (POSIX
separators, sorted) and the other files as skipped. Hidden files and folders (names starting
with ".", which includes the default database folder `.basam-ui`) are not listed, nor are
folders holding an `EXPORT_MARKER` file (exports written inside the project folder). An item
made of several files (a MIRAX slide `X.mrxs` with its folder `X`, a Hamamatsu `.vms` index
with its image files) is listed once, as its main file; its other parts are neither listed
nor skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from ..sources import companion_names, looks_like_image, named_like_image

EXPORT_MARKER = ".basam-ui-export"

PathLike = Union[str, os.PathLike]


@dataclass
class ScanResult:
    """What a folder holds: `images` and `skipped` are paths relative to the root, sorted."""

    root: Path
    images: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


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
        parts = {name for entry in entries if not entry.name.startswith(".") for name in _companions(entry)}
        for entry in entries:
            if entry.name.startswith(".") or entry.name in parts:
                continue
            rel = f"{prefix}/{entry.name}" if prefix else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file()
            except OSError:
                is_dir = is_file = False
            if named_like_image(entry.name) and not is_file:
                # a folder or a broken link named like an image: listed, so that opening it
                # says why it can't be read, rather than left out without a word
                result.images.append(rel)
            elif is_dir:
                stack.append(rel)
            elif is_file and looks_like_image(entry.path, entry.name):
                result.images.append(rel)
            else:
                result.skipped.append(rel)
    result.images.sort()
    result.skipped.sort()
    return result


def _companions(entry: os.DirEntry) -> list[str]:
    """The other parts of a multi-file item whose main file is `entry` ([] for most files)."""
    try:
        return companion_names(entry.path) if entry.is_file() else []
    except OSError:
        return []
