"""GeoJSON for whole-slide annotations, as QuPath imports them: a FeatureCollection of
Features whose geometry is a Polygon or MultiPolygon (holes kept) in level-0 pixel coordinates
(x right, y down), with `properties.objectType = "annotation"` and
`properties.classification = {"name": ..., "color": [r, g, b]}`. What basam-ui knows about how
an object was made travels under `properties["basam_ui"]` (QuPath keeps properties it does
not know as they are).

Pure functions over shapely geometries and plain values: no store, no files. Drag the file
onto QuPath's viewer (or File > Import objects from file) with the slide open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

PROVENANCE_KEY = "basam_ui"
COORDINATE_DECIMALS = 3  # level-0 pixels to 1/1000: far finer than any mask

Color = Union[str, Sequence[int]]  # "#rrggbb" or (r, g, b)


@dataclass(frozen=True)
class SlideObject:
    """One object to export: its class name and colour, its outline in level-0 pixels (a
    shapely Polygon or MultiPolygon, or a list of (exterior ring, [hole rings]) pairs), and
    what to record with it (`provenance`: JSON values; `name`: QuPath's object name)."""

    class_name: str
    color: Color
    geometry: Any
    provenance: Mapping[str, Any] = field(default_factory=dict)
    name: Optional[str] = None
    id: Optional[str] = None


def rgb(color: Color) -> list[int]:
    """[r, g, b] (0..255) of "#rrggbb", "#rgb" or an (r, g, b) sequence; ValueError otherwise."""
    if isinstance(color, str):
        text = color.strip().lstrip("#")
        if len(text) == 3:
            text = "".join(c * 2 for c in text)
        try:
            if len(text) != 6:
                raise ValueError
            return [int(text[i : i + 2], 16) for i in (0, 2, 4)]
        except ValueError:
            raise ValueError(f"a colour must be '#rrggbb' or (r, g, b), got {color!r}") from None
    values = list(color)
    if len(values) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in values):
        raise ValueError(f"a colour must be '#rrggbb' or three integers 0..255, got {color!r}")
    return values


def polygonal(geometry: Any) -> Any:
    """A valid shapely Polygon or MultiPolygon from a shapely geometry or a list of
    (exterior, holes) rings; ValueError when nothing of area is left."""
    import shapely
    from shapely.geometry import MultiPolygon, Polygon
    from shapely.geometry.base import BaseGeometry

    if not isinstance(geometry, BaseGeometry):
        geometry = MultiPolygon([Polygon(exterior, list(holes)) for exterior, holes in geometry])
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    parts = [g for g in getattr(geometry, "geoms", [geometry]) if isinstance(g, (Polygon, MultiPolygon))]
    polygons = [p for g in parts for p in getattr(g, "geoms", [g]) if not p.is_empty and p.area > 0]
    if not polygons:
        raise ValueError("the object's outline encloses no area")
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


def geometry_json(geometry: Any) -> dict:
    """GeoJSON geometry of a (Multi)Polygon: exteriors counter-clockwise, holes clockwise
    (RFC 7946, in the coordinates' own frame), coordinates rounded to COORDINATE_DECIMALS."""
    import shapely
    from shapely.geometry import MultiPolygon
    from shapely.geometry.polygon import orient

    geometry = polygonal(shapely.set_precision(polygonal(geometry), 10.0**-COORDINATE_DECIMALS))
    if isinstance(geometry, MultiPolygon):
        geometry = MultiPolygon([orient(p, 1.0) for p in geometry.geoms])
    else:
        geometry = orient(geometry, 1.0)
    return json.loads(shapely.to_geojson(geometry))


def annotation_feature(obj: SlideObject) -> dict:
    """One QuPath annotation Feature."""
    properties: dict[str, Any] = {
        "objectType": "annotation",
        "classification": {"name": str(obj.class_name), "color": rgb(obj.color)},
    }
    if obj.name is not None:
        properties["name"] = str(obj.name)
    if obj.provenance:
        properties[PROVENANCE_KEY] = dict(obj.provenance)
    feature: dict[str, Any] = {"type": "Feature", "geometry": geometry_json(obj.geometry), "properties": properties}
    if obj.id is not None:
        feature["id"] = str(obj.id)
    return feature


def feature_collection(objects: Iterable[SlideObject], provenance: Optional[Mapping[str, Any]] = None) -> dict:
    """A FeatureCollection of the objects' annotation Features (in the given order);
    `provenance` (e.g. the slide's) goes under the collection's own PROVENANCE_KEY."""
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": [annotation_feature(o) for o in objects]}
    if provenance:
        collection[PROVENANCE_KEY] = dict(provenance)
    return collection


def dumps(collection: Mapping[str, Any]) -> str:
    """The collection as compact JSON text (what a .geojson file holds)."""
    return json.dumps(collection, separators=(",", ":"), allow_nan=False)
