"""Fields (basam_ui/sources/fields.py): the field for a view, its pixels from a slide or a photo,
field <-> level-0 coordinates, and masks at field resolution as level-0 polygons and back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import shapely

from basam_ui.sources import Region, open_source
from basam_ui.sources.fields import (
    Field, field_for_view, level0_to_mask, mask_polygons, mask_to_level0, read_field, to_field, to_level0,
)  # fmt: skip
from slides import BIG, pattern, write_slide


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    return write_slide(tmp_path_factory.mktemp("fields") / "slide.tif", BIG, levels=4, mpp=0.25)


def shapes() -> dict[str, np.ndarray]:
    """Masks with what outlines can get wrong: holes, islands in holes, 1-px walls, necks and
    lines, single pixels, diagonals, noise."""
    rng = np.random.default_rng(0)
    out = {}
    m = np.zeros((64, 80), np.uint8)
    cv2.circle(m, (40, 32), 25, 1, -1)
    m[24:40, 32:48] = 0
    m[30:34, 38:42] = 1
    out["disk, hole, island"] = m
    m = np.zeros((40, 40), np.uint8)
    m[5:30, 5:30] = 1
    m[10:20, 10:20] = 0
    m[10:20, 15] = 1
    m[2, 35] = 1
    m[35, 3:30] = 1
    m[np.arange(20, 39), np.arange(20, 39)] = 1
    out["wall, pixel, lines"] = m
    out["noise"] = (rng.random((48, 48)) < 0.5).astype(np.uint8)
    out["blobs"] = (cv2.GaussianBlur(rng.random((200, 160)), (0, 0), 5) > 0.5).astype(np.uint8)
    return {k: v.astype(bool) for k, v in out.items()}


# -- the field for a view -------------------------------------------------------------------


def test_field_for_view_at_one_to_one_and_zoomed_out():
    near = field_for_view(Region(1000, 2000, 1000, 800), 1024)
    assert near == Field(1000, 2000, 1000, 800, 1.0) and near.size == (1000, 800)  # level-0 pixels
    far = field_for_view(Region(0, 0, 8192, 4096), 2048)
    assert far.downsample == 4.0 and far.size == (2048, 1024) and far.pitch == (4.0, 4.0)
    odd = field_for_view(Region(10, 20, 5000, 3001), 1024)
    assert max(odd.size) == 1024 and odd.size == (1024, round(3001 * 1024 / 5000))
    clipped = field_for_view(Region(-100, 15900, 500, 500), 1024, bounds=BIG)
    assert (clipped.x, clipped.y, clipped.width, clipped.height) == (0, 15900, 400, 100)
    widened = field_for_view(Region(10.5, 20.25, 99.2, 50.5), 1024)  # type: ignore[arg-type]
    assert (widened.x, widened.y, widened.width, widened.height) == (10, 20, 100, 51)
    with pytest.raises(ValueError, match="none of the image"):
        field_for_view(Region(30000, 0, 10, 10), 1024, bounds=BIG)
    with pytest.raises(ValueError, match="max_side"):
        field_for_view(Region(0, 0, 10, 10), 0)


def test_field_checks_and_storage():
    field = Field(5, 6, 700, 500, 2.5)
    assert Field.from_dict(field.as_dict()) == field
    assert field.size == (280, 200)
    with pytest.raises(ValueError):
        Field(0, 0, 0, 10, 1.0)
    with pytest.raises(ValueError):
        Field(0, 0, 10, 10, 0.5)  # a field never magnifies
    with pytest.raises(ValueError):
        Field(-1, 0, 10, 10, 1.0)


# -- a field's pixels -----------------------------------------------------------------------


def test_read_field_from_a_slide(slide_path):
    with open_source(slide_path) as slide:
        near = field_for_view(Region(3000, 4000, 900, 700), 1024)
        assert np.array_equal(read_field(slide, near), pattern(3000, 4000, 900, 700))
        far = field_for_view(Region(4096, 8192, 4096, 2048), 1024)  # downsample 4: level 2's pixels
        assert np.array_equal(read_field(slide, far), pattern(1024, 2048, 1024, 512, 2, BIG))
        whole = field_for_view(Region(0, 0, *BIG), 2048)
        pixels = read_field(slide, whole)
        assert pixels.shape == (1638, 2048, 3) and whole.size == (2048, 1638)


def test_read_field_from_a_photo(tmp_path):
    pixels = pattern(0, 0, 640, 480)
    cv2.imwrite(str(tmp_path / "photo.png"), pixels[..., ::-1])
    with open_source(tmp_path / "photo.png") as photo:
        assert photo.kind == "photo"
        near = field_for_view(Region(100, 50, 300, 200), 1024)
        assert np.array_equal(read_field(photo, near), pixels[50:250, 100:400])
        far = field_for_view(Region(0, 0, 640, 480), 320)
        assert read_field(photo, far).shape == (240, 320, 3)


# -- coordinates ----------------------------------------------------------------------------


def test_field_and_level0_coordinates_map_both_ways():
    field = Field(1000, 2000, 5000, 3001, 5000 / 1024)
    width, height = field.size
    corners = to_level0(field, [[0, 0], [width, height], [width / 2, 0]])
    assert np.allclose(corners, [[1000, 2000], [6000, 5001], [3500, 2000]])
    points = np.random.default_rng(1).uniform(0, 1024, (100, 2))
    assert np.allclose(to_field(field, to_level0(field, points)), points)
    assert np.allclose(to_field(field, [[1000, 2000]]), [[0, 0]])


def test_a_rectangle_in_a_field_is_its_level0_rectangle():
    field = Field(1000, 2000, 4096, 4096, 4.0)
    mask = np.zeros((1024, 1024), bool)
    mask[10:20, 30:50] = True  # rows y, columns x
    mask[12:14, 35:40] = False  # a hole
    polygon = mask_to_level0(field, mask)
    assert polygon.geom_type == "Polygon" and len(polygon.interiors) == 1
    assert polygon.bounds == (1000 + 30 * 4, 2000 + 10 * 4, 1000 + 50 * 4, 2000 + 20 * 4)
    # the traced hole cuts its corners diagonally: 1/8 px each
    assert polygon.area == pytest.approx((20 * 10 - 5 * 2 + 4 / 8) * 16)
    hole = shapely.geometry.Polygon(polygon.interiors[0])
    assert hole.bounds == (1000 + 35 * 4, 2000 + 12 * 4, 1000 + 40 * 4, 2000 + 14 * 4)


def test_a_mask_drawn_on_the_slide_maps_to_the_right_level0_polygon(slide_path):
    """Select one 256-px block by its red in a zoomed-out field: its polygon is that block."""
    with open_source(slide_path) as slide:
        field = field_for_view(Region(2048, 1024, 3000, 2000), 1024)  # downsample 2.93
        pixels = read_field(slide, field)
    bx, by = 10, 6  # a block inside the view, its red unique among its neighbours
    red = 30 + 10 * ((bx + 3 * by) % 20)
    mask = pixels[..., 0] == red
    count, labels = cv2.connectedComponents(mask.astype(np.uint8))
    component = labels == labels[int((by * 256 + 128 - 1024) / field.pitch[1]), int((bx * 256 + 128 - 2048) / field.pitch[0])]
    polygon = mask_to_level0(field, component)
    block = shapely.geometry.box(bx * 256, by * 256, (bx + 1) * 256, (by + 1) * 256)
    pitch = max(field.pitch)
    assert polygon.symmetric_difference(block).area < 4 * 256 * pitch  # a pixel's width along the edges
    assert all(abs(a - b) <= pitch for a, b in zip(polygon.bounds, block.bounds))


@pytest.mark.parametrize("name", list(shapes()))
def test_masks_to_polygons_and_back_are_exact(name):
    mask = shapes()[name]
    height, width = mask.shape
    field = Field(12345, 678, width * 3 + 1, height * 3 - 1, 3.0)  # pitches just off 3
    assert field.size == (width, height)
    geometry = mask_to_level0(field, mask)
    assert geometry.is_valid
    assert np.array_equal(level0_to_mask(field, geometry), mask)
    local = mask_polygons(mask)
    if name != "noise":  # outlines along pixel edges: the area is the pixel count
        assert local.area == pytest.approx(mask.sum(), rel=0.01)


def test_empty_and_wrong_sized_masks():
    field = Field(0, 0, 100, 80, 1.0)
    empty = mask_to_level0(field, np.zeros((80, 100), bool))
    assert empty.is_empty
    assert not level0_to_mask(field, empty).any()
    with pytest.raises(ValueError, match="field"):
        mask_to_level0(field, np.zeros((100, 80), bool))
