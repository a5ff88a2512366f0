"""The `geojson` export: one QuPath-importable FeatureCollection per image with objects,
`OUT/geojson/<image path>.geojson`, each object a Polygon or MultiPolygon (holes kept) in
level-0 pixel coordinates (a slide's; an ordinary image's own pixels), along its mask's pixel
edges (`fields.geometry`), with QuPath's `objectType: "annotation"` and `classification`
(the class name and its colour), and basam-ui's provenance under `properties.basam_ui`
(`geojson.py`). Import it in QuPath with the slide open: File > Import objects from file, or
drag the file onto the viewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from . import fields
from .geojson import SlideObject, dumps, feature_collection

# class colours (by class position): Tableau 10, as QuPath shows them
CLASS_COLOURS = (
    (78, 121, 167), (242, 142, 43), (225, 87, 89), (118, 183, 178), (89, 161, 79), (237, 201, 72),
    (176, 122, 161), (255, 157, 167), (156, 117, 95), (186, 176, 172),
)


def class_colour(labels: Sequence[str], name: str) -> tuple[int, int, int]:
    """The colour of class `name` (by its position among `labels`)."""
    index = list(labels).index(name) if name in labels else len(labels)
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


def image_collection(image, objects: Sequence, labels: Sequence[str], flags: dict) -> dict:
    """The FeatureCollection of one image's objects (bottom layer first)."""
    features = []
    for obj in objects:
        provenance = {**obj.provenance.as_dict(), "object_id": obj.id, "layer": obj.layer,
                      "created_at": obj.created_at, "area_px": fields.area(obj)}  # fmt: skip
        if obj.field is not None:
            provenance["field"] = obj.field.as_dict()
        if image.pixel_size is not None:
            provenance["area_um2"] = fields.area_um2(obj, image.pixel_size)
        features.append(SlideObject(obj.label, class_colour(labels, obj.label), fields.geometry(obj), provenance,
                                    name=f"{obj.label} {obj.id}", id=str(obj.id)))  # fmt: skip
    about = {"image": image.path, "width": flags["width"], "height": flags["height"], "sha256": image.sha256,
             "microns_per_pixel": list(image.pixel_size) if image.pixel_size else None,
             "coordinates": "level-0 pixels, x right, y down"}  # fmt: skip
    return feature_collection(features, about)


def write_geojson(out: Path, entries: Sequence[tuple], names: dict[int, str], labels: Sequence[str]) -> int:
    """Write OUT/geojson/<name>.geojson for each entry with objects. Returns the files written."""
    written = 0
    for image, objects, flags in entries:
        if not objects:
            continue
        target = out / "geojson" / f"{names[image.id]}.geojson"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dumps(image_collection(image, objects, labels, flags)))
        written += 1
    return written
