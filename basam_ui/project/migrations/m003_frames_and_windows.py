"""Schema 3: multi-frame files as several items, each item's source facts, each object's window.

- `images.frame`: the item's frame in its file, 0-based (0 for single-frame files). An item is
  (path, frame): UNIQUE(path) becomes UNIQUE(path, frame). SQLite cannot change a table's
  constraints in place, so `images` is rebuilt (a new table, the rows copied with their ids,
  the old one dropped, the new one renamed): the runner runs this migration with foreign keys
  off (`FOREIGN_KEYS_OFF`) and checks `PRAGMA foreign_key_check` before it commits.
- `images.source`: the item's source provenance as JSON (kind, modality, pixel spacing and
  where it came from, frame, window, and under "identifying" the DICOM UIDs: kept here, shown
  and written only where allowed), recorded when the item is opened.
- `objects.window`: the display window the object's mask was made under, as JSON
  (`Window.record()`: key, name, function, centre, width), NULL for images without windows.
"""

from __future__ import annotations

import sqlite3

VERSION = 3
FOREIGN_KEYS_OFF = True  # the images table is rebuilt while objects and claims refer to it

IMAGES = """
CREATE TABLE images_v3 (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,                 -- relative to the project folder, '/' separators
    frame INTEGER NOT NULL DEFAULT 0,   -- the item's frame in its file, 0-based
    width INTEGER,                      -- upright size, recorded when first opened
    height INTEGER,
    sha256 TEXT,                        -- content fingerprint when first opened (the annotated file)
    current_sha256 TEXT,                -- fingerprint when last opened (differs from sha256: changed)
    missing INTEGER NOT NULL DEFAULT 0, -- the file was not found at the last scan
    status TEXT NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'in_progress', 'done', 'skipped')),
    status_by TEXT,
    status_at REAL,
    unreadable TEXT,                    -- why the file could not be read when last opened (NULL: it could)
    source TEXT,                        -- JSON: the source's provenance, recorded when opened
    UNIQUE (path, frame)
)
"""
COPIED = "id, path, width, height, sha256, current_sha256, missing, status, status_by, status_at, unreadable"


def upgrade(conn: sqlite3.Connection) -> None:
    """Rebuild `images` with its frame and source, add `objects.window` (inside the caller's
    transaction, with foreign keys off)."""
    conn.execute(IMAGES)
    conn.execute(f"INSERT INTO images_v3 ({COPIED}) SELECT {COPIED} FROM images")
    conn.execute("DROP TABLE images")
    conn.execute("ALTER TABLE images_v3 RENAME TO images")
    conn.execute("ALTER TABLE objects ADD COLUMN window TEXT")
