"""Parsing existing annotations to add them to a project, without touching the store.

`parse_annotations(fmt, SOURCE, images)` reads COCO, YOLO-seg, PNG label maps (our export's
layout) or LabelMe JSON into a `ParsedImport`: the objects (image path in the project, class
name, full-resolution mask as COCO RLE, the source's other fields as attributes, where each
came from), the classes in the source's order, the images not in the project (their
annotations left out) and annotations skipped with a reason. A malformed file raises one
`AnnotationFileError` naming the file, where in it, and what is wrong, before anything is
added: the caller adds the objects in one transaction.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from ...vocabulary import IMPORT_FORMATS
from .coco import parse_coco
from .labelmap import parse_label_maps
from .labelme import parse_labelme
from .records import AnnotationFileError, ImageMatcher, ImageSizes, ImportedObject, ParsedImport, Unmatched
from .yolo import parse_yolo

__all__ = [
    "AnnotationFileError", "IMPORT_FORMATS", "ImageMatcher", "ImageSizes", "ImportedObject", "ParsedImport",
    "Unmatched", "parse_annotations", "parse_coco", "parse_label_maps", "parse_labelme", "parse_yolo",
]  # fmt: skip


def parse_annotations(
    fmt: str,
    source: Union[str, os.PathLike],
    images: ImageSizes,
    *,
    project_root: Optional[Union[str, os.PathLike]] = None,
) -> ParsedImport:
    """Parse annotations in format `fmt` from `source`.

    Arguments:
      fmt: one of IMPORT_FORMATS: "coco" (SOURCE: the JSON, or a folder holding
        annotations.json), "yolo" (a folder holding labels/, or the labels folder), "png" (a
        folder holding classes.txt, instance/, semantic/, instances.json), "labelme" (a JSON
        or a folder of them).
      source: the file or folder.
      images: the project's image paths (`ImageRecord.path`) -> (H, W), or None where the
        size is unknown; YOLO needs the sizes of the images it labels (ValueError otherwise).
      project_root: the project folder (LabelMe's imagePath is relative to its JSON).

    Returns:
      ParsedImport. Raises AnnotationFileError for a malformed file, FileNotFoundError for a
      missing source, ValueError for an unknown format.
    """
    if fmt not in IMPORT_FORMATS:
        raise ValueError(f"unknown import format {fmt!r}; choose from {', '.join(IMPORT_FORMATS)}")
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    if fmt == "coco":
        path = source / "annotations.json" if source.is_dir() else source
        if not path.is_file():
            raise FileNotFoundError(f"{source}: no annotations.json in this folder; give the COCO JSON file")
        return parse_coco(path, images)
    if fmt == "labelme":
        return parse_labelme(source, images, Path(project_root) if project_root is not None else None)
    if not source.is_dir():
        raise ValueError(f"{source}: give the folder of the {fmt} export, not a file")
    return parse_yolo(source, images) if fmt == "yolo" else parse_label_maps(source, images)
