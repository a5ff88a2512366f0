"""COCO instances JSON -> objects: RLE kept exactly (compressed, or uncompressed as crowd
annotations write it), polygons rasterised by pycocotools (COCO's own rasteriser; several
polygons of one annotation are one object). Annotations keep the file's order (ours list the
bottom layer first); everything but the geometry goes to `attributes`."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

from .records import (
    AnnotationFileError,
    ImageMatcher,
    ImageSizes,
    ParsedImport,
    Unmatched,
    check_size,
    compressed_counts,
    load_json,
    positive_size,
)

GEOMETRY = ("segmentation", "image_id", "category_id", "bbox", "area")


def parse_coco(path: Path, images: ImageSizes, shown: str | None = None) -> ParsedImport:
    """Parse a COCO file.

    Arguments:
      path: the annotations JSON.
      images: the project's image paths -> (H, W), None where unknown; an annotation whose
        image is not among them is left out (`unmatched`); a known size must be the file's.
      shown: the file's name in messages (default: its name).

    Returns:
      ParsedImport; raises AnnotationFileError for a malformed file.
    """
    shown = shown or Path(path).name
    data = load_json(Path(path), shown)
    if not isinstance(data, dict):
        raise AnnotationFileError(shown, "", "not a COCO file: the top level is not an object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise AnnotationFileError(shown, "", f"not a COCO file: no {key!r} list")
    result = ParsedImport("coco")
    categories = {}
    for i, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or not isinstance(category.get("name"), str) or "id" not in category:
            raise AnnotationFileError(shown, f"category {i}", "needs an id and a name")
        categories[category["id"]] = category["name"]
        result.add_class(category["name"])
    matcher = ImageMatcher(list(images))
    by_id: dict[Any, dict] = {}
    for i, image in enumerate(data["images"]):
        where = f"image {image.get('id', f'#{i}') if isinstance(image, dict) else f'#{i}'}"
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise AnnotationFileError(shown, where, "needs an id and a file_name")
        if not (positive_size(image.get("height")) and positive_size(image.get("width"))):
            raise AnnotationFileError(shown, where, "needs a positive integer height and width")
        path_in_project, reason = matcher.match(image["file_name"])
        by_id[image["id"]] = {"info": image, "path": path_in_project, "reason": reason, "count": 0}
    for i, ann in enumerate(data["annotations"]):
        where = f"annotation {ann['id']}" if isinstance(ann, dict) and "id" in ann else f"annotation #{i}"
        if not isinstance(ann, dict):
            raise AnnotationFileError(shown, where, "not an object")
        image = by_id.get(ann.get("image_id"))
        if image is None:
            raise AnnotationFileError(shown, where, f"image_id {ann.get('image_id')!r} is not in images")
        if ann.get("category_id") not in categories:
            raise AnnotationFileError(shown, where, f"category_id {ann.get('category_id')!r} is not in categories")
        size = (image["info"]["height"], image["info"]["width"])
        rle = _segmentation_rle(ann.get("segmentation"), size, shown, where)
        image["count"] += 1
        if image["path"] is None:
            continue
        check_size(shown, where, tuple(rle["size"]), image["path"], images)
        attributes = {k: v for k, v in ann.items() if k not in GEOMETRY}
        result.add(image["path"], categories[ann["category_id"]], rle, attributes, f"{shown}: {where}")
    for image in by_id.values():
        if image["path"] is None and image["count"]:
            result.unmatched.append(Unmatched(image["info"]["file_name"], shown, image["count"], image["reason"]))
    return result


def _segmentation_rle(segmentation: Any, size: tuple[int, int], shown: str, where: str) -> dict:
    """An annotation's segmentation as {"size", "counts": str}; AnnotationFileError otherwise."""
    from pycocotools import mask as mask_utils

    height, width = size
    if isinstance(segmentation, dict) and "counts" in segmentation:
        if list(segmentation.get("size", [])) != [height, width]:
            raise AnnotationFileError(shown, where, f"the RLE's size {segmentation.get('size')} is not the image's [{height}, {width}]")
        counts = segmentation["counts"]
        if isinstance(counts, str):
            try:
                runs = compressed_counts(counts)
            except ValueError as exc:
                raise AnnotationFileError(shown, where, f"the RLE counts do not decode: {exc}") from None
            if min(runs, default=0) < 0 or sum(runs) != height * width:
                raise AnnotationFileError(shown, where, f"the RLE runs cover {sum(runs)} pixels, not {height} x {width}")
            return {"size": [height, width], "counts": counts}
        if isinstance(counts, list) and all(isinstance(c, numbers.Integral) and c >= 0 for c in counts):
            if sum(counts) != height * width:
                raise AnnotationFileError(shown, where, f"the RLE counts add up to {sum(counts)}, not {height} x {width} pixels")
            rle = mask_utils.frPyObjects({"size": [height, width], "counts": list(map(int, counts))}, height, width)
            return {"size": [height, width], "counts": rle["counts"].decode("ascii")}
        raise AnnotationFileError(shown, where, "the RLE counts are neither a string nor a list of run lengths")
    if isinstance(segmentation, list) and segmentation and all(isinstance(p, list) for p in segmentation):
        for k, polygon in enumerate(segmentation):
            if len(polygon) < 6 or len(polygon) % 2 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in polygon):
                raise AnnotationFileError(shown, where, f"polygon {k} is not a list of at least 3 x, y pairs")
        rle = mask_utils.merge(mask_utils.frPyObjects([[float(v) for v in p] for p in segmentation], height, width))
        return {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    raise AnnotationFileError(shown, where, "segmentation is neither RLE nor polygons")
