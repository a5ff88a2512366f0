"""Schema 5: proposals, imported objects, review and double annotation.

- `images.status` may also be 'reviewed' (every object accepted) and 'needs_work' (a reviewer
  rejected some: back to their annotators); `images.copies` is 2 for an image two annotators
  annotate independently (`--overlap`), else 1; `image_marks` records, per annotator, that
  they marked such an image done.
- `objects` may come from a click, a proposal or an import (`source`); an imported object has
  no side, model, S, setting or precision (those columns lose NOT NULL), and keeps what its
  file said about it (`import_attributes`, `origin`). An accepted proposal keeps its
  `stability_score` and `proposal_id`. A reviewer's decision: `review`, `review_reason`,
  `reviewed_by`, `reviewed_at`.
- `proposal_sets` (one finished set per image file, by content hash, and settings key) and
  `proposals` (each mask, pending until accepted or rejected).
- `claims`: an image may have two holders (a double image), so `image_id` is no longer the
  key; the table is rebuilt (claims are short-lived: they are copied as they are).

The CHECK and NOT NULL constraints (images' status as schema 3 rebuilt the table, objects'
provenance columns from schema 1) are loosened in place, as SQLite documents for removing such
constraints (edit the table's SQL in sqlite_schema under writable_schema, bump
schema_version): every existing row satisfies the looser definition, so nothing is copied, and
the other tables' foreign keys to `images` and `objects` stay as they are.
"""

from __future__ import annotations

import sqlite3

VERSION = 5

# (table, fragment of schema 1's definition, what it becomes)
LOOSENED = (
    ("images", "CHECK (status IN ('todo', 'in_progress', 'done', 'skipped'))",
     "CHECK (status IN ('todo', 'in_progress', 'done', 'skipped', 'reviewed', 'needs_work'))"),
    ("objects", "side TEXT NOT NULL CHECK", "side TEXT CHECK"),
    ("objects", "model_type TEXT NOT NULL,", "model_type TEXT,"),
    ("objects", "input_size INTEGER NOT NULL,", "input_size INTEGER,"),
    ("objects", "nsf INTEGER NOT NULL,", "nsf INTEGER,"),
    ("objects", "bmam INTEGER NOT NULL,", "bmam INTEGER,"),
    ("objects", "beta REAL NOT NULL,", "beta REAL,"),
    ("objects", "precision TEXT NOT NULL,", "precision TEXT,"),
)  # fmt: skip

# run statement by statement (split on ";"): keep ";" out of the comments
SCHEMA = """
ALTER TABLE images ADD COLUMN copies INTEGER NOT NULL DEFAULT 1 CHECK (copies IN (1, 2));
ALTER TABLE objects ADD COLUMN source TEXT NOT NULL DEFAULT 'clicked' CHECK (source IN ('clicked', 'proposal', 'imported'));
ALTER TABLE objects ADD COLUMN stability_score REAL;
ALTER TABLE objects ADD COLUMN import_attributes TEXT;
ALTER TABLE objects ADD COLUMN origin TEXT;
ALTER TABLE objects ADD COLUMN review TEXT CHECK (review IN ('accepted', 'rejected'));
ALTER TABLE objects ADD COLUMN review_reason TEXT;
ALTER TABLE objects ADD COLUMN reviewed_by TEXT;
ALTER TABLE objects ADD COLUMN reviewed_at REAL;
CREATE TABLE image_marks (
    image_id INTEGER NOT NULL REFERENCES images(id),
    annotator TEXT NOT NULL,
    status TEXT NOT NULL,               -- 'done': this annotator finished their copy
    at REAL NOT NULL,
    PRIMARY KEY (image_id, annotator)
);
CREATE TABLE proposal_sets (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    sha256 TEXT NOT NULL,               -- the image file's content hash the proposals belong to
    settings_key TEXT NOT NULL,         -- proposals.settings_key of the settings JSON
    settings TEXT NOT NULL,             -- JSON: model, S, setting, precision, generator options
    points INTEGER NOT NULL,            -- grid points decoded
    seconds REAL NOT NULL,              -- compute time
    created_at REAL NOT NULL,
    UNIQUE (image_id, sha256, settings_key)
);
CREATE TABLE proposals (
    id INTEGER PRIMARY KEY,
    set_id INTEGER NOT NULL REFERENCES proposal_sets(id),
    rank INTEGER NOT NULL,              -- 0 = the best (the generator's order)
    height INTEGER NOT NULL,
    width INTEGER NOT NULL,
    counts TEXT NOT NULL,               -- COCO compressed RLE of the full-resolution mask
    area INTEGER NOT NULL,
    bbox TEXT NOT NULL,                 -- JSON [x, y, w, h]
    predicted_iou REAL NOT NULL,
    stability_score REAL NOT NULL,
    point TEXT NOT NULL,                -- JSON [x, y]: the grid point that made it
    crop_box TEXT NOT NULL,             -- JSON [x0, y0, x1, y1]
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'rejected')),
    decided_by TEXT,
    decided_at REAL,
    reason TEXT,
    object_id INTEGER REFERENCES objects(id)
);
CREATE INDEX proposals_by_set ON proposals (set_id, rank);
ALTER TABLE objects ADD COLUMN proposal_id INTEGER REFERENCES proposals(id);
CREATE INDEX objects_by_proposal ON objects (proposal_id) WHERE proposal_id IS NOT NULL;
CREATE TABLE claims_new (
    image_id INTEGER NOT NULL REFERENCES images(id),
    holder TEXT NOT NULL UNIQUE,        -- a browser session (one image per holder)
    annotator TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    seen_at REAL NOT NULL
);
INSERT INTO claims_new SELECT image_id, holder, annotator, claimed_at, seen_at FROM claims;
DROP TABLE claims;
ALTER TABLE claims_new RENAME TO claims;
CREATE INDEX claims_by_image ON claims (image_id)
"""


def upgrade(conn: sqlite3.Connection) -> None:
    """Loosen schema 1's constraints, add the columns and tables (inside the caller's transaction)."""
    loosen(conn, LOOSENED)
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def loosen(conn: sqlite3.Connection, edits: tuple[tuple[str, str, str], ...]) -> None:
    """Replace fragments of tables' CREATE statements in place (SQLite's documented way to drop
    CHECK or NOT NULL constraints). Each fragment must occur exactly once, or nothing changes
    and RuntimeError says which."""
    tables = {table for table, _, _ in edits}
    sql = {t: conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (t,)).fetchone()[0]
           for t in tables}  # fmt: skip
    for table, old, new in edits:
        if sql[table].count(old) != 1:
            raise RuntimeError(f"schema {VERSION}: the table {table} does not hold {old!r} once; not upgraded")
        sql[table] = sql[table].replace(old, new)
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    conn.execute("PRAGMA writable_schema = ON")
    try:
        for table, text in sql.items():
            conn.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (text, table))
        conn.execute(f"PRAGMA schema_version = {version + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
