"""Schema 2: `images.unreadable`, why an image's file could not be read (NULL: it could).

A flag beside `missing`, not a status: the annotator's status is kept, "next to do" skips the
image, and opening it again after the file is fixed clears the flag.
"""

from __future__ import annotations

import sqlite3

VERSION = 2


def upgrade(conn: sqlite3.Connection) -> None:
    """Add the column (inside the caller's transaction)."""
    conn.execute("ALTER TABLE images ADD COLUMN unreadable TEXT")
