"""PNG label maps -> objects, in the layout our export writes: SOURCE/classes.txt ("index
name" per line, 0 = background), SOURCE/instance/<name>.png (16- or 8-bit object number),
SOURCE/semantic/<name>.png (8-bit class index) and SOURCE/instances.json ({image path:
[{"number", "class", ...}, ...]}). A label map holds each pixel's topmost object only, so an
object comes back as its visible pixels; one hidden entirely is skipped.

Without instances.json, each number of an instance map is an object whose class is the most
common class index under it; without instance maps, each class of a semantic map is one
object. <name> is the image's path with its extension dropped (kept where two images would
share a name), as `export._output_names` makes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..export import _output_names
from .records import AnnotationFileError, ImageMatcher, ImageSizes, ParsedImport, Unmatched, check_size, load_json, relative_name


def parse_label_maps(source: Path, images: ImageSizes) -> ParsedImport:
    """Parse a folder of label maps.

    Arguments:
      source: the folder holding classes.txt and semantic/ and/or instance/.
      images: the project's image paths -> (H, W), None where unknown; a known size must be
        the maps'.

    Returns:
      ParsedImport; raises AnnotationFileError for a malformed file.
    """
    source = Path(source)
    classes = _read_classes(source)
    result = ParsedImport("png", classes=[name for index, name in sorted(classes.items()) if index])
    matcher = ImageMatcher(list(images))
    listing = source / "instances.json"
    if listing.is_file():
        data = load_json(listing, "instances.json")
        if not isinstance(data, dict):
            raise AnnotationFileError("instances.json", "", "expected {image path: [objects]}")
        names = _output_names(list(data))
        for path_in_file, entries in data.items():
            image, reason = matcher.match(path_in_file)
            if not isinstance(entries, list):
                raise AnnotationFileError("instances.json", path_in_file, "expected a list of objects")
            for k, entry in enumerate(entries):
                if not isinstance(entry, dict) or not isinstance(entry.get("number"), int) or not isinstance(entry.get("class"), str):
                    raise AnnotationFileError("instances.json", f"{path_in_file}: object {k}", "needs a number and a class")
            if image is None:
                result.unmatched.append(Unmatched(path_in_file, "instances.json", len(entries), reason))
                continue
            instance_file = source / "instance" / f"{names[path_in_file]}.png"
            instance = _read_map(instance_file, source, (np.uint8, np.uint16))
            check_size(relative_name(instance_file, source), "", instance.shape, image, images)
            for k, entry in enumerate(entries):
                where = f"{path_in_file}: object {k}"
                _add_visible(result, image, entry["class"], instance == entry["number"],
                             {k: v for k, v in entry.items() if k != "class"}, f"instances.json: {where}")  # fmt: skip
        return result
    instance_dir, semantic_dir = source / "instance", source / "semantic"
    if not instance_dir.is_dir() and not semantic_dir.is_dir():
        raise AnnotationFileError(source.name, "", "no instance/ or semantic/ folder of label maps")
    by_instances = instance_dir.is_dir()
    for path in sorted((instance_dir if by_instances else semantic_dir).rglob("*.png")):
        rel = path.relative_to(instance_dir if by_instances else semantic_dir).with_suffix("").as_posix()
        shown = relative_name(path, source)
        image, reason = matcher.match(rel, stems=True)
        if image is None:
            result.unmatched.append(Unmatched(rel, shown, 1, reason))
            continue
        semantic_file = semantic_dir / f"{rel}.png"
        semantic = _read_map(semantic_file, source, (np.uint8,)) if semantic_file.is_file() else None
        if by_instances and semantic is None:
            raise AnnotationFileError(shown, "", f"no semantic map {relative_name(semantic_file, source)} to give its objects classes")
        instance = _read_map(path, source, (np.uint8, np.uint16)) if by_instances else semantic
        if semantic.shape != instance.shape:
            raise AnnotationFileError(shown, "", f"its semantic map is {semantic.shape[1]}x{semantic.shape[0]}, it is {instance.shape[1]}x{instance.shape[0]}")
        check_size(shown, "", instance.shape, image, images)
        for number in np.unique(instance[instance > 0]).tolist():
            mask = instance == number
            index = int(np.bincount(semantic[mask]).argmax())
            if index not in classes or index == 0:
                raise AnnotationFileError(shown, f"object {number}", f"class index {index} is not in classes.txt")
            _add_visible(result, image, classes[index], mask, {"number": number}, f"{shown}: object {number}")
    return result


def _add_visible(result: ParsedImport, image: str, label: str, mask: np.ndarray, attributes: dict, origin: str) -> None:
    if mask.any():
        result.add(image, label, mask, attributes, origin)
    else:
        result.skipped.append((origin, "hidden under later objects: no pixel of it is in the label map"))


def _read_classes(source: Path) -> dict[int, str]:
    path = source / "classes.txt"
    if not path.is_file():
        raise AnnotationFileError(source.name, "", "no classes.txt (\"index name\" per line) to name the classes")
    classes = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        index, _, name = line.strip().partition(" ")
        if not index.isdigit() or not name.strip():
            raise AnnotationFileError("classes.txt", f"line {n}", "expected a class index and a name")
        classes[int(index)] = name.strip()
    return classes


def _read_map(path: Path, source: Path, dtypes: tuple) -> np.ndarray:
    import cv2

    shown = relative_name(path, source)
    if not path.is_file():
        raise AnnotationFileError(shown, "", "missing")
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise AnnotationFileError(shown, "", "not a readable PNG")
    if array.ndim != 2 or array.dtype not in dtypes:
        bits = " or ".join(f"{np.dtype(d).itemsize * 8}-bit" for d in dtypes)
        raise AnnotationFileError(shown, "", f"expected a single-channel {bits} label map, got {array.dtype} with shape {array.shape}")
    return array
