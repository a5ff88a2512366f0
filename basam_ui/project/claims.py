"""Who has which image open: claims that lapse after inactivity, and "next to do" that skips
images other sessions hold. Functions run inside the caller's transaction."""

from __future__ import annotations

import sqlite3
from typing import Optional

from ..vocabulary import OPEN_STATUSES
from .records import path_for_db

DEFAULT_CLAIM_TTL = 15 * 60.0  # seconds of inactivity after which a claim lapses


def claim(conn: sqlite3.Connection, image_id: int, holder: str, annotator: str, now: float, ttl: float) -> Optional[str]:
    """Give `image_id` to `holder` (a browser session), releasing the holder's previous claim.

    Returns None when the holder now has it, or the annotator of another session whose claim
    is still live (then nothing is claimed and the image can only be looked at)."""
    conn.execute("DELETE FROM claims WHERE holder = ? OR seen_at < ?", (holder, now - ttl))
    row = conn.execute("SELECT annotator FROM claims WHERE image_id = ?", (image_id,)).fetchone()
    if row is not None:
        return row[0] or "another session"
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
) -> Optional[int]:
    """The first image to do (status to do or in progress, file present and readable, not claimed
    by another live session) after item (`after_path`, `after_frame`) in path and frame order,
    wrapping round; that item itself comes last. None when there is nothing left."""
    row = conn.execute(
        f"""SELECT i.id FROM images i
            WHERE i.status IN {OPEN_STATUSES!r} AND i.missing = 0 AND i.unreadable IS NULL
              AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.image_id = i.id AND c.seen_at >= ?
                              AND c.holder IS NOT ?)
            ORDER BY ((i.path, i.frame) <= (?, ?)), i.path, i.frame LIMIT 1""",
        (now - ttl, holder, path_for_db(after_path) if after_path is not None else "",
         after_frame if after_path is not None else -1),
    ).fetchone()
    return None if row is None else int(row[0])
