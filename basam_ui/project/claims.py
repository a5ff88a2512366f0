"""Who has which image open: claims that lapse after inactivity, and "next to do" that skips
images other sessions hold. An image two annotators annotate independently (copies = 2) takes
two holders. Functions run inside the caller's transaction."""

from __future__ import annotations

import sqlite3
from typing import Optional

from ..vocabulary import OPEN_STATUSES
from .objects import LIVE
from .records import path_for_db

DEFAULT_CLAIM_TTL = 15 * 60.0  # seconds of inactivity after which a claim lapses


def claim(conn: sqlite3.Connection, image_id: int, holder: str, annotator: str, now: float, ttl: float) -> Optional[str]:
    """Give `image_id` to `holder` (a browser session), releasing the holder's previous claim.

    Returns None when the holder now has it, or the annotator of another session whose claim
    is still live (then nothing is claimed and the image can only be looked at); an image of
    two copies takes two holders."""
    conn.execute("DELETE FROM claims WHERE holder = ? OR seen_at < ?", (holder, now - ttl))
    rows = conn.execute("SELECT annotator FROM claims WHERE image_id = ?", (image_id,)).fetchall()
    copies = conn.execute("SELECT copies FROM images WHERE id = ?", (image_id,)).fetchone()
    if len(rows) >= (copies[0] if copies else 1):
        return rows[0][0] or "another session"
    conn.execute(
        "INSERT INTO claims (image_id, holder, annotator, claimed_at, seen_at) VALUES (?, ?, ?, ?, ?)",
        (image_id, holder, annotator, now, now),
    )
    return None


def touch(conn: sqlite3.Connection, holder: str, now: float) -> None:
    """Keep the holder's claim alive (any action in the page counts)."""
    conn.execute("UPDATE claims SET seen_at = ? WHERE holder = ?", (now, holder))


def release(conn: sqlite3.Connection, holder: str) -> None:
    """Drop the holder's claim (the session closed or moved on)."""
    conn.execute("DELETE FROM claims WHERE holder = ?", (holder,))


def claimed_by_others(conn: sqlite3.Connection, holder: Optional[str], now: float, ttl: float) -> dict[int, str]:
    """{image id: annotator} for the live claims of sessions other than `holder`."""
    rows = conn.execute(
        "SELECT image_id, annotator FROM claims WHERE seen_at >= ? AND holder IS NOT ?", (now - ttl, holder)
    )
    return {image_id: annotator for image_id, annotator in rows}


def next_todo_id(
    conn: sqlite3.Connection, holder: Optional[str], now: float, ttl: float, after_path: Optional[str],
    after_frame: int = 0,
    annotator: str = "",
) -> Optional[int]:
    """The first image to do for `annotator` after item (`after_path`, `after_frame`) in path and
    frame order, wrapping round (that item itself comes last); None when there is nothing left.
    Images that need work because a reviewer rejected this annotator's objects come first.
    Otherwise: status to do or in progress, file present and readable, not held by another live
    session; an image of two copies while this annotator has not marked it done and fewer than
    two other annotators work on it (held by, marked by, or with objects of), and by fewer than
    two other sessions."""
    row = conn.execute(
        f"""SELECT i.id FROM images i
            WHERE i.missing = 0 AND i.unreadable IS NULL
              AND (i.status IN {OPEN_STATUSES!r} OR (i.status = 'needs_work' AND EXISTS (
                   SELECT 1 FROM objects o WHERE o.image_id = i.id AND {LIVE} AND o.review = 'rejected'
                   AND o.annotator = :annotator)))
              AND (SELECT count(*) FROM claims c WHERE c.image_id = i.id AND c.seen_at >= :since
                   AND c.holder IS NOT :holder) < i.copies
              AND (i.copies = 1 OR (
                   NOT EXISTS (SELECT 1 FROM image_marks m WHERE m.image_id = i.id AND m.annotator = :annotator)
                   AND (SELECT count(DISTINCT who) FROM (
                        SELECT m.annotator AS who FROM image_marks m WHERE m.image_id = i.id
                        UNION SELECT o.annotator FROM objects o WHERE o.image_id = i.id AND {LIVE}
                        UNION SELECT c.annotator FROM claims c WHERE c.image_id = i.id AND c.seen_at >= :since
                              AND c.holder IS NOT :holder)
                        WHERE who != :annotator) < i.copies))
            ORDER BY (i.status = 'needs_work') DESC, ((i.path, i.frame) <= (:after, :after_frame)), i.path, i.frame
            LIMIT 1""",
        {"since": now - ttl, "holder": holder, "annotator": annotator or "",
         "after": path_for_db(after_path) if after_path is not None else "",
         "after_frame": after_frame if after_path is not None else -1},
    ).fetchone()
    return None if row is None else int(row[0])
