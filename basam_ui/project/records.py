"""Rows of the images table as records: `ImageRecord`, `Progress`, and the SELECT that reads them."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Optional, Union

from ..sources.base import pixel_size_um
from .objects import LIVE

IMAGE_COLUMNS = (
    "i.id, i.path, i.width, i.height, i.sha256, i.current_sha256, i.missing, i.status, i.status_by, i.status_at, "
    f"(SELECT count(*) FROM objects o WHERE o.image_id = i.id AND {LIVE}), i.unreadable, i.frame, "
    "(SELECT count(*) FROM images j WHERE j.path = i.path), i.source, i.copies"
)
ITEM_ORDER = "i.path, i.frame"  # the project's order: by path, a file's frames in order


def path_for_db(path: str) -> Union[str, bytes]:
    """A path as the database stores it: text, or, for a file name that is not valid UTF-8
    (Python holds it with surrogate escapes, which SQLite text cannot), its raw bytes."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def path_from_db(value: Union[str, bytes]) -> str:
    """The inverse of `path_for_db`."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def display_path(path: str) -> str:
    """A path fit to show and to send as text (JSON, a terminal): a name that is not valid
    UTF-8 gets replacement characters where its bad bytes are."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass(frozen=True)
class ImageRecord:
    """One image (item) of the project. `changed`: its file's hash differs from the annotated
    one; `unreadable`: why its file could not be read when it was last opened (None: it
    could); `frame`: its frame in a multi-frame file (0-based; `frames` items share the file);
    `source`: its source's provenance (recorded when opened; the IDENTIFYING part is kept here,
    shown and written only where allowed: `sources.base.public_provenance`).
    `copies`: 2 for an image two annotators annotate independently (`--overlap`), else 1."""

    id: int
    path: str
    width: Optional[int]
    height: Optional[int]
    sha256: Optional[str]
    current_sha256: Optional[str]
    missing: bool
    status: str
    status_by: Optional[str]
    status_at: Optional[float]
    object_count: int
    unreadable: Optional[str] = None
    frame: int = 0
    frames: int = 1
    source: Optional[dict[str, Any]] = None
    copies: int = 1

    @property
    def changed(self) -> bool:
        return self.sha256 is not None and self.current_sha256 is not None and self.sha256 != self.current_sha256

    @property
    def display_name(self) -> str:
        """How the pages name the item: its path (`display_path`), with "[frame k of n]" for
        a frame of a multi-frame file (DICOM's 1-based frame numbers)."""
        name = display_path(self.path)
        return f"{name} [frame {self.frame + 1} of {self.frames}]" if self.frames > 1 else name

    @property
    def stem(self) -> str:
        """Its name in exports, without extension: the path without its extension, with
        "_f<frame number>" for a frame of a multi-frame file (frames.dcm frame 2: frames_f2)."""
        stem = str(PurePosixPath(self.path).with_suffix(""))
        return f"{stem}_f{self.frame + 1}" if self.frames > 1 else stem

    @property
    def pixel_size(self) -> Optional[tuple[float, float]]:
        """Microns per level-0 pixel (x, y) when its file says (a slide's mpp, a DICOM's pixel
        spacing), from the source facts recorded when it was opened; else None."""
        return pixel_size_um(self.source)


@dataclass(frozen=True)
class Progress:
    """Counts for the progress line: images by status, missing and changed files, objects."""

    total: int
    todo: int
    in_progress: int
    done: int
    skipped: int
    missing: int
    changed: int
    objects: int
    unreadable: int = 0
    reviewed: int = 0
    needs_work: int = 0


def image_from_row(row: tuple) -> ImageRecord:
    (iid, path, width, height, sha, current, missing, status, status_by, status_at, count, unreadable, frame, frames,
     source, copies) = row  # fmt: skip
    return ImageRecord(iid, path_from_db(path), width, height, sha, current, bool(missing), status, status_by,
                       status_at, int(count), unreadable, int(frame), int(frames),
                       json.loads(source) if source else None, int(copies))  # fmt: skip


def image_by_id(conn: sqlite3.Connection, image_id: int) -> ImageRecord:
    row = conn.execute(f"SELECT {IMAGE_COLUMNS} FROM images i WHERE i.id = ?", (image_id,)).fetchone()
    if row is None:
        raise KeyError(f"no image {image_id} in the project")
    return image_from_row(row)
