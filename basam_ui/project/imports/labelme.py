"""LabelMe JSON (labelme and X-AnyLabeling) -> objects: one JSON per image with `imagePath`
(relative to the JSON), `imageHeight`, `imageWidth` and `shapes`. Area shapes are drawn as
labelme draws them (`labelme.utils.shape_to_mask`, Pillow): polygon (and X-AnyLabeling's
rotation, a 4-point polygon), rectangle (two corners), circle (centre and a point on it), mask
(a base64 PNG placed at its two corner points). Shapes of one label sharing a group_id are one
object, as labelme's instance export has them; lines and points are not areas and are skipped.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import numbers
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .records import (
    AnnotationFileError,
    ImageMatcher,
    ImageSizes,
    ParsedImport,
    Unmatched,
    check_size,
    load_json,
    positive_size,
    relative_name,
)

AREA_SHAPES = ("polygon", "rotation", "rectangle", "circle", "mask")
GEOMETRY = ("points", "mask", "label")


def parse_labelme(source: Path, images: ImageSizes, project_root: Optional[Path] = None) -> ParsedImport:
    """Parse a LabelMe JSON file, or every *.json under a folder.

    Arguments:
      source: a .json file or a folder of them.
      images: the project's image paths -> (H, W), None where unknown.
      project_root: the project folder: an `imagePath` that resolves inside it is matched as
        that relative path; others by name (see `ImageMatcher`).

    Returns:
      ParsedImport; raises AnnotationFileError for a malformed file.
    """
    source = Path(source)
    files = [source] if source.is_file() else sorted(source.rglob("*.json"))
    base = source.parent if source.is_file() else source
    result = ParsedImport("labelme")
    matcher = ImageMatcher(list(images))
    for path in files:
        shown = relative_name(path, base)
        data = load_json(path, shown)
        if not isinstance(data, dict) or not isinstance(data.get("shapes"), list) or not isinstance(data.get("imagePath"), str):
            raise AnnotationFileError(shown, "", "not a LabelMe file: needs \"shapes\" and \"imagePath\"")
        if not (positive_size(data.get("imageHeight")) and positive_size(data.get("imageWidth"))):
            raise AnnotationFileError(shown, "", "needs a positive integer imageHeight and imageWidth")
        size = (data["imageHeight"], data["imageWidth"])
        image, reason = _match(path, data["imagePath"], matcher, project_root)
        if image is None:
            if data["shapes"]:
                result.unmatched.append(Unmatched(data["imagePath"], shown, len(data["shapes"]), reason))
            continue
        check_size(shown, "", size, image, images)
        objects: dict[Any, dict] = {}  # (label, group_id) or a shape's own key -> union of its shapes
        for i, shape in enumerate(data["shapes"]):
            where = f"shape {i}"
            if not isinstance(shape, dict) or not isinstance(shape.get("label"), str):
                raise AnnotationFileError(shown, where, "needs a label")
            kind = shape.get("shape_type") or "polygon"
            if kind not in AREA_SHAPES:
                result.skipped.append((f"{shown}: {where}", f"a {kind} shape is not an area"))
                continue
            mask = _shape_mask(shape, kind, size, shown, where)
            group = shape.get("group_id")
            key = (shape["label"], group) if group is not None else i
            attributes = {k: v for k, v in shape.items() if k not in GEOMETRY}
            if key in objects:
                objects[key]["mask"] |= mask
                objects[key]["attributes"].setdefault("shapes", [objects[key]["attributes"]["shape_type"]]).append(kind)
            else:
                objects[key] = {"label": shape["label"], "mask": mask, "attributes": {**attributes, "shape_type": kind}, "where": where}
        for entry in objects.values():
            result.add(image, entry["label"], entry["mask"], entry["attributes"], f"{shown}: {entry['where']}")
    return result


def _match(path: Path, image_path: str, matcher: ImageMatcher, project_root: Optional[Path]) -> tuple[Optional[str], str]:
    """The project image a LabelMe file is about: its imagePath resolved next to the JSON
    when that lies in the project, else matched by name; else the JSON's own name."""
    if project_root is not None:
        resolved = (path.parent / image_path.replace("\\", "/")).resolve()
        try:
            relative = resolved.relative_to(Path(project_root).resolve()).as_posix()
        except ValueError:
            relative = None
        if relative in matcher.paths:
            return relative, ""
    image, reason = matcher.match(image_path)
    if image is None and reason.startswith("not"):
        by_json, _ = matcher.match(path.with_suffix("").name, stems=True)
        if by_json is not None:
            return by_json, ""
    return image, reason


def _points(shape: dict, count: Optional[int], at_least: int, shown: str, where: str) -> list[tuple[float, float]]:
    points = shape.get("points")
    ok = isinstance(points, list) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in p)
        for p in points
    )  # fmt: skip
    if not ok or (count is not None and len(points) != count) or len(points) < at_least:
        need = f"{count}" if count is not None else f"at least {at_least}"
        raise AnnotationFileError(shown, where, f"a {shape.get('shape_type') or 'polygon'} needs {need} [x, y] points")
    return [(float(x), float(y)) for x, y in points]


def _shape_mask(shape: dict, kind: str, size: tuple[int, int], shown: str, where: str) -> np.ndarray:
    """The shape's pixels, drawn as labelme's `shape_to_mask` draws them."""
    from PIL import Image, ImageDraw

    height, width = size
    if kind == "mask":
        return _mask_shape(shape, size, shown, where)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "circle":
        (cx, cy), (px, py) = _points(shape, 2, 2, shown, where)
        d = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = _points(shape, 2, 2, shown, where)
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
    else:
        draw.polygon(_points(shape, None, 3, shown, where), outline=1, fill=1)
    return np.asarray(canvas, dtype=bool)


def _mask_shape(shape: dict, size: tuple[int, int], shown: str, where: str) -> np.ndarray:
    """A mask shape: the base64 PNG placed with its top-left at points[0] (labelme:
    mask[y1 : y2 + 1, x1 : x2 + 1] = the PNG)."""
    from PIL import Image, UnidentifiedImageError

    (x0, y0), (x1, y1) = _points(shape, 2, 2, shown, where)
    encoded = shape.get("mask")
    if not isinstance(encoded, str):
        raise AnnotationFileError(shown, where, "a mask shape needs its \"mask\" as a base64 PNG")
    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded, validate=True))) as png:
            piece = np.asarray(png) != 0
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as exc:
        raise AnnotationFileError(shown, where, f"its mask is not a base64 PNG ({exc})") from None
    if piece.ndim == 3:
        piece = piece.any(axis=-1)
    left, top = int(x0), int(y0)
    height, width = size
    if (int(y1) - top + 1, int(x1) - left + 1) != piece.shape or left < 0 or top < 0 or top + piece.shape[0] > height or left + piece.shape[1] > width:
        raise AnnotationFileError(
            shown, where, f"its {piece.shape[1]}x{piece.shape[0]} mask does not fit its box {[x0, y0, x1, y1]} in the {width}x{height} image"
        )
    mask = np.zeros(size, bool)
    mask[top : top + piece.shape[0], left : left + piece.shape[1]] = piece
    return mask
