"""Review and double annotation: reviewers accept or reject each object of the images marked
done (not their own); an image whose every object is decided becomes *reviewed*, or, when
some were rejected, *needs work* and goes back first to the annotators of the rejected
objects. With `--overlap`, a share of the images is annotated by two annotators independently:
each marks their copy done (`image_marks`), and the image is done when both have. Mixed into
`Project`, whose `_transaction`, `_clock` and `claim_ttl` it uses."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Optional, Sequence

from ..vocabulary import REVIEW_DECISIONS
from . import claims as _claims
from .objects import LIVE
from .records import IMAGE_COLUMNS, ImageRecord, image_by_id, image_from_row, path_for_db
from .schema import ProjectError

MAX_REASON = 500  # characters of a rejection's reason


class ReviewError(ProjectError):
    """A review action that is refused (own work, no reason for a rejection, ...): the message says why."""


def status_after_mark(conn: sqlite3.Connection, image_id: int, status: str, annotator: str, now: float) -> str:
    """The status an image takes when `annotator` marks it `status` (inside the caller's
    transaction): "done" on an image of two copies records the annotator's mark, and the image
    is done only once two annotators have marked it (until then it stays in progress)."""
    copies = conn.execute("SELECT copies FROM images WHERE id = ?", (image_id,)).fetchone()[0]
    if status != "done" or copies < 2:
        return status
    conn.execute("INSERT OR REPLACE INTO image_marks (image_id, annotator, status, at) VALUES (?, ?, 'done', ?)",
                 (image_id, annotator, now))  # fmt: skip
    marked = conn.execute("SELECT count(*) FROM image_marks WHERE image_id = ? AND status = 'done'", (image_id,))
    return "done" if marked.fetchone()[0] >= copies else "in_progress"


class ReviewStore:
    """The review and double-annotation operations of `Project`."""

    # -- who reviews, which images are double ----------------------------------------------

    def set_reviewers(self, names: Sequence[str]) -> list[str]:
        """Record the reviewers' names (`--reviewers`; login names when logins are on)."""
        cleaned = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('reviewers', ?)", (json.dumps(cleaned),))
        return cleaned

    def reviewers(self) -> list[str]:
        """The reviewers' names ([] when the project has none)."""
        with self._transaction("DEFERRED") as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'reviewers'").fetchone()
        return json.loads(row[0]) if row else []

    def set_overlap(self, fraction: float, seed: int = 0) -> int:
        """Hand `fraction` of the images to two annotators each (copies = 2): the same images
        for the same paths and seed (drawn by a hash of each path), so a re-run keeps them. An
        image already worked on by two annotators stays double. Returns the number of double images."""
        if not 0.0 <= float(fraction) <= 1.0:
            raise ValueError(f"--overlap must be a fraction between 0 and 1, got {fraction}")
        with self._transaction() as conn:
            rows = conn.execute("SELECT id, path FROM images").fetchall()
            order = sorted(rows, key=lambda r: hashlib.sha256(f"{seed}:{r[1]!r}".encode()).hexdigest())
            chosen = {image_id for image_id, _ in order[: round(float(fraction) * len(order))]}
            for image_id, _ in rows:
                if image_id not in chosen and len(self._annotators(conn, image_id)) >= 2:
                    chosen.add(image_id)
            conn.executemany("UPDATE images SET copies = ? WHERE id = ?",
                             [(2 if image_id in chosen else 1, image_id) for image_id, _ in rows])  # fmt: skip
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('overlap', ?)",
                         (json.dumps({"fraction": float(fraction), "seed": seed}),))  # fmt: skip
        return len(chosen)

    def marks(self, image_id: int) -> dict[str, float]:
        """{annotator: when} of the annotators who marked their copy of a double image done, first first."""
        with self._transaction("DEFERRED") as conn:
            rows = conn.execute("SELECT annotator, at FROM image_marks WHERE image_id = ? AND status = 'done' "
                                "ORDER BY at, annotator", (image_id,))  # fmt: skip
            return dict(rows.fetchall())

    @staticmethod
    def _annotators(conn: sqlite3.Connection, image_id: int) -> set[str]:
        rows = conn.execute(f"SELECT DISTINCT o.annotator FROM objects o WHERE o.image_id = ? AND {LIVE}", (image_id,))
        return {name for (name,) in rows}

    # -- the review queue ---------------------------------------------------------------

    def next_review(
        self, reviewer: str, holder: Optional[str], after: Optional[int] = None, *, claim: bool = True
    ) -> Optional[ImageRecord]:
        """The next image for `reviewer` to review: marked done, file present and readable, not
        the reviewer's own (no live object of theirs, not marked by them), not held by another
        live session; after image `after` in path order, wrapping round. Claimed for `holder`.

        Returns:
          The image, or None when nothing is left to review.
        """
        if not reviewer:
            raise ReviewError("type your name first: a review records who made it")
        now = self._clock()
        with self._transaction() as conn:
            after_path = "" if after is None else path_for_db(image_by_id(conn, after).path)
            row = conn.execute(
                f"""SELECT i.id FROM images i
                    WHERE i.status = 'done' AND i.missing = 0 AND i.unreadable IS NULL
                      AND i.status_by IS NOT :reviewer
                      AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.image_id = i.id AND {LIVE}
                                      AND o.annotator = :reviewer)
                      AND NOT EXISTS (SELECT 1 FROM image_marks m WHERE m.image_id = i.id AND m.annotator = :reviewer)
                      AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.image_id = i.id AND c.seen_at >= :since
                                      AND c.holder IS NOT :holder)
                    ORDER BY (i.path <= :after), i.path LIMIT 1""",
                {"reviewer": reviewer, "since": now - self.claim_ttl, "holder": holder, "after": after_path},
            ).fetchone()
            if row is None:
                return None
            if claim and holder is not None:
                _claims.claim(conn, row[0], holder, reviewer, now, self.claim_ttl)
            return image_by_id(conn, row[0])

    def to_review(self, reviewer: str) -> list[ImageRecord]:
        """Every image waiting for `reviewer` (as `next_review` would hand them out, held or not)."""
        with self._transaction("DEFERRED") as conn:
            rows = conn.execute(
                f"""SELECT {IMAGE_COLUMNS} FROM images i WHERE i.status = 'done' AND i.missing = 0
                    AND i.status_by IS NOT ? AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.image_id = i.id
                    AND {LIVE} AND o.annotator = ?) ORDER BY i.path""",
                (reviewer, reviewer),
            ).fetchall()
        return [image_from_row(row) for row in rows]

    # -- decisions ----------------------------------------------------------------------

    def review_object(self, object_id: int, decision: str, reviewer: str, reason: str = "") -> ImageRecord:
        """A reviewer accepts or rejects a live object (again: the newer decision counts).

        Arguments:
          object_id: the object.
          decision: "accepted" or "rejected".
          reviewer: who decides (not the object's annotator).
          reason: why, for a rejection (required, at most MAX_REASON characters).

        Returns:
          The image as it is now: *reviewed* once every live object is accepted, *needs work*
          once every one is decided and some were rejected, else as it was.
        """
        if decision not in REVIEW_DECISIONS:
            raise ValueError(f"decision must be one of {REVIEW_DECISIONS}, got {decision!r}")
        reason = " ".join(str(reason or "").split())[:MAX_REASON]
        if not reviewer:
            raise ReviewError("type your name first: a review records who made it")
        if decision == "rejected" and not reason:
            raise ReviewError("say in a few words why the object is rejected (the annotator reads it)")
        now = self._clock()
        with self._transaction() as conn:
            row = conn.execute(f"SELECT o.image_id, o.annotator FROM objects o WHERE o.id = ? AND {LIVE}",
                               (object_id,)).fetchone()  # fmt: skip
            if row is None:
                raise ReviewError(f"object {object_id} is not a live object")
            image_id, annotator = row
            if annotator == reviewer:
                raise ReviewError("this object is your own: another reviewer decides on it")
            conn.execute("UPDATE objects SET review = ?, review_reason = ?, reviewed_by = ?, reviewed_at = ? "
                         "WHERE id = ?", (decision, reason or None, reviewer, now, object_id))  # fmt: skip
            return self._settle(conn, image_id, reviewer, now)

    def accept_remaining(self, image_id: int, reviewer: str) -> ImageRecord:
        """Accept every undecided live object of the image (none: the image is accepted as it
        is); returns the image as it is now (see `review_object`)."""
        if not reviewer:
            raise ReviewError("type your name first: a review records who made it")
        now = self._clock()
        with self._transaction() as conn:
            own = conn.execute(f"SELECT count(*) FROM objects o WHERE o.image_id = ? AND {LIVE} AND o.review IS NULL "
                               "AND o.annotator = ?", (image_id, reviewer)).fetchone()[0]  # fmt: skip
            if own:
                raise ReviewError("this image has objects of your own: another reviewer decides on them")
            conn.execute(f"UPDATE objects AS o SET review = 'accepted', reviewed_by = ?, reviewed_at = ? "
                         f"WHERE o.image_id = ? AND {LIVE} AND o.review IS NULL", (reviewer, now, image_id))  # fmt: skip
            return self._settle(conn, image_id, reviewer, now, empty_ok=True)

    def _settle(self, conn: sqlite3.Connection, image_id: int, reviewer: str, now: float,
                empty_ok: bool = False) -> ImageRecord:  # fmt: skip
        """Set a reviewed image's status from its objects' decisions."""
        image = image_by_id(conn, image_id)
        if image.status not in ("done", "reviewed", "needs_work"):
            return image
        undecided, rejected, live = conn.execute(
            f"SELECT coalesce(sum(o.review IS NULL), 0), coalesce(sum(o.review = 'rejected'), 0), count(*) "
            f"FROM objects o WHERE o.image_id = ? AND {LIVE}", (image_id,)).fetchone()  # fmt: skip
        if undecided or (live == 0 and not empty_ok):
            return image
        status = "needs_work" if rejected else "reviewed"
        conn.execute("UPDATE images SET status = ?, status_by = ?, status_at = ? WHERE id = ?",
                     (status, reviewer, now, image_id))  # fmt: skip
        if status == "needs_work":  # each annotator marks their copy done again
            conn.execute("DELETE FROM image_marks WHERE image_id = ? AND annotator IN (SELECT o.annotator FROM "
                         f"objects o WHERE o.image_id = ? AND {LIVE} AND o.review = 'rejected')", (image_id, image_id))
        return image_by_id(conn, image_id)

    # -- what the report reads -------------------------------------------------------------

    def review_rows(self) -> list[dict]:
        """Every object a reviewer decided on (live, replaced or deleted since), with what the report
        groups it by: annotator, class, side (None: imported), S, source and the decision."""
        with self._transaction("DEFERRED") as conn:
            rows = conn.execute(
                "SELECT o.annotator, l.name, o.side, o.input_size, o.source, o.review FROM objects o "
                "JOIN labels l ON l.id = o.label_id WHERE o.review IS NOT NULL ORDER BY o.id").fetchall()  # fmt: skip
        keys = ("annotator", "label", "side", "input_size", "source", "review")
        return [dict(zip(keys, row)) for row in rows]

    def double_images(self) -> list[tuple[int, list[str]]]:
        """[(image id, its two annotators)] of the images of two copies where two annotators have
        live objects: the first two to mark their copy done, else the first two by name."""
        with self._transaction("DEFERRED") as conn:
            ids = [i for (i,) in conn.execute("SELECT id FROM images WHERE copies = 2 ORDER BY path")]
            found = []
            for image_id in ids:
                names = self._annotators(conn, image_id)
                marked = [a for (a,) in conn.execute("SELECT annotator FROM image_marks WHERE image_id = ? "
                                                     "ORDER BY at, annotator", (image_id,)) if a in names]  # fmt: skip
                order = marked + sorted(names - set(marked))
                if len(order) >= 2:
                    found.append((image_id, order[:2]))
        return found

    def objects_to_export(self, include_rejected: bool = False) -> dict[int, list]:
        """{image id: its live objects, bottom layer first} as exports take them: without the
        objects a reviewer rejected (unless `include_rejected`), and, of an image annotated
        twice, only the copy of the annotator who marked it done first (the other copy is
        measured against it in the report's agreement, not exported twice)."""
        with self._transaction("DEFERRED") as conn:
            first = dict(conn.execute(
                "SELECT m.image_id, m.annotator FROM image_marks m JOIN images i ON i.id = m.image_id "
                "WHERE i.copies = 2 AND m.status = 'done' AND m.at = (SELECT min(at) FROM image_marks n "
                "WHERE n.image_id = m.image_id AND n.status = 'done') ORDER BY m.annotator DESC").fetchall())  # fmt: skip
        by_image: dict[int, list] = {}
        for obj in self.all_objects():
            if obj.review == "rejected" and not include_rejected:
                continue
            if obj.image_id in first and obj.provenance.annotator != first[obj.image_id]:
                continue
            by_image.setdefault(obj.image_id, []).append(obj)
        return by_image
