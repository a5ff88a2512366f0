"""The project database file: where it lives, how it is recognised, created and opened.

Ours is an SQLite file whose header carries `APPLICATION_ID` and whose `user_version` is the
schema version; an older schema is upgraded on open (`migrations`). Anything else at the path (another program's SQLite file, a corrupt file, a
text file) is refused with an error naming it, and never written to.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Optional, Sequence, Union

from .. import __version__
from . import migrations
from .migrations import SCHEMA_VERSION

APPLICATION_ID = 0x62534155  # "bSAU" in the SQLite header
DB_FOLDER = ".basam-ui"
DB_NAME = "project.sqlite"
DEFAULT_LABELS = ("object",)

PathLike = Union[str, os.PathLike]

_SQLITE_HEADER = b"SQLite format 3\x00"

class ProjectError(Exception):
    """A project cannot be opened or an operation on it is refused; the message says why."""


class ProjectDatabaseError(ProjectError):
    """The database file is not ours (foreign or corrupt); it is left untouched."""


def default_db_path(root: PathLike) -> Path:
    """DIR/.basam-ui/project.sqlite."""
    return Path(root) / DB_FOLDER / DB_NAME


def open_database(
    path: PathLike,
    *,
    create: bool = True,
    readonly: bool = False,
    labels: Optional[Sequence[str]] = None,
    hint: str = "",
) -> sqlite3.Connection:
    """Open (or, with `create`, make) the project database at `path`, in WAL mode with
    synchronous=FULL, autocommit (callers open their own transactions). With `readonly`, a
    database that cannot be written (read-only folder) is still opened, for reading.

    A new database gets `labels` (default: one class, "object"). Raises ProjectDatabaseError
    for a file that is not ours and ProjectError when it is missing (without `create`) or
    cannot be created; `hint` is added to the message when the folder is not writable.
    """
    path = Path(path)
    exists = path.is_file() and path.stat().st_size > 0
    if path.exists() and not path.is_file():
        raise ProjectDatabaseError(f"{path}: not a file, cannot hold a project database")
    if exists:
        _check_header(path)
    elif not create:
        raise ProjectError(f"{path}: no project database here (make one with `basam-ui annotate`)")
    else:
        _check_writable(path, hint)
    writable = os.access(path.parent, os.W_OK) and (not exists or os.access(path, os.W_OK))
    if not readonly and not writable:
        raise ProjectError(f"{path}: the project database is not writable{hint}")
    if not writable and Path(f"{path}-wal").exists():
        raise ProjectError(f"{path}: cannot be read without write access: its write-ahead log holds changes "
                           "not yet merged (open it once where it is writable)")
    try:
        if writable:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        else:  # read-only: no WAL files can be made next to it, so read it as an unchanging file
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True, isolation_level=None,
                                   check_same_thread=False)
        if exists:
            _check_ours(conn, path, writable)
        if writable:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        if not exists:
            _create(conn, labels or DEFAULT_LABELS)
        elif migrations.version(conn) < SCHEMA_VERSION:
            migrations.upgrade(conn)
    except sqlite3.DatabaseError as exc:
        if not exists:  # ours, half made: nothing of anyone's is lost by removing it
            conn.close()
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)
            raise
        raise ProjectDatabaseError(f"{path}: unreadable project database ({exc}); it was left untouched") from exc
    return conn


def _check_header(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(len(_SQLITE_HEADER))
    if head != _SQLITE_HEADER:
        raise ProjectDatabaseError(
            f"{path}: not a basam-ui project database (not an SQLite file, or corrupt); it was left "
            "untouched: move it away or pass --db with another path"
        )


def _check_ours(conn: sqlite3.Connection, path: Path, writable: bool) -> None:
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if application_id != APPLICATION_ID:
        conn.close()
        raise ProjectDatabaseError(
            f"{path}: an SQLite database of another program (application_id {application_id:#x}), not a "
            "basam-ui project; it was left untouched: pass --db with another path"
        )
    if version > SCHEMA_VERSION:
        conn.close()
        raise ProjectDatabaseError(
            f"{path}: made by a newer basam-ui (schema {version}, this one reads up to {SCHEMA_VERSION})"
        )
    if version < SCHEMA_VERSION and not writable:
        conn.close()
        raise ProjectError(f"{path}: made by an older basam-ui (schema {version}); open it once where it is "
                           f"writable, so that it can be upgraded to schema {SCHEMA_VERSION}")
    # the small tables only: checking every object's mask would read the whole file (seconds
    # for a big project on a cold disk); damage there is reported when it is read
    for table in ("meta", "labels", "images", "claims"):
        problem = conn.execute(f"PRAGMA quick_check({table})").fetchone()[0]
        if problem != "ok":
            break
    if problem != "ok":
        conn.close()
        raise ProjectDatabaseError(f"{path}: the project database is corrupt ({problem}); it was left untouched")


def _check_writable(path: Path, hint: str) -> None:
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(f"cannot create the project database {path}: {exc.strerror or exc}{hint}") from exc
    if not os.access(folder, os.W_OK):
        raise ProjectError(f"cannot create the project database {path}: {folder} is not writable{hint}")


def _create(conn: sqlite3.Connection, labels: Sequence[str]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        migrations.create(conn)
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("created_at", str(time.time())), ("created_by", f"basam-ui {__version__}")],
        )
        conn.executemany(
            "INSERT INTO labels (name, position) VALUES (?, ?)", [(name, i) for i, name in enumerate(labels)]
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
