"""The project's image files: listing the folder into the database (one item per frame of a
multi-frame file), reading what a file can tell without decoding pixels (size, fingerprint,
the source's provenance) when an image is opened, and the flags that follow: *missing* (the
file has gone), *changed* (its content differs from the annotated one), *unreadable* (it is
there but cannot be read, with the reason). Mixed into `Project`, whose `_transaction`,
`_clock`, `root` and `claim_ttl` it uses."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..sources import ImageReadError, ImageTooLargeError, frame_count, open_source
from . import claims as _claims
from .objects import LIVE
from .records import ImageRecord, image_by_id, path_for_db, path_from_db
from .scan import ScanResult


@dataclass(frozen=True)
class FileState:
    """What opening an image's file found: its size, fingerprint and source provenance, or
    that it is missing, or why it is unreadable."""

    size: Optional[tuple[int, int]] = None
    digest: Optional[str] = None
    missing: bool = False
    unreadable: Optional[str] = None
    provenance: Optional[dict[str, Any]] = None
    plain_file: bool = True  # an ordinary image file that may be linked or copied (`ImageSource.plain_file`)
    frames: int = 1  # items (frames) the file holds


def inspect_file(root: Path, relative: str, frame: int = 0) -> FileState:
    """Open the item's file (frame `frame` of a multi-frame file) through its image source (its
    header only: no pixels decoded) and say what it is. Every failure to read it becomes a
    reason in words, never an exception."""
    path = root / relative
    try:
        with open_source(path, frame=frame) as source:
            source.check()
            return FileState(size=source.size, digest=source.fingerprint(), provenance=source.provenance(),
                             plain_file=source.plain_file and source.frames == 1, frames=source.frames)
    except FileNotFoundError:
        if path.is_symlink():
            return FileState(unreadable=f"a link to {os.readlink(path)}, which does not exist")
        return FileState(missing=True)
    except IsADirectoryError:
        return FileState(unreadable="a folder, not an image file")
    except PermissionError:
        return FileState(unreadable="no permission to read the file")
    except (ImageReadError, ImageTooLargeError) as exc:
        # the reader names the file (and the frame); the project lists the item by its path
        reason = str(exc).replace(str(path), relative)
        return FileState(unreadable=re.sub(rf"^{re.escape(relative)}( \[frame \d+ of \d+\])?: ", "", reason, count=1))
    except OSError as exc:
        return FileState(unreadable=f"could not read the file ({exc.strerror or exc})")


def items_in(path: Path) -> int:
    """How many items the file at `path` holds (its frames, from its header); 1 for a file that
    can't be read, which opening it then explains."""
    try:
        return max(1, frame_count(path))
    except (OSError, ValueError):  # missing, a folder, unreadable (ImageReadError is a ValueError)
        return 1


