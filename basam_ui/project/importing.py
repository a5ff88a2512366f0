"""Adding parsed annotations (`imports.parse_annotations`) to the project in one transaction:
each becomes an object with source "imported" (no side, model or prompts; what its file said
kept in `import_attributes`, where in it in `origin`) on top of the image's objects, classes
are created by name, and the images' statuses are left as they are. Mixed into `Project`,
whose `_transaction`, `_clock`, `add_labels` and `_label_id` it uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .objects import Provenance, insert_object
from .records import path_for_db

if TYPE_CHECKING:  # (the parsers import the exports, which import the store: no import at run time)
    from .imports.records import ParsedImport, Unmatched


@dataclass
class ImportResult:
    """What an import added: objects, images that got some, classes made; what it left out."""

    objects: int = 0
    images: int = 0
    classes_added: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (origin, reason)
    unmatched: list[Unmatched] = field(default_factory=list)


class ImportStore:
    """The import operations of `Project`."""

    def image_sizes(self) -> dict[str, tuple[int, int] | None]:
        """{image path: (H, W) as recorded, or None when it has not been opened yet} (what the
        import parsers match against)."""
        return {image.path: (image.height, image.width) if image.height is not None else None for image in self.images()}

    def import_objects(self, parsed: ParsedImport, annotator: str = "") -> ImportResult:
        """Add every object of `parsed` (one transaction: all or nothing).

        Arguments:
          parsed: what `imports.parse_annotations` read.
          annotator: recorded as each object's annotator (whom a rejection sends it back to).

        Returns:
          ImportResult; objects on an image whose file changed since it was annotated, or whose
          mask is not the image's size, are skipped with the reason.
        """
        result = ImportResult(skipped=list(parsed.skipped), unmatched=list(parsed.unmatched))
        now = self._clock()
        before = set(self.labels())
        with self._transaction() as conn:
            self.add_labels([c for c in parsed.classes if c.strip()] or [])
            images = {}
            for obj in parsed.objects:
                row = images.get(obj.image) or conn.execute(
                    "SELECT id, height, width, sha256, current_sha256 FROM images WHERE path = ?",
                    (path_for_db(obj.image),)).fetchone()  # fmt: skip
                if row is None:
                    result.skipped.append((obj.origin, f"{obj.image} is not an image of the project"))
                    continue
                images[obj.image] = row
                image_id, height, width, sha, current = row
                if sha is not None and current is not None and sha != current:
                    result.skipped.append((obj.origin, f"{obj.image} changed since it was annotated: keep or drop its objects first"))
                    continue
                size = list(obj.rle["size"])
                if height is None:
                    conn.execute("UPDATE images SET height = ?, width = ? WHERE id = ?", (*size, image_id))
                    images[obj.image] = (image_id, *size, sha, current)
                elif [height, width] != size:
                    result.skipped.append((obj.origin, f"the mask is {size[1]}x{size[0]}, the image {width}x{height}"))
                    continue
                layer = conn.execute("SELECT coalesce(max(layer), 0) + 1 FROM objects WHERE image_id = ?",
                                     (image_id,)).fetchone()[0]  # fmt: skip
                rle = _rle_with_area(obj.rle)
                provenance = Provenance.imported(annotator, obj.attributes, obj.origin)
                insert_object(conn, image_id, self._label_id(conn, obj.label), layer, rle, provenance, now, None)
                result.objects += 1
            result.images = len({row[0] for row in images.values()})
        result.classes_added = [c for c in self.labels() if c not in before]
        return result


def _rle_with_area(rle: dict) -> dict:
    """{"size", "counts", "area", "bbox"} of a COCO compressed RLE (as `objects.encode_mask` gives)."""
    from pycocotools import mask as mask_utils

    compressed = {"size": list(rle["size"]), "counts": rle["counts"].encode("ascii")}
    return {"size": list(rle["size"]), "counts": rle["counts"], "area": int(mask_utils.area(compressed)),
            "bbox": [float(v) for v in mask_utils.toBbox(compressed)]}  # fmt: skip
