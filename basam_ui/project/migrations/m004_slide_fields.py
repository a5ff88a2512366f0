"""Schema 4: objects made in a field of a slide, and the images' pixel size.

`objects.field_*`: the field an object was made in (its level-0 rectangle and downsample);
the object's mask (height, width, counts, area, bbox) is then at the field's resolution, in
the field's own pixels. NULL for objects of images decoded whole (their mask is at the image's
size, as before). `images.mpp_x` / `mpp_y`: microns per level-0 pixel, recorded when the item
is opened and says so (slides), for areas in µm².
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
    "ALTER TABLE images ADD COLUMN mpp_x REAL",
    "ALTER TABLE images ADD COLUMN mpp_y REAL",
)


def upgrade(conn: sqlite3.Connection) -> None:
    """Add the columns (inside the caller's transaction)."""
    for statement in STATEMENTS:
        conn.execute(statement)
