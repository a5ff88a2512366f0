"""The project's image files: listing the folder into the database, reading what a file can
tell without decoding pixels (size, content hash) when an image is opened, and the flags that
follow: *missing* (the file has gone), *changed* (its content differs from the annotated one),
*unreadable* (it is there but cannot be read, with the reason). Mixed into `Project`, whose
`_transaction`, `_clock`, `root` and `claim_ttl` it uses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..sources import ImageReadError, ImageTooLargeError, open_source
from . import claims as _claims
from .objects import LIVE
from .records import ImageRecord, image_by_id, path_for_db, path_from_db
from .scan import ScanResult


@dataclass(frozen=True)
class FileState:
    """What opening an image's file found: its size and fingerprint, or that it is missing, or
    why it is unreadable."""

    size: Optional[tuple[int, int]] = None
    digest: Optional[str] = None
    missing: bool = False
    unreadable: Optional[str] = None
    pixel_size: Optional[tuple[float, float]] = None  # microns per pixel, when the file says


def inspect_file(root: Path, relative: str) -> FileState:
    """Open the image's file through its image source (its header only: no pixels decoded) and
    say what it is. Every failure to read it becomes a reason in words, never an exception."""
    path = root / relative
    try:
        with open_source(path) as source:
            source.check()
            return FileState(size=source.size, digest=source.fingerprint(), pixel_size=source.pixel_size)
    except FileNotFoundError:
        if path.is_symlink():
            return FileState(unreadable=f"a link to {os.readlink(path)}, which does not exist")
        return FileState(missing=True)
    except IsADirectoryError:
        return FileState(unreadable="a folder, not an image file")
    except PermissionError:
        return FileState(unreadable="no permission to read the file")
    except (ImageReadError, ImageTooLargeError) as exc:
        return FileState(unreadable=str(exc).replace(str(path), relative).replace(f"{relative}: ", "", 1))
    except OSError as exc:
        return FileState(unreadable=f"could not read the file ({exc.strerror or exc})")


class ImageFiles:
    """The file operations of `Project`."""

    def sync(self, scan: ScanResult) -> tuple[int, int]:
        """Add the scanned images the database lacks and mark the ones not found as missing
        (and found again as present).

        Arguments:
          scan: a listing of the project folder (`scan.scan_folder`).

        Returns:
          (images added, images missing now).
        """
        found = set(scan.images)
        with self._transaction() as conn:
            known = dict(conn.execute("SELECT path, missing FROM images"))
            known = {path_from_db(p): (p, m) for p, m in known.items()}
            new = [(path_for_db(p),) for p in scan.images if p not in known]
            conn.executemany("INSERT INTO images (path) VALUES (?)", new)
            flips = [(int(p not in found), stored) for p, (stored, missing) in known.items()
                     if bool(missing) != (p not in found)]  # fmt: skip
            conn.executemany("UPDATE images SET missing = ? WHERE path = ?", flips)
            missing = conn.execute("SELECT count(*) FROM images WHERE missing = 1").fetchone()[0]
        return len(new), int(missing)

    def file_path(self, image: ImageRecord) -> Path:
        """Where the image's file is (or was)."""
        return self.root / image.path

    def open_image(
        self, image_id: int, holder: Optional[str] = None, annotator: str = ""
    ) -> tuple[ImageRecord, Optional[str]]:
        """Record that the image is being opened and claim it.

        Its file's size (from the header) and content hash are recorded: the first hash is kept
        as the annotated one; a later different hash marks the image changed when it has
        objects. A file that has gone is marked missing; one that is there but cannot be read
        is marked unreadable with the reason (its status is kept); one that reads again clears
        the flag. Nothing about the file raises.

        Arguments:
          image_id: the image.
          holder: the browser session opening it (None: look without claiming).
          annotator: the name shown to other sessions while it is claimed.

        Returns:
          (the image as recorded now, the annotator of another live session holding it, or None).
        """
        state = inspect_file(self.root, self.image(image_id).path)
        now = self._clock()
        with self._transaction() as conn:
            image = image_by_id(conn, image_id)  # as it is now, with the file read
            other = None if holder is None else _claims.claim(conn, image_id, holder, annotator, now, self.claim_ttl)
            if state.missing:
                conn.execute("UPDATE images SET missing = 1 WHERE id = ?", (image_id,))
            elif state.unreadable is not None:
                conn.execute("UPDATE images SET unreadable = ?, missing = 0 WHERE id = ?", (state.unreadable, image_id))
            elif image.sha256 is None or (state.digest != image.sha256 and image.object_count == 0):
                conn.execute(
                    "UPDATE images SET width = ?, height = ?, sha256 = ?, current_sha256 = ?, missing = 0, "
                    "unreadable = NULL WHERE id = ?",
                    (*state.size, state.digest, state.digest, image_id),
                )
            else:
                conn.execute("UPDATE images SET current_sha256 = ?, missing = 0, unreadable = NULL WHERE id = ?",
                             (state.digest, image_id))  # fmt: skip
            if state.pixel_size is not None and not image.changed:
                conn.execute("UPDATE images SET mpp_x = ?, mpp_y = ? WHERE id = ?", (*state.pixel_size, image_id))
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
        state = inspect_file(self.root, image.path)
        if state.size is None:
            raise ImageReadError(f"{image.path}: {state.unreadable or 'the file is missing'}")
        with self._transaction() as conn:
            if not keep_objects:
                conn.execute(
                    f"UPDATE objects AS o SET deleted_at = ? WHERE o.image_id = ? AND {LIVE}", (self._clock(), image_id)
                )
            conn.execute(
                "UPDATE images SET sha256 = current_sha256, width = ?, height = ? WHERE id = ?",
                (*state.size, image_id),
            )
            return image_by_id(conn, image_id)

