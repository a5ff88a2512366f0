"""A project's objects as DICOM Segmentations (`basam-ui export --format dicom-seg`): one binary
SEG per annotated DICOM item (`dicom_seg.write_segmentation`), one segment per object in layer
order (its class as the label, its class's colour, codes from the labels file or the default,
"object <id>" as its tracking ID), referencing the source SOP Instance and, for a frame of a
multi-frame file, its frame. The SEGs of one study share one new series.

Items that cannot have a SEG are listed with the reason instead: a file that is not DICOM (a
SEG references a DICOM instance), missing, changed since it was annotated, or unreadable.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Mapping, Optional, Sequence

from ..sources.base import IDENTIFYING
from ..vocabulary import PALETTE
from .dicom_seg import Labels, SegObject, write_segmentation
from .item_files import ItemFile

SEG_SUFFIX = ".seg.dcm"  # OUT/<name>.seg.dcm
NOT_DICOM = "not a DICOM image (a DICOM SEG references a DICOM instance)"


def write_segmentations(
    out: Path,
    entries: Sequence[tuple],
    names: Mapping[int, str],
    labels: Sequence[str],
    files: Mapping[int, ItemFile],
    seg_labels: Optional[Labels] = None,
) -> tuple[list[Path], list[str]]:
    """Write one SEG per entry that has objects and a DICOM source.

    Arguments:
      out: the export folder; each SEG is OUT/<name>.seg.dcm.
      entries: (image record, its objects bottom layer first, flags with "missing", "changed",
        "provenance" (the source's, with its IDENTIFYING part) and "unreadable").
      names: image id -> output name without extension.
      labels: the project's classes (a class's colour is PALETTE at its position).
      files: image id -> its file.
      seg_labels: segment codes per class (None: `dicom_seg.DEFAULT_CODES`).

    Returns:
      (the SEG files written, "<item>: <reason>" for each item with objects left out).
    """
    colours = {name: PALETTE[k % len(PALETTE)] for k, name in enumerate(labels)}
    series: dict[str, str] = {}  # study -> the SEG series made for it
    written, skipped = [], []
    for image, objects, flags in entries:
        if not objects:
            continue
        reason = _why_not(flags)
        if reason is not None:
            skipped.append(f"{image.display_name}: {reason}")
            continue
        import highdicom as hd

        study = flags["provenance"][IDENTIFYING].get("study_instance_uid", "")
        segments = [SegObject(o.label, o.mask(), colours.get(o.label, PALETTE[0]), tracking_id=f"object {o.id}")
                    for o in objects]  # fmt: skip
        annotators = Counter(o.provenance.annotator for o in objects if o.provenance.annotator)
        try:
            path = write_segmentation(
                files[image.id].path, segments, out / f"{names[image.id]}{SEG_SUFFIX}", frame=image.frame,
                labels=seg_labels, series_instance_uid=series.setdefault(study, str(hd.UID())),
                content_creator_name=_person_name(annotators.most_common(1)[0][0]) if annotators else None,
            )
        except (OSError, ValueError) as exc:  # a mask of another size, a file that changed meanwhile
            skipped.append(f"{image.display_name}: {exc}")
            continue
        written.append(path)
    return written, skipped


def _person_name(name: str) -> str:
    """An annotator's name as a DICOM person name: a name without "^" is taken as the family
    name ("ana" -> "ana^"), as highdicom asks."""
    return name if "^" in name else f"{name}^"


def _why_not(flags: dict) -> Optional[str]:
    """Why an item can't have a SEG (None: it can)."""
    if flags.get("missing"):
        return "the file is missing"
    if flags.get("unreadable"):
        return f"the file can't be read ({flags['unreadable']})"
    if flags.get("changed"):
        return "the file changed since it was annotated (its objects belong to the old file)"
    if not (flags.get("provenance") or {}).get(IDENTIFYING, {}).get("sop_instance_uid"):
        return NOT_DICOM
    return None
