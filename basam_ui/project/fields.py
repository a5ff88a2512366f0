"""Objects in level-0 pixels, whatever they were made in: a slide field (a level-0 rectangle
read at a downsample; the object's mask is at the field's resolution) or the whole image (the
mask is the image's). What the exports and the report need: each object's outline as level-0
polygons (pixel edges, holes kept), its level-0 box and area (and µm² where the image has a
pixel size), and any object drawn into any field at that field's resolution (the patches of
the PNG and YOLO exports). Shapely and the field maps of `sources/fields.py`; no store.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import numpy as np

from ..sources.fields import Field, level0_to_mask, mask_polygons
from .objects import ObjectRecord

Geometry = Any  # a shapely Polygon or MultiPolygon


def pitch(obj: ObjectRecord) -> tuple[float, float]:
    """Level-0 pixels per mask pixel along x and y (1, 1 for an image's object)."""
    return obj.field.pitch if obj.field is not None else (1.0, 1.0)


def geometry(obj: ObjectRecord) -> Geometry:
    """The object's outline in level-0 pixels: a shapely (Multi)Polygon along its mask's pixel
    edges, holes kept (`sources.fields.mask_polygons`), placed by its field."""
    import shapely.affinity

    x0, y0, crop = obj.cropped_mask()
    pitch_x, pitch_y = pitch(obj)
    origin_x, origin_y = (obj.field.x, obj.field.y) if obj.field is not None else (0, 0)
    return shapely.affinity.affine_transform(
        mask_polygons(crop), [pitch_x, 0, 0, pitch_y, origin_x + x0 * pitch_x, origin_y + y0 * pitch_y]
    )


def bbox(obj: ObjectRecord) -> list[float]:
    """[x, y, width, height] of the object's mask pixels in level-0 pixels."""
    x, y, w, h = obj.bbox
    pitch_x, pitch_y = pitch(obj)
    origin_x, origin_y = (obj.field.x, obj.field.y) if obj.field is not None else (0, 0)
    return [origin_x + x * pitch_x, origin_y + y * pitch_y, w * pitch_x, h * pitch_y]


def area(obj: ObjectRecord) -> float:
    """The object's area in level-0 pixels (its mask pixels times the field's pixel area)."""
    pitch_x, pitch_y = pitch(obj)
    return obj.area * pitch_x * pitch_y


def area_um2(obj: ObjectRecord, pixel_size: Optional[tuple[float, float]]) -> Optional[float]:
    """The object's area in µm² for an image of `pixel_size` (µm per level-0 pixel), or None."""
    return None if pixel_size is None else area(obj) * pixel_size[0] * pixel_size[1]


def mask_in_field(obj: ObjectRecord, field: Field) -> np.ndarray:
    """The object drawn at `field`'s resolution (a bool mask of the field's size): its own
    mask when it was made in that field, else its level-0 outline rasterised there (the field
    pixels whose centres lie inside)."""
    if obj.field == field:
        return obj.mask()
    return level0_to_mask(field, geometry(obj))


def fields_of(objects: Iterable[ObjectRecord]) -> list[Field]:
    """The distinct fields the objects were made in, in the order first met."""
    return list(dict.fromkeys(obj.field for obj in objects if obj.field is not None))


def in_field(objects: Sequence[ObjectRecord], field: Field) -> list[ObjectRecord]:
    """The objects (in their order) whose level-0 box meets the field's rectangle."""
    found = []
    for obj in objects:
        x, y, w, h = bbox(obj)
        if x < field.x + field.width and y < field.y + field.height and x + w > field.x and y + h > field.y:
            found.append(obj)
    return found
