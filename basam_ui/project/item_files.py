"""Putting an item's image beside an export: its file, linked or copied, when that file is an
ordinary image other programs read (a photo); otherwise its pixels as a PNG (a DICOM frame: the
file would carry patient data out of the project, and a multi-frame file is several items),
rendered under the display window its objects were made under."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..sources import ImageReadError, ImageTooLargeError, open_source
from .objects import ObjectRecord


@dataclass(frozen=True)
class ItemFile:
    """Where an item's pixels come from: its file, its frame, whether the file itself may be
    handed out (`plain`), and the window to render it under (a `Window` key; None: default)."""

    path: Path
    frame: int = 0
    plain: bool = True
    window: Optional[str] = None

    @property
    def suffix(self) -> str:
        """The extension the placed image gets: the file's own, or .png for rendered pixels."""
        return self.path.suffix if self.plain else ".png"


def objects_window(objects: Sequence[ObjectRecord]) -> Optional[str]:
    """The window key most of `objects` were made under (the latest among equals); None when
    none has one."""
    keys = [o.provenance.window["key"] for o in objects if o.provenance.window]
    if not keys:
        return None
    counts = Counter(keys)
    return max(reversed(keys), key=lambda k: counts[k])


def place_image(source: Path, target: Path, copy: bool) -> bool:
    """Put the image file at `target`: a copy, or a link to the original's absolute path (a
    copy where links can't be made). False when the original can't be read."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not source.is_file():
        return False
    if not copy:
        try:
            os.symlink(source.resolve(), target)
            return True
        except OSError:  # a filesystem without links: copy instead
            pass
    try:
        shutil.copyfile(source, target)
    except OSError:
        return False
    return True


def place_item(item: ItemFile, target_stem: Path, copy: bool) -> Optional[Path]:
    """Put the item's image at `target_stem` + `item.suffix`: the file linked or copied (`copy`)
    when it is plain, else its pixels written as a PNG.

    Returns:
      The path written, or None when the file is missing or can't be read.
    """
    target = target_stem.parent / (target_stem.name + item.suffix)
    if item.path == target:  # already in its place (a slide's patch the export wrote there)
        return target if target.is_file() else None
    if item.plain:
        return target if place_image(item.path, target, copy) else None
    from .labelmap import write_png

    try:
        with open_source(item.path, frame=item.frame) as source:
            rgb = source.with_window(item.window).read()
    except (OSError, ValueError, ImageReadError, ImageTooLargeError):
        return None
    return write_png(rgb[..., ::-1], target)  # OpenCV writes BGR
