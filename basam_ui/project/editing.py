"""Editing an image's objects: commit, replace, relabel, delete, undo. Mixed into `Project`,
whose `_transaction`, `_lock`, `_conn`, `_clock` and `_label_id` it uses."""

from __future__ import annotations

import sqlite3
from typing import Optional

import numpy as np

from . import claims as _claims
from .objects import (
    LIVE,
    OBJECT_COLUMNS,
    OBJECT_FROM,
    ObjectRecord,
    Provenance,
    encode_mask,
    insert_object,
    record_from_row,
)
from ..sources.fields import Field
from .records import image_by_id
from .schema import ProjectError


class ImageChangedError(ProjectError):
    """The image file differs from the one its objects were drawn on; see Project.resolve_changed."""


class ObjectEditing:
    """The object operations of `Project`."""

    def commit_object(
        self,
        image_id: int,
        mask: np.ndarray,
        label: str,
        provenance: Provenance,
        *,
        replaces: Optional[int] = None,
        holder: Optional[str] = None,
        field: Optional[Field] = None,
    ) -> ObjectRecord:
        """Store a mask as an object of the image; it lies on top of the earlier objects. A
        to-do image becomes in progress. One transaction: when this returns, it is on disk.

        Arguments:
          image_id: the image.
          mask: H x W bool at the image's full resolution (not empty), or with `field` at the
            field's (its `size`).
          label: the class name.
          provenance: how the mask was made (side, model, S, setting, prompts, annotator, ...).
          replaces: a reopened live object of the same image: the new one takes its place and
            layer (undo brings it back).
          holder: the session committing (its claim is kept alive).
          field: the slide field the mask was made in (level-0 rectangle and downsample; it
            must lie in the image).

        Returns:
          The stored ObjectRecord. Raises ImageChangedError while the image is marked changed,
          ValueError for an empty mask, a mask of another size, or an unknown class.
        """
        rle = encode_mask(mask)
        now = self._clock()
        with self._transaction() as conn:
            image = image_by_id(conn, image_id)
            if image.changed:
                raise ImageChangedError(
                    f"{image.path}: the file changed since its objects were drawn; keep or drop them first"
                )
            if field is not None:
                _check_field(image, field, rle["size"])
            elif image.height is None:
                conn.execute("UPDATE images SET height = ?, width = ? WHERE id = ?", (*rle["size"], image_id))
            elif [image.height, image.width] != rle["size"]:
                raise ValueError(f"{image.path}: mask is {rle['size']} (H, W), the image is {image.height}x{image.width}")
            label_id = self._label_id(conn, label)
            if replaces is not None:
                old = conn.execute(
                    f"SELECT o.layer FROM objects o WHERE o.id = ? AND o.image_id = ? AND {LIVE}", (replaces, image_id)
                ).fetchone()
                if old is None:
                    raise ValueError(f"object {replaces} is not a live object of image {image_id}")
                layer = old[0]
            else:
                layer = conn.execute(
                    "SELECT coalesce(max(layer), 0) + 1 FROM objects WHERE image_id = ?", (image_id,)
                ).fetchone()[0]
            object_id = insert_object(conn, image_id, label_id, layer, rle, provenance, now, replaces, field)
            if replaces is not None:
                conn.execute("UPDATE objects SET superseded_by = ? WHERE id = ?", (object_id, replaces))
            if image.status == "todo":
                conn.execute("UPDATE images SET status = 'in_progress', status_by = ?, status_at = ? WHERE id = ?",
                             (provenance.annotator, now, image_id))
            if holder is not None:
                _claims.touch(conn, holder, now)
            return _object_by_id(conn, object_id)

    def objects(self, image_id: int) -> list[ObjectRecord]:
        """The live objects of an image.

        Arguments:
          image_id: the image.

        Returns:
          Its ObjectRecords, bottom layer first.
        """
        with self._transaction("DEFERRED") as conn:
            rows = conn.execute(
                f"SELECT {OBJECT_COLUMNS} FROM {OBJECT_FROM} WHERE o.image_id = ? AND {LIVE} ORDER BY o.layer, o.id",
                (image_id,),
            ).fetchall()
        return [record_from_row(row) for row in rows]

    def all_objects(self) -> list[ObjectRecord]:
        """Every live object of the project, by image and layer."""
        with self._transaction("DEFERRED") as conn:
            rows = conn.execute(
                f"SELECT {OBJECT_COLUMNS} FROM {OBJECT_FROM} WHERE {LIVE} ORDER BY o.image_id, o.layer, o.id"
            ).fetchall()
        return [record_from_row(row) for row in rows]

    def object(self, object_id: int) -> ObjectRecord:
        with self._transaction("DEFERRED") as conn:
            return _object_by_id(conn, object_id)

    def reopen(self, object_id: int) -> tuple[dict, np.ndarray]:
        """What refining an object starts from; commit the result with `replaces=object_id`.

        Arguments:
          object_id: a live object.

        Returns:
          (its prompts as stored: {"points", "labels", "box"}, its full-resolution mask).
        """
        record = self.object(object_id)
        return record.provenance.prompts, record.mask()

    def relabel(self, object_id: int, label: str) -> ObjectRecord:
        """Give a live object another class."""
        with self._transaction() as conn:
            label_id = self._label_id(conn, label)
            changed = conn.execute(f"UPDATE objects AS o SET label_id = ? WHERE o.id = ? AND {LIVE}", (label_id, object_id))
            if changed.rowcount != 1:
                raise KeyError(f"no live object {object_id}")
            return _object_by_id(conn, object_id)

    def delete_object(self, object_id: int) -> None:
        """Remove a live object (kept in the database as deleted)."""
        with self._transaction() as conn:
            changed = conn.execute(
                f"UPDATE objects AS o SET deleted_at = ? WHERE o.id = ? AND {LIVE}", (self._clock(), object_id)
            )
            if changed.rowcount != 1:
                raise KeyError(f"no live object {object_id}")

    def undo_last_commit(self, image_id: int, annotator: Optional[str] = None) -> Optional[int]:
        """Take back the newest live object committed on an image: it is removed, and the object
        it replaced (if any) comes back.

        Arguments:
          image_id: the image.
          annotator: only that annotator's commits (None: anyone's).

        Returns:
          The removed object's id, or None when there is nothing to undo.
        """
        with self._transaction() as conn:
            row = conn.execute(
                f"SELECT o.id, o.replaces FROM objects o WHERE o.image_id = ? AND {LIVE} "
                "AND (? IS NULL OR o.annotator = ?) ORDER BY o.id DESC LIMIT 1",
                (image_id, annotator, annotator),
            ).fetchone()
            if row is None:
                return None
            object_id, replaces = row
            if replaces is not None:
                conn.execute("UPDATE objects SET superseded_by = NULL WHERE id = ?", (replaces,))
            conn.execute("DELETE FROM objects WHERE id = ?", (object_id,))
            return int(object_id)



def _check_field(image, field: Field, mask_size: list) -> None:
    """ValueError unless the mask has the field's size and the field lies in the image."""
    width, height = field.size
    if mask_size != [height, width]:
        raise ValueError(f"{image.path}: mask is {mask_size} (H, W), its field's pixels are {height}x{width}")
    if image.width is None or field.x + field.width > image.width or field.y + field.height > image.height:
        raise ValueError(f"{image.path}: the field {field.as_dict()} does not lie in the image "
                         f"({image.width}x{image.height}; open the image first)")


def _object_by_id(conn: sqlite3.Connection, object_id: int) -> ObjectRecord:
    row = conn.execute(f"SELECT {OBJECT_COLUMNS} FROM {OBJECT_FROM} WHERE o.id = ?", (object_id,)).fetchone()
    if row is None:
        raise KeyError(f"no object {object_id}")
    return record_from_row(row)
