"""Fields: the part of an image the model encodes. A field is a level-0 rectangle read at one
downsample so that its long side is at most S (the encoder input size): at 1:1 a 4096-px field
is level-0 pixels, zoomed out it comes from a coarser pyramid level. Masks are made at the
field's resolution; this module maps field pixels to level-0 pixels and back, and turns a
field mask into level-0 polygons (with holes) for exports. A photo is a one-level source:
the same functions work on it.

Coordinates are continuous, x right and y down, with pixel (i, j) covering [i, i+1) x
[j, j+1) (its centre at i + 0.5). Field pixel u covers level-0 [x + u * pitch_x,
x + (u + 1) * pitch_x) with pitch_x = width / output width (and likewise in y): exactly the
pixels `read_field` returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from .base import ImageSource, Region, scaled_size

Geometry = Any  # a shapely Polygon or MultiPolygon (shapely is imported when needed)


@dataclass(frozen=True)
class Field:
    """A level-0 rectangle (x, y, width, height) read at `downsample` level-0 pixels per field
    pixel (>= 1). Its pixels: `size` = (round(width / downsample), round(height / downsample))."""

    x: int
    y: int
    width: int
    height: int
    downsample: float

    def __post_init__(self) -> None:
        if min(self.width, self.height) < 1 or min(self.x, self.y) < 0:
            raise ValueError(f"a field needs a non-empty rectangle at x, y >= 0, got {self}")
        if not (self.downsample >= 1 and math.isfinite(self.downsample)):
            raise ValueError(f"a field's downsample must be a number >= 1, got {self.downsample!r}")

    @property
    def region(self) -> Region:
        """The level-0 rectangle."""
        return Region(self.x, self.y, self.width, self.height)

    @property
    def scale(self) -> float:
        """Field pixels per level-0 pixel (what `ImageSource.read` takes)."""
        return 1.0 / self.downsample

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the field's pixels."""
        return scaled_size(self.width, self.height, self.scale)

    @property
    def pitch(self) -> tuple[float, float]:
        """Level-0 pixels per field pixel along x and y (the downsample, to the rounding of
        `size`)."""
        width, height = self.size
        return self.width / width, self.height / height

    def as_dict(self) -> dict[str, Union[int, float]]:
        """The field as stored: {"x", "y", "width", "height", "downsample"}."""
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height, "downsample": self.downsample}

    @classmethod
    def from_dict(cls, data: dict) -> "Field":
        """The field `as_dict` wrote."""
        return cls(int(data["x"]), int(data["y"]), int(data["width"]), int(data["height"]), float(data["downsample"]))


def field_for_view(view: Region, max_side: int, bounds: Optional[tuple[int, int]] = None) -> Field:
    """The field for what the annotator sees.

    Arguments:
      view: the level-0 rectangle on screen (fractional values are widened to whole pixels).
      max_side: S, the longest side the field may have in its own pixels.
      bounds: the image's level-0 (width, height), to clip the view to (None: no clipping).

    Returns:
      A Field of that rectangle at downsample max(1, long side / S): at 1:1 or closer it is
      level-0 pixels (a view smaller than S stays its size), zoomed out it is read from the
      pyramid so that its long side is S.
    """
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
        raise ValueError(f"max_side must be a positive integer, got {max_side!r}")
    x0, y0 = math.floor(view.x), math.floor(view.y)
    x1, y1 = math.ceil(view.x + view.width), math.ceil(view.y + view.height)
    if bounds is not None:
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(bounds[0], x1), min(bounds[1], y1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"the view {view} shows none of the image")
    width, height = x1 - x0, y1 - y0
    return Field(x0, y0, width, height, max(1.0, max(width, height) / max_side))


