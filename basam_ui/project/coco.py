"""COCO instances JSON of a project's objects: RLE (default) or polygons, with categories,
image sizes and each object's provenance under `attributes`."""

from __future__ import annotations

import datetime
from typing import Sequence

from .. import __version__
from . import fields
from .objects import ObjectRecord
from .records import ImageRecord

OVERLAP_NOTE = (
    "Each annotation is its object's whole mask; annotations of an image are listed bottom layer first, "
    "so where objects overlap the later one lies on top."
)


def coco_dataset(
    images: Sequence[tuple[ImageRecord, Sequence[ObjectRecord], dict]],
    labels: Sequence[str],
    *,
    polygons: bool = False,
) -> dict:
    """The COCO dict for `images`: (image, its objects bottom layer first, flags) triples,
    where flags holds "width", "height", "missing", "changed", and optionally "frame" (the
    1-based frame number of a frame of a multi-frame file), "attributes" (the source's facts:
    modality, pixel spacing, ...) and "file_name" (a copy's name, when it differs from the
    image's path). Category ids are the class
    positions + 1. With `polygons`, segmentations are outer rings as flat [x, y, ...] lists
    through the centres of the boundary pixels (x + 0.5, y + 0.5: pixel x covers [x, x + 1));
    holes are not representable and are filled; an object too thin for a polygon keeps its
    RLE. Polygons lose up to half of each boundary pixel: use RLE for exact masks.

    An object made in a slide field is always given as polygons in level-0 pixels (an RLE
    at a slide's level-0 size would not fit in memory to decode): its outer rings along its
    field pixels' edges (`project/fields.py`), its area and bbox in level-0 pixels, and its
    field under `attributes.field`; the image's width and height are level 0's."""
    category_id = {name: i + 1 for i, name in enumerate(labels)}
    coco_images, annotations = [], []
    for image, objects, flags in images:
        entry = {
            "id": image.id,
            "file_name": flags.get("file_name") or image.path,
            "width": flags["width"],
            "height": flags["height"],
            "sha256": image.sha256,
            "status": image.status,
            "missing": flags["missing"],
            "changed": flags["changed"],
        }
        if flags.get("file_name"):
            entry["source_file"] = image.path
        if flags.get("frame"):
            entry["frame"] = flags["frame"]
        if flags.get("attributes"):
            entry["attributes"] = flags["attributes"]
        coco_images.append(entry)
        for obj in objects:
            placed = obj.field is not None
            attributes = {**obj.provenance.as_dict(), **obj.review_dict(), "layer": obj.layer, "created_at": obj.created_at}
            if placed:
                attributes["field"] = obj.field.as_dict()
            annotations.append(
                {
                    "id": obj.id,
                    "image_id": image.id,
                    "category_id": category_id[obj.label],
                    "segmentation": _level0_polygons(obj) if placed else _segmentation(obj, polygons),
                    "area": fields.area(obj) if placed else obj.area,
                    "bbox": fields.bbox(obj) if placed else obj.bbox,
                    "iscrowd": 0,
                    "attributes": attributes,
                }
            )
    return {
        "info": {
            "description": "basam-ui annotation project",
            "version": __version__,
            "date_created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "overlap": OVERLAP_NOTE,
        },
        "licenses": [],
        "images": coco_images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name, "supercategory": ""} for name, i in category_id.items()],
    }


def _level0_polygons(obj: ObjectRecord) -> list[list[float]]:
    """A field object's outer rings as flat [x, y, ...] lists in level-0 pixels."""
    shape = fields.geometry(obj)
    return [
        [round(float(v), 3) for point in polygon.exterior.coords[:-1] for v in point]
        for polygon in getattr(shape, "geoms", [shape])
        if not polygon.is_empty
    ]


def _segmentation(obj: ObjectRecord, polygons: bool) -> object:
    if polygons:
        rings = [
            [float(v) + 0.5 for point in polygon["outer"] for v in point]
            for polygon in obj.outlines()
        ]
        if rings:
            return rings
    return obj.rle()
