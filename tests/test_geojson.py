"""QuPath-style GeoJSON of slide objects (basam_ui/project/geojson.py): the FeatureCollection's
structure, colours, provenance, and geometry that shapely reads back with the mask's area, holes
included, in level-0 coordinates."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape

from basam_ui.project.geojson import (
    PROVENANCE_KEY, SlideObject, annotation_feature, dumps, feature_collection, geometry_json, rgb,
)  # fmt: skip
from basam_ui.sources.fields import Field, mask_to_level0


def ring_mask() -> np.ndarray:
    """A disk with a square hole, 300 x 400 field pixels."""
    mask = np.zeros((300, 400), np.uint8)
    cv2.circle(mask, (200, 150), 120, 1, -1)
    mask[110:190, 160:240] = 0
    return mask.astype(bool)


def test_a_collection_as_qupath_reads_it():
    field = Field(40_000, 30_000, 1600, 1200, 4.0)
    mask = ring_mask()
    two = np.zeros((300, 400), bool)
    two[10:30, 10:40] = True
    two[200:220, 300:330] = True
    objects = [
        SlideObject("Tumor", "#c81e1e", mask_to_level0(field, mask), {"side": "basam", "input_size": 1024}, name="#1"),
        SlideObject("Stroma", (30, 144, 255), mask_to_level0(field, two), id="6f1c2a9e-0000-4000-8000-000000000002"),
    ]
    collection = feature_collection(objects, provenance={"slide": {"vendor": "generic-tiff"}})
    text = dumps(collection)
    data = json.loads(text)
    assert data["type"] == "FeatureCollection" and len(data["features"]) == 2
    assert data[PROVENANCE_KEY] == {"slide": {"vendor": "generic-tiff"}}
    first, second = data["features"]
    assert first["type"] == "Feature" and first["geometry"]["type"] == "Polygon"
    assert first["properties"]["objectType"] == "annotation"
    assert first["properties"]["classification"] == {"name": "Tumor", "color": [200, 30, 30]}
    assert first["properties"]["name"] == "#1"
    assert first["properties"][PROVENANCE_KEY] == {"side": "basam", "input_size": 1024}
    assert "id" not in first and second["id"] == "6f1c2a9e-0000-4000-8000-000000000002"
    assert second["geometry"]["type"] == "MultiPolygon" and len(second["geometry"]["coordinates"]) == 2
    assert second["properties"]["classification"]["color"] == [30, 144, 255]
    assert PROVENANCE_KEY not in second["properties"]

    # shapely reads the geometry back: level-0 coordinates, the hole kept, the mask's area
    polygon = shape(first["geometry"])
    assert isinstance(polygon, Polygon) and polygon.is_valid and len(polygon.interiors) == 1
    assert polygon.area == pytest.approx(mask.sum() * 16, rel=0.002)
    x0, y0, x1, y1 = polygon.bounds
    assert (x0, y0) == pytest.approx((40_000 + 80 * 4, 30_000 + 30 * 4), abs=4)
    assert (x1, y1) == pytest.approx((40_000 + 321 * 4, 30_000 + 271 * 4), abs=4)
    assert shapely.Point(40_000 + 200 * 4, 30_000 + 150 * 4).within(polygon) is False  # in the hole
    assert shapely.Point(40_000 + 200 * 4, 30_000 + 60 * 4).within(polygon)
    assert shape(second["geometry"]).area == pytest.approx((20 * 30 + 20 * 30) * 16)
    # RFC 7946 winding: exteriors counter-clockwise, holes clockwise
    assert polygon.exterior.is_ccw and not polygon.interiors[0].is_ccw


def test_ring_lists_and_invalid_outlines_become_valid_polygons():
    square = [(0, 0), (10, 0), (10, 10), (0, 10)]
    hole = [(2, 2), (4, 2), (4, 4), (2, 4)]
    geometry = geometry_json([(square, [hole]), ([(20, 20), (30, 20), (30, 30)], [])])
    assert geometry["type"] == "MultiPolygon"
    assert shape(geometry).area == pytest.approx(100 - 4 + 50)
    bowtie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])  # self-crossing
    fixed = shape(geometry_json(bowtie))
    assert fixed.is_valid and fixed.area == pytest.approx(50)
    with pytest.raises(ValueError, match="no area"):
        annotation_feature(SlideObject("x", "#000000", MultiPolygon()))
    with pytest.raises(ValueError, match="no area"):
        geometry_json(Polygon([(0, 0), (1, 1), (2, 2)]))


def test_colours_and_coordinates():
    assert rgb("#0a0B0c") == [10, 11, 12] and rgb("fff") == [255, 255, 255] and rgb((1, 2, 3)) == [1, 2, 3]
    for bad in ("#12345", "red", (1, 2), (0, 0, 256), (0.5, 0, 0), (True, 0, 0)):
        with pytest.raises(ValueError):
            rgb(bad)  # type: ignore[arg-type]
    fine = Polygon([(0.123456, 0), (10, 0), (10, 10.98765), (0, 10)])
    coordinates = geometry_json(fine)["coordinates"][0]
    assert all(round(v, 3) == v for point in coordinates for v in point)
    with pytest.raises(ValueError):
        dumps({"type": "FeatureCollection", "x": float("nan")})
