"""Schema 1: the tables of the first basam-ui projects (meta, labels, images, objects, claims).

A migration is history: its statements stay as they were when it shipped, whatever the
vocabulary says now; later changes are later migrations.
"""

from __future__ import annotations

import sqlite3

VERSION = 1

# run statement by statement (split on ";"): keep ";" out of the comments
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE labels (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    position INTEGER NOT NULL
);
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,          -- relative to the project folder, '/' separators
    width INTEGER,                      -- upright size, recorded when first opened
    height INTEGER,
    sha256 TEXT,                        -- content hash when first opened (the annotated file)
    current_sha256 TEXT,                -- hash when last opened (differs from sha256: changed)
    missing INTEGER NOT NULL DEFAULT 0, -- the file was not found at the last scan
    status TEXT NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'in_progress', 'done', 'skipped')),
    status_by TEXT,
    status_at REAL
);
CREATE TABLE objects (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    label_id INTEGER NOT NULL REFERENCES labels(id),
    layer INTEGER NOT NULL,             -- drawing order in its image: higher lies on top
    height INTEGER NOT NULL,
    width INTEGER NOT NULL,
    counts TEXT NOT NULL,               -- COCO compressed RLE of the full-resolution mask
    area INTEGER NOT NULL,
    bbox TEXT NOT NULL,                 -- JSON [x, y, w, h]
    side TEXT NOT NULL CHECK (side IN ('basam', 'sam')),
    model_type TEXT NOT NULL,
    checkpoint_sha256 TEXT,
    input_size INTEGER NOT NULL,
    nsf INTEGER NOT NULL,
    bmam INTEGER NOT NULL,
    beta REAL NOT NULL,
    precision TEXT NOT NULL,
    prompts TEXT NOT NULL,              -- JSON {"points", "labels", "box"} in original pixels
    brushed INTEGER NOT NULL,
    brush_edits INTEGER NOT NULL,
    predicted_iou REAL,
    iou_sam_basam REAL,
    annotator TEXT NOT NULL,
    seconds REAL,                       -- time the annotator spent on the object
    created_at REAL NOT NULL,
    replaces INTEGER REFERENCES objects(id),
    superseded_by INTEGER REFERENCES objects(id),
    deleted_at REAL
);
CREATE INDEX objects_by_image ON objects (image_id, layer);
CREATE INDEX live_objects ON objects (image_id, deleted_at, superseded_by) WHERE deleted_at IS NULL AND superseded_by IS NULL;
CREATE TABLE claims (
    image_id INTEGER PRIMARY KEY REFERENCES images(id),
    holder TEXT NOT NULL UNIQUE,        -- a browser session (one image per holder)
    annotator TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    seen_at REAL NOT NULL
);
"""


def upgrade(conn: sqlite3.Connection) -> None:
    """Create the tables (inside the caller's transaction)."""
    for statement in SCHEMA.split(";"):  # one by one: executescript would COMMIT first
        if statement.strip():
            conn.execute(statement)
