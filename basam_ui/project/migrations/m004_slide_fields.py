"""Schema 4: objects made in a field of a slide.

`objects.field_*`: the field an object was made in (its level-0 rectangle and downsample);
the object's mask (height, width, counts, area, bbox) is then at the field's resolution, in
the field's own pixels. NULL for objects of images decoded whole (their mask is at the image's
size, as before). (An image's pixel size comes from the source facts schema 3 records.)
"""

from __future__ import annotations

import sqlite3

VERSION = 4

STATEMENTS = (
    "ALTER TABLE objects ADD COLUMN field_x INTEGER",
    "ALTER TABLE objects ADD COLUMN field_y INTEGER",
    "ALTER TABLE objects ADD COLUMN field_width INTEGER",
    "ALTER TABLE objects ADD COLUMN field_height INTEGER",
    "ALTER TABLE objects ADD COLUMN field_downsample REAL",
)


def upgrade(conn: sqlite3.Connection) -> None:
    """Add the columns (inside the caller's transaction)."""
    for statement in STATEMENTS:
        conn.execute(statement)
