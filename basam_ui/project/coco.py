"""COCO instances JSON of a project's objects: RLE (default) or polygons, with categories,
image sizes and each object's provenance under `attributes`."""

from __future__ import annotations

import datetime
from typing import Sequence

from .. import __version__
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
    where flags holds "width", "height", "missing", "changed". Category ids are the class
    positions + 1. With `polygons`, segmentations are outer rings as flat [x, y, ...] lists
    through the centres of the boundary pixels (x + 0.5, y + 0.5: pixel x covers [x, x + 1));
    holes are not representable and are filled; an object too thin for a polygon keeps its
    RLE. Polygons lose up to half of each boundary pixel: use RLE for exact masks."""
    category_id = {name: i + 1 for i, name in enumerate(labels)}
    coco_images, annotations = [], []
    for image, objects, flags in images:
        coco_images.append(
            {
                "id": image.id,
                "file_name": image.path,
                "width": flags["width"],
                "height": flags["height"],
                "sha256": image.sha256,
                "status": image.status,
                "missing": flags["missing"],
                "changed": flags["changed"],
            }
        )
        for obj in objects:
            annotations.append(
                {
                    "id": obj.id,
                    "image_id": image.id,
                    "category_id": category_id[obj.label],
                    "segmentation": _segmentation(obj, polygons),
                    "area": obj.area,
                    "bbox": obj.bbox,
                    "iscrowd": 0,
                    "attributes": {**obj.provenance.as_dict(), **obj.review_dict(), "layer": obj.layer,
                                   "created_at": obj.created_at},
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


def _segmentation(obj: ObjectRecord, polygons: bool) -> object:
    if polygons:
        rings = [
            [float(v) + 0.5 for point in polygon["outer"] for v in point]
            for polygon in obj.outlines()
        ]
        if rings:
            return rings
    return obj.rle()
