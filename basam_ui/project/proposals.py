"""Stored proposals: finished sets of automatic masks per image file (by content hash) and the
settings that made them (by their key), each mask pending until an annotator accepts it (it
becomes an object, its scores kept) or rejects it. Separate from objects: other settings or a
changed file find other sets, never a mix. Mixed into `Project`, whose `_transaction`,
`_clock` and `commit_object` it uses. No torch here: a set arrives as plain data (anything
shaped like `basam_ui.proposals.ProposalSet`)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..vocabulary import PROPOSAL_STATUSES
from .objects import ObjectRecord, Provenance, decode_mask
from .schema import ProjectError

PROPOSAL_COLUMNS = ("p.id, p.set_id, p.rank, p.height, p.width, p.counts, p.area, p.bbox, p.predicted_iou, "
                    "p.stability_score, p.point, p.crop_box, p.status, p.decided_by, p.decided_at, p.reason, p.object_id")
SET_COLUMNS = "s.id, s.image_id, s.sha256, s.settings_key, s.settings, s.points, s.seconds, s.created_at"


@dataclass(frozen=True)
class StoredProposalSet:
    """A finished set: the image and file hash it belongs to, its settings (`key` and the record)."""

    id: int
    image_id: int
    sha256: str
    key: str
    settings: dict
    points: int
    seconds: float
    created_at: float

    @property
    def side(self) -> str:
        """The side an accepted proposal records: BA-SAM when the setting had NSF or BM-AM."""
        return "basam" if self.settings.get("nsf") or self.settings.get("bmam") else "sam"


@dataclass(frozen=True)
class ProposalRecord:
    """One stored proposal: its mask (COCO RLE), scores, grid point, and the decision on it."""

    id: int
    set_id: int
    rank: int
    height: int
    width: int
    counts: str
    area: int
    bbox: list
    predicted_iou: float
    stability_score: float
    point: list
    crop_box: list
    status: str
    decided_by: Optional[str]
    decided_at: Optional[float]
    reason: Optional[str]
    object_id: Optional[int]

    def rle(self) -> dict:
        return {"size": [self.height, self.width], "counts": self.counts}

    def mask(self) -> np.ndarray:
        """The H x W bool mask."""
        return decode_mask(self.height, self.width, self.counts)


def _set(row: tuple) -> StoredProposalSet:
    sid, image_id, sha, key, settings, points, seconds, created = row
    return StoredProposalSet(sid, image_id, sha, key, json.loads(settings), points, seconds, created)


def _proposal(row: tuple) -> ProposalRecord:
    values = list(row)
    for k in (7, 10, 11):  # bbox, point, crop_box
        values[k] = json.loads(values[k])
    return ProposalRecord(*values)


def proposal_provenance(stored: StoredProposalSet, proposal: ProposalRecord, annotator: str,
                        seconds: Optional[float] = None) -> Provenance:  # fmt: skip
    """How an accepted proposal was made: its set's model, S and setting, its grid point as the
    prompt, its predicted IoU and stability score."""
    s = stored.settings
    model_type, _, digest = str(s.get("model", "")).partition(":")
    hex_digest = digest if len(digest) >= 16 and all(c in "0123456789abcdef" for c in digest.lower()) else None
    return Provenance(
        side=stored.side, model_type=model_type, checkpoint_sha256=hex_digest, input_size=int(s["input_size"]),
        nsf=bool(s.get("nsf")), bmam=bool(s.get("bmam")), beta=float(s.get("beta", 0.0)),
        precision=s.get("precision", "fp32"), prompts={"points": [list(proposal.point)], "labels": [1], "box": None},
        predicted_iou=proposal.predicted_iou, annotator=annotator, seconds=seconds, source="proposal",
        stability_score=proposal.stability_score, proposal_id=proposal.id,
    )


class ProposalStore:
    """The proposal operations of `Project`."""

    def store_proposals(self, image_id: int, sha256: str, proposal_set: Any) -> StoredProposalSet:
        """Store a finished set for the image file with content hash `sha256` (one transaction);
        a set already stored under the same (image, hash, key) is kept and returned instead.

        Arguments:
          image_id: the image.
          sha256: its file's content hash when the proposals were made.
          proposal_set: a `basam_ui.proposals.ProposalSet` (record, key, proposals best first,
            points, seconds).

        Returns:
          The stored set.
        """
        now = self._clock()
        with self._transaction() as conn:
            found = self._find_set(conn, image_id, sha256, proposal_set.key)
            if found is not None:
                return found
            cursor = conn.execute(
                "INSERT INTO proposal_sets (image_id, sha256, settings_key, settings, points, seconds, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (image_id, sha256, proposal_set.key, json.dumps(proposal_set.record, sort_keys=True),
                 int(proposal_set.points), float(proposal_set.seconds), now),
            )  # fmt: skip
            set_id = cursor.lastrowid
            conn.executemany(
                "INSERT INTO proposals (set_id, rank, height, width, counts, area, bbox, predicted_iou, "
                "stability_score, point, crop_box) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(set_id, rank, p.rle["size"][0], p.rle["size"][1], p.rle["counts"], int(p.area), json.dumps(p.bbox),
                  float(p.predicted_iou), float(p.stability_score), json.dumps([float(v) for v in p.point]),
                  json.dumps([int(v) for v in p.crop_box])) for rank, p in enumerate(proposal_set.proposals)],
            )  # fmt: skip
            return self._find_set(conn, image_id, sha256, proposal_set.key)

    @staticmethod
    def _find_set(conn: sqlite3.Connection, image_id: int, sha256: str, key: str) -> Optional[StoredProposalSet]:
        row = conn.execute(f"SELECT {SET_COLUMNS} FROM proposal_sets s WHERE s.image_id = ? AND s.sha256 = ? "
                           "AND s.settings_key = ?", (image_id, sha256, key)).fetchone()  # fmt: skip
        return None if row is None else _set(row)

    def proposal_set(self, image_id: int, key: str, sha256: Optional[str] = None) -> Optional[StoredProposalSet]:
        """The set of the image under settings `key`, for its file as last opened (or `sha256`);
        None when there is none (other settings' sets and an earlier file's are never returned)."""
        with self._transaction("DEFERRED") as conn:
            if sha256 is None:
                row = conn.execute("SELECT coalesce(current_sha256, sha256) FROM images WHERE id = ?", (image_id,))
                sha256 = (row.fetchone() or (None,))[0]
            return None if sha256 is None else self._find_set(conn, image_id, sha256, key)

    def proposal_sets(self, image_id: Optional[int] = None) -> list[StoredProposalSet]:
        """Every stored set (of one image), oldest first."""
        with self._transaction("DEFERRED") as conn:
            rows = conn.execute(f"SELECT {SET_COLUMNS} FROM proposal_sets s WHERE ? IS NULL OR s.image_id = ? "
                                "ORDER BY s.created_at, s.id", (image_id, image_id)).fetchall()  # fmt: skip
        return [_set(row) for row in rows]

    def proposals(self, set_id: int, status: Optional[str] = None) -> list[ProposalRecord]:
        """The proposals of a set, best first (all, or those of one status)."""
        if status is not None and status not in PROPOSAL_STATUSES:
            raise ValueError(f"status must be one of {PROPOSAL_STATUSES}, got {status!r}")
        with self._transaction("DEFERRED") as conn:
            rows = conn.execute(f"SELECT {PROPOSAL_COLUMNS} FROM proposals p WHERE p.set_id = ? "
                                "AND (? IS NULL OR p.status = ?) ORDER BY p.rank", (set_id, status, status)).fetchall()
        return [_proposal(row) for row in rows]

    def proposal_states(self, set_id: int) -> dict[int, str]:
        """{proposal id: status} of a set (cheap: no masks read)."""
        with self._transaction("DEFERRED") as conn:
            return dict(conn.execute("SELECT id, status FROM proposals WHERE set_id = ? ORDER BY rank", (set_id,)))

    def proposal_decisions(self) -> list[tuple[float, str]]:
        """(predicted IoU, status) of every stored proposal (what the report bands)."""
        with self._transaction("DEFERRED") as conn:
            return [(float(iou), status) for iou, status in conn.execute("SELECT predicted_iou, status FROM proposals")]

    def proposal(self, proposal_id: int) -> ProposalRecord:
        with self._transaction("DEFERRED") as conn:
            return self._proposal_row(conn, proposal_id)

    @staticmethod
    def _proposal_row(conn: sqlite3.Connection, proposal_id: int) -> ProposalRecord:
        row = conn.execute(f"SELECT {PROPOSAL_COLUMNS} FROM proposals p WHERE p.id = ?", (proposal_id,)).fetchone()
        if row is None:
            raise KeyError(f"no proposal {proposal_id}")
        return _proposal(row)

    def accept_proposal(self, proposal_id: int, label: str, annotator: str, *, holder: Optional[str] = None,
                        seconds: Optional[float] = None) -> ObjectRecord:  # fmt: skip
        """Make a pending (or earlier rejected) proposal an object of class `label`, on top of
        the image's objects, with its set's model, S and setting, its grid point as the prompt
        and its scores (one transaction).

        Returns:
          The new ObjectRecord. Raises ProjectError for a proposal already accepted or of an
          earlier version of the file, ImageChangedError while the image is marked changed.
        """
        now = self._clock()
        with self._transaction() as conn:
            proposal = self._proposal_row(conn, proposal_id)
            stored = _set(conn.execute(f"SELECT {SET_COLUMNS} FROM proposal_sets s WHERE s.id = ?",
                                       (proposal.set_id,)).fetchone())  # fmt: skip
            if proposal.status == "accepted":
                raise ProjectError(f"proposal {proposal_id} is already object {proposal.object_id}")
            current = conn.execute("SELECT coalesce(current_sha256, sha256) FROM images WHERE id = ?",
                                   (stored.image_id,)).fetchone()[0]  # fmt: skip
            if current != stored.sha256:
                raise ProjectError("these proposals belong to an earlier version of the image file")
            provenance = proposal_provenance(stored, proposal, annotator, seconds)
            record = self.commit_object(stored.image_id, proposal.mask(), label, provenance, holder=holder)
            conn.execute("UPDATE proposals SET status = 'accepted', decided_by = ?, decided_at = ?, object_id = ? "
                         "WHERE id = ?", (annotator, now, record.id, proposal_id))  # fmt: skip
            return record

    def accept_proposals(self, set_id: int, min_iou: float, label: str, annotator: str, *,
                         holder: Optional[str] = None) -> list[ObjectRecord]:  # fmt: skip
        """Accept every pending proposal of a set whose predicted IoU is at least `min_iou`, as
        objects of class `label`, best first (one transaction). Returns the new objects."""
        with self._transaction():
            chosen = [p for p in self.proposals(set_id, "pending") if p.predicted_iou >= float(min_iou)]
            return [self.accept_proposal(p.id, label, annotator, holder=holder) for p in chosen]

    def reject_proposal(self, proposal_id: int, annotator: str, reason: str = "") -> ProposalRecord:
        """Mark a pending proposal rejected (it is kept, with who and why); returns it."""
        with self._transaction() as conn:
            proposal = self._proposal_row(conn, proposal_id)
            if proposal.status == "accepted":
                raise ProjectError(f"proposal {proposal_id} is already object {proposal.object_id}: delete the object instead")
            conn.execute("UPDATE proposals SET status = 'rejected', decided_by = ?, decided_at = ?, reason = ? "
                         "WHERE id = ?", (annotator, self._clock(), reason or None, proposal_id))  # fmt: skip
            return self._proposal_row(conn, proposal_id)
