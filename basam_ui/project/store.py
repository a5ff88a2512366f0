"""`Project`: a folder of images and its SQLite database, with every operation the annotate
page needs. Each change runs in its own transaction (WAL, synchronous=FULL), so a killed
server loses nothing whose call had returned. Safe to share between threads."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

from ..vocabulary import STATUSES
from . import claims as _claims
from .claims import DEFAULT_CLAIM_TTL
from .editing import ObjectEditing
from .files import ImageFiles
from .importing import ImportStore
from .objects import LIVE
from .proposals import ProposalStore
from .records import IMAGE_COLUMNS, ITEM_ORDER, ImageRecord, Progress, image_by_id, image_from_row, path_for_db
from .review import ReviewStore, status_after_mark
from .scan import ScanResult, scan_folder
from .schema import ProjectDatabaseError, ProjectError, default_db_path, open_database

PathLike = Union[str, os.PathLike]


class Project(ImageFiles, ObjectEditing, ProposalStore, ImportStore, ReviewStore):
    """A project folder and its database. Open with `Project.open`; close when done."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        root: PathLike,
        db_path: PathLike,
        *,
        claim_ttl: float = DEFAULT_CLAIM_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root)
        self.db_path = Path(db_path)
        self.claim_ttl = float(claim_ttl)
        self._conn = conn
        self._clock = clock
        self._lock = threading.RLock()
        self.last_scan: Optional[ScanResult] = None  # the folder listing of `open`, when it scanned

    @classmethod
    def open(
        cls,
        root: PathLike,
        db: Optional[PathLike] = None,
        *,
        labels: Optional[Sequence[str]] = None,
        create: bool = True,
        readonly: bool = False,
        scan: bool = True,
        claim_ttl: float = DEFAULT_CLAIM_TTL,
        clock: Callable[[], float] = time.time,
    ) -> "Project":
        """Open the project of a folder (its database made on first use, an older schema upgraded).

        Arguments:
          root: the folder of images.
          db: the database file (default DIR/.basam-ui/project.sqlite).
          labels: class names; a new database gets them (default ["object"]), an existing one
            gains those it lacks.
          create: make the database when there is none (else ProjectError).
          readonly: open a database that cannot be written (a read-only folder), for reading.
          scan: list the folder (nothing decoded), adding new images and marking vanished ones
            missing (see `last_scan`).
          claim_ttl: seconds of inactivity after which a session's claim lapses.
          clock: the time source (tests pass their own).

        Returns:
          The open Project (close it, or use it as a context manager). Raises ProjectError /
          ProjectDatabaseError with the reason.
        """
        root = Path(root)
        if not root.is_dir():
            raise ProjectError(f"{root}: no such folder")
        db_path = Path(db) if db is not None else default_db_path(root)
        hint = "; pass --db PATH to keep the project database elsewhere" if db is None else ""
        conn = open_database(db_path, create=create, readonly=readonly, labels=labels, hint=hint)
        project = cls(conn, root, db_path, claim_ttl=claim_ttl, clock=clock)
        if labels and not readonly:
            project.add_labels(labels)
        if scan and not readonly:
            project.last_scan = scan_folder(root)
            project.sync(project.last_scan)
        return project

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE (a change; DEFERRED: a consistent snapshot for several reads) ...
        COMMIT, ROLLBACK on error; one thread at a time. Inside another transaction, it joins
        that one. A damaged database file raises ProjectDatabaseError naming it; a change that
        could not be written (a full disk, a read-only file) raises ProjectError saying so, and
        nothing of it is kept."""
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn
                return
            try:
                self._conn.execute(f"BEGIN {mode}")
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                raise self._not_saved(exc) from exc
            except sqlite3.DatabaseError as exc:
                if type(exc) is not sqlite3.DatabaseError:  # constraint, ...: not damage
                    raise
                raise ProjectDatabaseError(f"{self.db_path}: the project database is damaged ({exc})") from exc

    def _not_saved(self, exc: sqlite3.OperationalError) -> Exception:
        """A change SQLite could not write, as one sentence (or `exc` itself when it is none of
        the known causes)."""
        text = str(exc).lower()
        causes = (("full", "the disk is full: free some space and do it again"),
                  ("readonly", "the project database is read-only"),
                  ("read-only", "the project database is read-only"),
                  ("i/o", "the disk could not be written (an I/O error)"),
                  ("locked", "the project database is busy (another program holds it): try again"))  # fmt: skip
        for key, why in causes:
            if key in text:
                return ProjectError(f"{self.db_path}: not saved: {why}. Nothing of this change was written.")
        return exc

    # -- folder ---------------------------------------------------------------------------

    # -- labels ---------------------------------------------------------------------------

    def labels(self) -> list[str]:
        """Class names in order (the page's keys 1-9 select the first nine)."""
        with self._transaction("DEFERRED") as conn:
            return [name for (name,) in conn.execute("SELECT name FROM labels ORDER BY position, id")]

    def add_labels(self, names: Sequence[str]) -> list[str]:
        """Append the classes not there yet (blank names refused); returns every class name."""
        cleaned = [str(n).strip() for n in names]
        if any(not n for n in cleaned):
            raise ValueError(f"class names must not be blank, got {list(names)!r}")
        with self._transaction() as conn:
            position = conn.execute("SELECT coalesce(max(position), -1) FROM labels").fetchone()[0]
            for name in dict.fromkeys(cleaned):
                if conn.execute("SELECT 1 FROM labels WHERE name = ?", (name,)).fetchone() is None:
                    position += 1
                    conn.execute("INSERT INTO labels (name, position) VALUES (?, ?)", (name, position))
        return self.labels()

    def _label_id(self, conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT id FROM labels WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ValueError(f"unknown class {name!r}; add it first (classes: {self.labels()})")
        return int(row[0])

    # -- images ---------------------------------------------------------------------------

    def images(self) -> list[ImageRecord]:
        """Every image (item), in path order (a file's frames in order), with its live object count."""
        with self._transaction("DEFERRED") as conn:
            rows = conn.execute(f"SELECT {IMAGE_COLUMNS} FROM images i ORDER BY {ITEM_ORDER}").fetchall()
        return [image_from_row(row) for row in rows]

    def image(self, image_id: int) -> ImageRecord:
        with self._transaction("DEFERRED") as conn:
            return image_by_id(conn, image_id)

    def image_by_path(self, path: str, frame: int = 0) -> ImageRecord:
        """The item of file `path` (frame `frame`, 0-based, of a multi-frame file); KeyError for none."""
        with self._transaction("DEFERRED") as conn:
            row = conn.execute(f"SELECT {IMAGE_COLUMNS} FROM images i WHERE i.path = ? AND i.frame = ?",
                               (path_for_db(path), int(frame))).fetchone()  # fmt: skip
        if row is None:
            raise KeyError(f"no image {path!r}{f' frame {frame + 1}' if frame else ''} in the project")
        return image_from_row(row)

    def set_status(
        self, image_id: int, status: str, annotator: str = "", holder: Optional[str] = None
    ) -> Optional[ImageRecord]:
        """Set an image's status, recording who and when.

        Arguments:
          image_id: the image.
          status: one of `vocabulary.STATUSES` ("done" on an image of two copies is this
            annotator's copy: the image is done when both are).
          annotator: who set it.
          holder: the session; for done and skipped, the next image to do is claimed for it.

        Returns:
          The next image to do, claimed (done/skipped with a holder; None when none is left),
          else None.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        now = self._clock()
        with self._transaction() as conn:
            here = image_by_id(conn, image_id)
            conn.execute(
                "UPDATE images SET status = ?, status_by = ?, status_at = ? WHERE id = ?",
                (status_after_mark(conn, image_id, status, annotator, now), annotator, now, image_id),
            )
            if holder is None or status not in ("done", "skipped"):
                return None
            return self._claim_next(conn, holder, annotator, now, here)

    def next_todo(
        self, holder: Optional[str], annotator: str = "", after: Optional[int] = None, *, claim: bool = True
    ) -> Optional[ImageRecord]:
        """The next image to do: after image `after` in path order, wrapping round, skipping
        images held by other live sessions.

        Arguments:
          holder: the session asking (it gets the claim).
          annotator: its name, shown to other sessions.
          after: the image to start after (None: from the first).
          claim: False only looks it up (e.g. to encode it ahead).

        Returns:
          The image, or None when nothing is left to do.
        """
        now = self._clock()
        with self._transaction() as conn:
            here = None if after is None else image_by_id(conn, after)
            return self._claim_next(conn, holder if claim else None, annotator, now, here, holder)

    def _claim_next(
        self,
        conn: sqlite3.Connection,
        holder: Optional[str],
        annotator: str,
        now: float,
        after: Optional[ImageRecord],
        asker: Optional[str] = None,
    ) -> Optional[ImageRecord]:
        image_id = _claims.next_todo_id(conn, asker or holder, now, self.claim_ttl, after and after.path,
                                        after.frame if after else 0, annotator)  # fmt: skip
        if image_id is None:
            return None
        if holder is not None:
            _claims.claim(conn, image_id, holder, annotator, now, self.claim_ttl)
        return image_by_id(conn, image_id)

    def neighbour(self, image_id: int, step: int) -> Optional[ImageRecord]:
        """A neighbour in path order.

        Arguments:
          image_id: where to start.
          step: how many places after (negative: before).

        Returns:
          The image, or None past either end.
        """
        with self._transaction("DEFERRED") as conn:
            here = image_by_id(conn, image_id)
            op, order = (">", "ASC") if step > 0 else ("<", "DESC")
            row = conn.execute(
                f"SELECT {IMAGE_COLUMNS} FROM images i WHERE (i.path, i.frame) {op} (?, ?) "
                f"ORDER BY i.path {order}, i.frame {order} LIMIT 1 OFFSET ?",
                (path_for_db(here.path), here.frame, abs(step) - 1),
            ).fetchone()
        return None if row is None or step == 0 else image_from_row(row)

    def claimed_by_others(self, holder: Optional[str]) -> dict[int, str]:
        """{image id: annotator} of images other live sessions hold (for the image list)."""
        with self._transaction("DEFERRED") as conn:
            return _claims.claimed_by_others(conn, holder, self._clock(), self.claim_ttl)

    def touch(self, holder: str) -> None:
        """Keep `holder`'s claim alive."""
        with self._transaction() as conn:
            _claims.touch(conn, holder, self._clock())

    def release(self, holder: str) -> None:
        """Give up `holder`'s claim."""
        with self._transaction() as conn:
            _claims.release(conn, holder)

    def progress(self) -> Progress:
        """Images per status, missing and changed files, live objects."""
        with self._transaction("DEFERRED") as conn:
            counts = dict(conn.execute("SELECT status, count(*) FROM images GROUP BY status"))
            missing, changed, unreadable = conn.execute(
                "SELECT coalesce(sum(missing), 0), coalesce(sum(current_sha256 IS NOT NULL AND sha256 IS NOT NULL "
                "AND current_sha256 != sha256), 0), count(unreadable) FROM images"
            ).fetchone()
            objects = conn.execute(f"SELECT count(*) FROM objects o WHERE {LIVE}").fetchone()[0]
        return Progress(
            total=sum(counts.values()), todo=counts.get("todo", 0), in_progress=counts.get("in_progress", 0),
            done=counts.get("done", 0), skipped=counts.get("skipped", 0), missing=int(missing),
            changed=int(changed), objects=int(objects), unreadable=int(unreadable),
            reviewed=counts.get("reviewed", 0), needs_work=counts.get("needs_work", 0),
        )
