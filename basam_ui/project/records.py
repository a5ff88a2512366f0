"""Rows of the images table as records: `ImageRecord`, `Progress`, and the SELECT that reads them."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Optional

from .objects import LIVE

IMAGE_COLUMNS = (
    "i.id, i.path, i.width, i.height, i.sha256, i.current_sha256, i.missing, i.status, i.status_by, i.status_at, "
    f"(SELECT count(*) FROM objects o WHERE o.image_id = i.id AND {LIVE})"
)


@dataclass(frozen=True)
class ImageRecord:
    """One image of the project. `changed`: its file's hash differs from the annotated one."""

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

    @property
    def changed(self) -> bool:
        return self.sha256 is not None and self.current_sha256 is not None and self.sha256 != self.current_sha256


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


def image_from_row(row: tuple) -> ImageRecord:
    (iid, path, width, height, sha, current, missing, status, status_by, status_at, count) = row
    return ImageRecord(iid, path, width, height, sha, current, bool(missing), status, status_by, status_at, int(count))


def image_by_id(conn: sqlite3.Connection, image_id: int) -> ImageRecord:
    row = conn.execute(f"SELECT {IMAGE_COLUMNS} FROM images i WHERE i.id = ?", (image_id,)).fetchone()
    if row is None:
        raise KeyError(f"no image {image_id} in the project")
    return image_from_row(row)