def read_field(source: ImageSource, field: Field) -> np.ndarray:
    """The field's pixels: H x W x 3 uint8 RGB of `field.size`, read from the pyramid level
    that fits (slides) or cut from the image (photos)."""
    pixels = source.read(field.region, field.scale)
    width, height = field.size
    if pixels.shape[:2] != (height, width):  # the reads promise this size; a field depends on it
        raise ValueError(f"{source.name}: read {pixels.shape[1]}x{pixels.shape[0]} for a {width}x{height} field")
    return pixels


def to_level0(field: Field, points: Any) -> np.ndarray:
    """Field coordinates (N x 2, x then y) -> level-0 coordinates (N x 2 float)."""
    xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pitch_x, pitch_y = field.pitch
    return np.stack([field.x + xy[:, 0] * pitch_x, field.y + xy[:, 1] * pitch_y], axis=1)


def to_field(field: Field, points: Any) -> np.ndarray:
    """Level-0 coordinates (N x 2, x then y) -> field coordinates (N x 2 float)."""
    xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pitch_x, pitch_y = field.pitch
    return np.stack([(xy[:, 0] - field.x) / pitch_x, (xy[:, 1] - field.y) / pitch_y], axis=1)


def mask_polygons(mask: np.ndarray) -> Geometry:
    """Outlines of a bool mask as a shapely (Multi)Polygon in its own pixel coordinates, along
    pixel edges (holes kept, islands inside holes kept): the region whose pixel centres are
    the mask's pixels.

    OpenCV traces each outer boundary and each hole through the centres of the object's
    boundary pixels (RETR_CCOMP, 8-connected objects). The object is each outer ring's inside
    plus its rim (the traced path widened to the pixel edges: square-capped segments, so 1-px
    necks, lines and single pixels are kept), less each hole's inside except its rim.
    Horizontal and vertical boundaries land exactly on pixel edges; a 45-degree staircase is
    cut along its mean line (the area stays close to the pixel count; a corner the trace cuts
    diagonally, as at a hole's corners, is off by 1/8 px). Every pixel centre lies
    at least 0.2 px inside or outside: `level0_to_mask` gives the mask back exactly.
    """
    import cv2
    import shapely
    from shapely.geometry import MultiPolygon

    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {mask.shape}")
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return MultiPolygon()
    links = hierarchy[0]  # per contour: next, previous, first child, parent
    parts = []
    for i, contour in enumerate(contours):
        if links[i][3] != -1:
            continue  # a hole: taken with its outer boundary below
        path = contour.reshape(-1, 2) + 0.5  # pixel centres
        outline = shapely.union(_inside(path), _rim(path))
        child, holes = links[i][2], []
        while child != -1:
            path = contours[child].reshape(-1, 2) + 0.5
            holes.append(shapely.difference(_inside(path), _rim(path)))
            child = links[child][0]
        if holes:
            outline = shapely.difference(outline, shapely.union_all(holes))
        parts.append(outline)
    return _polygonal(shapely.union_all(parts))


def _inside(path: np.ndarray) -> Geometry:
    """The area a closed traced path encloses (valid: a path that runs out and back along a
    1-px neck touches itself); empty for paths of fewer than 3 points."""
    import shapely
    from shapely.geometry import Polygon

    return shapely.make_valid(Polygon(path)) if len(path) >= 3 else Polygon()


def _rim(path: np.ndarray) -> Geometry:
    """The pixels along a traced path: each segment (the closing one included) widened with
    square caps, so corners and out-and-back spikes are whole pixels. Horizontal and vertical
    segments by half a pixel (onto the pixel edges); 45-degree ones (all else OpenCV's chain
    makes) by half a pixel / sqrt(2), the mean line of the staircase of pixel edges there."""
    import shapely
    from shapely.geometry import MultiLineString, Point

    if len(path) == 1:
        return Point(path[0]).buffer(0.5, cap_style="square")
    axis, diagonal = [], []
    for a, b in zip(path, np.roll(path, -1, axis=0)):
        if a[0] != b[0] and a[1] != b[1]:
            diagonal.append((a, b))
        elif a[0] != b[0] or a[1] != b[1]:
            axis.append((a, b))
    style = {"cap_style": "square", "join_style": "mitre"}
    return shapely.union(
        MultiLineString(axis).buffer(0.5, **style), MultiLineString(diagonal).buffer(0.5 / math.sqrt(2), **style)
    )


