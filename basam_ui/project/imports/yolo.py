"""YOLO segmentation labels -> objects: one object per line, "class x1 y1 x2 y2 ..." with
coordinates divided by the image's width and height, so the image sizes come from the caller;
a line of exactly four numbers after the class is a detection box (cx cy w h) and becomes a
rectangle. Polygons are filled (holes cannot be written in this format), vertices at pixel
centres, as our export writes the boundary pixels. An object that was in several pieces comes
back as one object per piece.

Layout: SOURCE/labels/<image path without extension>.txt (ours, and Ultralytics' with
images/ beside labels/), or SOURCE holding the .txt files itself. Class names from
classes.txt (one per line, ours) or a data.yaml/dataset.yaml "names" (Ultralytics), in SOURCE
or next to its labels folder; without either, classes are named by their number.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np

from .records import AnnotationFileError, ImageMatcher, ImageSizes, ParsedImport, Unmatched, fill_polygon, relative_name


def parse_yolo(source: Path, images: ImageSizes) -> ParsedImport:
    """Parse a YOLO-seg folder.

    Arguments:
      source: the export folder (holding labels/) or the labels folder itself.
      images: the project's image paths -> (H, W); the sizes of the images labelled are
        needed (coordinates are fractions of them): ValueError for one that is None.

    Returns:
      ParsedImport; raises AnnotationFileError for a malformed file.
    """
    source = Path(source)
    labels_root = source / "labels" if (source / "labels").is_dir() else source
    names = class_names(source, labels_root)
    result = ParsedImport("yolo", classes=list(names or []))
    matcher = ImageMatcher(list(images))
    files = sorted(p for p in labels_root.rglob("*.txt") if not (p.parent == labels_root and p.name == "classes.txt"))
    for path in files:
        shown = relative_name(path, source)
        lines = [(n, line.split()) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)]
        lines = [(n, tokens) for n, tokens in lines if tokens]
        rel = path.relative_to(labels_root).with_suffix("").as_posix()
        image, reason = matcher.match(rel, stems=True)
        parsed = [_parse_line(tokens, names, shown, n) for n, tokens in lines]
        if image is None:
            if parsed:
                result.unmatched.append(Unmatched(rel, shown, len(parsed), reason))
            continue
        size = images[image]
        if size is None:
            raise ValueError(f"{image}: its size is needed to read YOLO coordinates; pass the image sizes")
        height, width = size
        for (n, _), (label, kind, points) in zip(lines, parsed):
            mask = _box_mask(points, height, width) if kind == "box" else fill_polygon(points * [width, height], height, width)
            result.add(image, label, mask, {"yolo": kind}, f"{shown}: line {n}")
    return result


def _box_mask(box: np.ndarray, height: int, width: int) -> np.ndarray:
    """A detection box (cx, cy), (w, h) as fractions: its edges are continuous coordinates,
    so the pixels whose centres lie inside it ([x0, x1) with pixel i's centre at i + 0.5)."""
    (cx, cy), (w, h) = box * [width, height]
    x0, x1 = (min(max(math.ceil(v - 0.5), 0), width) for v in (cx - w / 2, cx + w / 2))
    y0, y1 = (min(max(math.ceil(v - 0.5), 0), height) for v in (cy - h / 2, cy + h / 2))
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _parse_line(tokens: list[str], names: Optional[list[str]], shown: str, n: int) -> tuple[str, str, np.ndarray]:
    """(class name, "polygon" or "box", points (k, 2) as fractions of the image)."""
    where = f"line {n}"
    try:
        index = int(tokens[0])
        values = [float(t) for t in tokens[1:]]
    except ValueError:
        raise AnnotationFileError(shown, where, "expected a class number followed by numbers") from None
    if index < 0 or (names is not None and index >= len(names)):
        raise AnnotationFileError(shown, where, f"class {index} is not in the class list ({len(names or [])} classes)")
    if not all(math.isfinite(v) for v in values):
        raise AnnotationFileError(shown, where, "coordinates must be finite numbers")
    label = names[index] if names is not None else str(index)
    if len(values) == 4:
        return label, "box", np.array(values).reshape(2, 2)
    if len(values) < 6 or len(values) % 2:
        raise AnnotationFileError(shown, where, f"expected x y pairs of at least 3 points (or a box: cx cy w h), got {len(values)} numbers")
    return label, "polygon", np.array(values).reshape(-1, 2)


def class_names(source: Path, labels_root: Path) -> Optional[list[str]]:
    """Class names by number from classes.txt or a data.yaml's "names", else None."""
    for folder in dict.fromkeys([source, labels_root, labels_root.parent]):
        listing = folder / "classes.txt"
        if listing.is_file():
            return [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
        for name in ("data.yaml", "dataset.yaml"):
            if (folder / name).is_file():
                return _yaml_names(folder / name, relative_name(folder / name, source))
    return None


def _yaml_names(path: Path, shown: str) -> list[str]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise AnnotationFileError(shown, "", f"not valid YAML: {exc}") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return names
    if isinstance(names, dict) and all(isinstance(k, int) for k in names):
        return [str(names.get(i, i)) for i in range(max(names) + 1)]
    raise AnnotationFileError(shown, "names", "expected a list of class names or a {number: name} mapping")