class ImageFiles:
    """The file operations of `Project`."""

    def sync(self, scan: ScanResult) -> tuple[int, int]:
        """Add the scanned images the database lacks (a multi-frame file as one item per frame,
        counted from its header) and mark the ones not found as missing (and found again as
        present).

        Arguments:
          scan: a listing of the project folder (`scan.scan_folder`).

        Returns:
          (items added, items missing now).
        """
        found = set(scan.images)
        with self._transaction("DEFERRED") as conn:
            known_paths = {path_from_db(p) for (p,) in conn.execute("SELECT DISTINCT path FROM images")}
        # headers read outside the transaction: only for files new to the project
        new = [(path_for_db(p), frame) for p in scan.images if p not in known_paths
               for frame in range(items_in(scan.root / p))]  # fmt: skip
        with self._transaction() as conn:
            known = {path_from_db(p): (p, m) for p, m in conn.execute("SELECT path, max(missing) FROM images GROUP BY path")}
            conn.executemany("INSERT OR IGNORE INTO images (path, frame) VALUES (?, ?)", new)
            flips = [(int(p not in found), stored) for p, (stored, missing) in known.items()
                     if bool(missing) != (p not in found)]  # fmt: skip
            conn.executemany("UPDATE images SET missing = ? WHERE path = ?", flips)
            missing = conn.execute("SELECT count(*) FROM images WHERE missing = 1").fetchone()[0]
        return len(new), int(missing)

    def file_path(self, image: ImageRecord) -> Path:
        """Where the image's file is (or was); a frame of a multi-frame file is `image.frame` of it."""
        return self.root / image.path

    def open_image(
        self, image_id: int, holder: Optional[str] = None, annotator: str = ""
    ) -> tuple[ImageRecord, Optional[str]]:
        """Record that the image is being opened and claim it.

        Its file's size (from the header) and content hash are recorded: the first hash is kept
        as the annotated one; a later different hash marks the image changed when it has
        objects. A file that has gone is marked missing; one that is there but cannot be read
        is marked unreadable with the reason (its status is kept); one that reads again clears
        the flag. The source's provenance is recorded with the first hash. A multi-frame file
        listed as one item (by a project older than frames as items) gets its other frames as
        items. Nothing about the file raises.

        Arguments:
          image_id: the image.
          holder: the browser session opening it (None: look without claiming).
          annotator: the name shown to other sessions while it is claimed.

        Returns:
          (the image as recorded now, the annotator of another live session holding it, or None).
        """
        opened = self.image(image_id)
        state = inspect_file(self.root, opened.path, opened.frame)
        now = self._clock()
        with self._transaction() as conn:
            image = image_by_id(conn, image_id)  # as it is now, with the file read
            if state.frames > image.frames:  # listed before its frames were items (an older project)
                conn.executemany("INSERT OR IGNORE INTO images (path, frame) VALUES (?, ?)",
                                 [(path_for_db(image.path), k) for k in range(state.frames)])  # fmt: skip
            other = None if holder is None else _claims.claim(conn, image_id, holder, annotator, now, self.claim_ttl)
            if state.missing:
                conn.execute("UPDATE images SET missing = 1 WHERE id = ?", (image_id,))
            elif state.unreadable is not None:
                conn.execute("UPDATE images SET unreadable = ?, missing = 0 WHERE id = ?", (state.unreadable, image_id))
            elif image.sha256 is None or (state.digest != image.sha256 and image.object_count == 0):
                conn.execute(
                    "UPDATE images SET width = ?, height = ?, sha256 = ?, current_sha256 = ?, missing = 0, "
                    "unreadable = NULL, source = ? WHERE id = ?",
                    (*state.size, state.digest, state.digest, json.dumps(state.provenance), image_id),
                )
            else:  # the source facts of the annotated file are kept until a changed file is accepted
                conn.execute("UPDATE images SET current_sha256 = ?, missing = 0, unreadable = NULL, "
                             "source = coalesce(source, ?) WHERE id = ?",
                             (state.digest, json.dumps(state.provenance), image_id))  # fmt: skip
            return image_by_id(conn, image_id), other

    def mark_unreadable(self, image_id: int, reason: str) -> ImageRecord:
        """Flag the image unreadable: its header read but its pixels did not (a truncated file,
        a decompression bomb), as the page found when it decoded them. Its status is kept;
        opening it again after the file is fixed clears the flag.

        Arguments:
          image_id: the image.
          reason: why, in words (the reader's message).

        Returns:
          The image as recorded now.
        """
        with self._transaction() as conn:
            conn.execute("UPDATE images SET unreadable = ? WHERE id = ?", (str(reason) or "unreadable", image_id))
            return image_by_id(conn, image_id)

    def resolve_changed(self, image_id: int, keep_objects: bool) -> ImageRecord:
        """Accept a changed file as the image from now on.

        Arguments:
          image_id: the image marked changed.
          keep_objects: keep its objects (the change moved nothing) or delete them (they
            belonged to the old picture).

        Returns:
          The image as recorded now. Raises ImageReadError when the new file can't be read.
        """
        image = self.image(image_id)
        if not image.changed:
            return image
        state = inspect_file(self.root, image.path, image.frame)
        if state.size is None:
            raise ImageReadError(f"{image.display_name}: {state.unreadable or 'the file is missing'}")
        with self._transaction() as conn:
            if not keep_objects:
                conn.execute(
                    f"UPDATE objects AS o SET deleted_at = ? WHERE o.image_id = ? AND {LIVE}", (self._clock(), image_id)
                )
            conn.execute(
                "UPDATE images SET sha256 = current_sha256, width = ?, height = ?, source = ? WHERE id = ?",
                (*state.size, json.dumps(state.provenance), image_id),
            )
            return image_by_id(conn, image_id)