def _polygonal(geometry: Geometry) -> Geometry:
    """The polygons of a geometry (a MultiPolygon, possibly empty, or a Polygon)."""
    from shapely.geometry import MultiPolygon, Polygon

    if isinstance(geometry, (Polygon, MultiPolygon)):
        return geometry
    polygons = []
    for part in getattr(geometry, "geoms", []):
        if isinstance(part, Polygon):
            polygons.append(part)
        elif isinstance(part, MultiPolygon):
            polygons.extend(part.geoms)
    return MultiPolygon([p for p in polygons if not p.is_empty])


def mask_to_level0(field: Field, mask: np.ndarray) -> Geometry:
    """A mask at the field's resolution (H x W = the field's size) as level-0 polygons: a
    shapely Polygon or MultiPolygon (empty for an empty mask), holes kept."""
    import shapely
    import shapely.affinity

    width, height = field.size
    if np.shape(mask) != (height, width):
        raise ValueError(f"the mask is {np.shape(mask)}, the field's pixels are {height}x{width}")
    pitch_x, pitch_y = field.pitch
    return shapely.affinity.affine_transform(mask_polygons(mask), [pitch_x, 0, 0, pitch_y, field.x, field.y])


def level0_to_mask(field: Field, geometry: Geometry) -> np.ndarray:
    """Level-0 polygons rasterised at the field's resolution: a bool mask of the field's size,
    True where a field pixel's centre lies inside (even-odd over all rings, so holes and
    islands in holes come out as drawn). The inverse of `mask_to_level0`."""
    import shapely
    import shapely.affinity

    width, height = field.size
    pitch_x, pitch_y = field.pitch
    local = shapely.affinity.affine_transform(
        geometry, [1 / pitch_x, 0, 0, 1 / pitch_y, -field.x / pitch_x, -field.y / pitch_y]
    )
    rings = []
    for polygon in getattr(local, "geoms", [local]):
        if not polygon.is_empty:
            rings.extend(np.asarray(ring.coords)[:, :2] for ring in (polygon.exterior, *polygon.interiors))
    return fill_rings(rings, (height, width))


def fill_rings(rings: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Scanline fill: pixel (i, j) is True when a ray from its centre (i + 0.5, j + 0.5)
    crosses the closed `rings` (each K x 2, x then y) an odd number of times."""
    height, width = shape
    rows, xs = [], []
    for ring in rings:
        start, end = ring, np.roll(ring, -1, axis=0)
        for (x0, y0), (x1, y1) in zip(start, end):
            if y0 == y1:
                continue
            # the centre rows j + 0.5 in [min(y0, y1), max(y0, y1)): each crossing counted once
            j0 = max(0, math.ceil(min(y0, y1) - 0.5))
            j1 = min(height, math.ceil(max(y0, y1) - 0.5))
            if j1 <= j0:
                continue
            j = np.arange(j0, j1)
            rows.append(j)
            xs.append(x0 + (j + 0.5 - y0) * (x1 - x0) / (y1 - y0))
    mask = np.zeros(shape, bool)
    if not rows:
        return mask
    row, x = np.concatenate(rows), np.concatenate(xs)
    order = np.lexsort((x, row))
    row, x = row[order], x[order]
    # crossings pair up within each row (even-odd): pixels whose centre lies in [x_a, x_b)
    first = np.clip(np.ceil(x[0::2] - 0.5), 0, width).astype(np.int64)
    last = np.clip(np.ceil(x[1::2] - 0.5), 0, width).astype(np.int64)
    spans = np.zeros((height, width + 1), np.int32)
    np.add.at(spans, (row[0::2], first), 1)
    np.add.at(spans, (row[0::2], last), -1)
    return np.cumsum(spans, axis=1)[:, :width] > 0
