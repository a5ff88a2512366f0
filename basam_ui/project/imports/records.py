"""What the import parsers return, and the pieces they share: `ImportedObject` (one object to
add), `ParsedImport` (all of a source, with the annotations left out and why),
`AnnotationFileError` (a malformed file: which file, where, what), matching the names a file
gives its images to the project's image paths, and masks from polygons or RLE."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from ..objects import decode_mask, encode_mask
from ..schema import ProjectError

PathLike = Union[str, os.PathLike]
ImageSizes = Mapping[str, Optional[tuple[int, int]]]  # project image path -> (H, W), None when unknown


class AnnotationFileError(ProjectError):
    """A file to import is malformed; the message says which file, where in it, and what."""

    def __init__(self, file: str, where: str, what: str):
        self.file, self.where, self.what = file, where, what
        super().__init__(f"{file}: {where}: {what}" if where else f"{file}: {what}")


@dataclass(frozen=True)
class ImportedObject:
    """One object to add to the project.

    `image`: the image's path relative to the project folder (as `ImageRecord.path`);
    `label`: the class name; `rle`: the full-resolution mask as COCO compressed RLE
    {"size": [H, W], "counts": str} (as objects are stored); `attributes`: what the source
    says about the object besides its mask and class (JSON-ready, format-specific: e.g. a
    COCO annotation's id, iscrowd, score and attributes; a LabelMe shape's group_id, flags,
    description); `origin`: where it came from ("annotations.json: annotation 12").
    """

    image: str
    label: str
    rle: dict
    attributes: dict
    origin: str

    def mask(self) -> np.ndarray:
        """The H x W bool mask."""
        return decode_mask(self.rle["size"][0], self.rle["size"][1], self.rle["counts"])


@dataclass(frozen=True)
class Unmatched:
    """An image named by the source that is not one of the project's: its name as the source
    gives it, the file naming it, how many annotations it has, and why it did not match."""

    name: str
    file: str
    annotations: int
    reason: str


@dataclass
class ParsedImport:
    """A parsed source: `objects` in the order to add them (each on top of the ones before,
    as the source layers them), `classes` in the source's order, `unmatched` images (their
    annotations left out), and `skipped` annotations as (origin, reason)."""

    format: str
    objects: list[ImportedObject] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add_class(self, name: str) -> None:
        if name not in self.classes:
            self.classes.append(name)

    def add(self, image: str, label: str, mask_or_rle: Union[np.ndarray, dict], attributes: dict, origin: str) -> None:
        """Add an object (a bool mask or COCO RLE); an empty mask is skipped with a reason."""
        rle = mask_or_rle if isinstance(mask_or_rle, dict) else None
        if rle is None:
            if not np.asarray(mask_or_rle).any():
                self.skipped.append((origin, "the mask is empty"))
                return
            encoded = encode_mask(mask_or_rle)
            rle = {"size": encoded["size"], "counts": encoded["counts"]}
        self.add_class(label)
        self.objects.append(ImportedObject(image, label, rle, attributes, origin))


class ImageMatcher:
    """Names a source gives its images -> the project's image paths.

    A name matches the project path it equals (after turning backslashes into slashes and
    dropping "./" and "../"), else the one path that is a tail of it or that it is a tail of,
    component by component ("x.jpg" or "/data/set/a/x.jpg" -> "a/x.jpg"; not "b/x.jpg" ->
    "a/x.jpg"), the longest such if several, and only if exactly one is longest. With
    `stems`, names without an extension (YOLO's label files, label map PNGs) match paths by
    their path without its extension too.
    """

    def __init__(self, paths: Sequence[str]):
        self.paths = list(paths)
        self._forms = {p: [PurePosixPath(p).parts] for p in self.paths}
        self._stem_forms = {p: [PurePosixPath(p).parts, PurePosixPath(p).with_suffix("").parts] for p in self.paths}

    def match(self, name: str, stems: bool = False) -> tuple[Optional[str], str]:
        """(project path, "") or (None, why not)."""
        parts = _clean(name)
        if not parts:
            return None, "no image name"
        forms = self._stem_forms if stems else self._forms
        scored = []
        for path in self.paths:
            n = max((_tail_match(parts, form) for form in forms[path]), default=0)
            if n:
                scored.append((n, path))
        if not scored:
            return None, "not an image of the project"
        top = max(n for n, _ in scored)
        best = [path for n, path in scored if n == top]
        if len(best) == 1:
            return best[0], ""
        shown = ", ".join(best[:3]) + (", ..." if len(best) > 3 else "")
        return None, f"ambiguous: could be {shown}"


def _clean(name: str) -> tuple[str, ...]:
    return tuple(p for p in str(name).replace("\\", "/").split("/") if p not in ("", ".", ".."))


def _tail_match(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """How many trailing components a and b share, when the shorter is all of them; else 0."""
    n = 0
    while n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n if n == min(len(a), len(b)) else 0


def load_json(path: Path, shown: str) -> Any:
    """A JSON file's content, or AnnotationFileError saying where it is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise AnnotationFileError(shown, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise AnnotationFileError(shown, f"line {exc.lineno} column {exc.colno}", f"not valid JSON: {exc.msg}") from None


def check_size(
    shown: str, where: str, size: tuple[int, int], image: str, sizes: ImageSizes
) -> None:
    """AnnotationFileError when the project knows `image`'s (H, W) and `size` differs."""
    known = sizes.get(image)
    if known is not None and tuple(known) != tuple(size):
        raise AnnotationFileError(
            shown, where, f"the mask is {size[1]}x{size[0]} (W x H) but the project's image {image} is {known[1]}x{known[0]}"
        )


def positive_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def fill_polygon(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """The pixels inside or on a polygon whose vertices (x, y) are pixel centres (integer x is
    pixel column x), as OpenCV's fillPoly draws it with sub-pixel vertices."""
    import cv2

    mask = np.zeros((height, width), np.uint8)
    fixed = np.round(np.asarray(points, np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)  # 4 fractional bits
    cv2.fillPoly(mask, [fixed], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def relative_name(path: Path, root: Path) -> str:
    """`path` as shown in messages: relative to the source folder when inside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def compressed_counts(counts: str) -> list[int]:
    """The run lengths of a COCO compressed RLE string (pycocotools' `rleFrString`), so that a
    file's RLE can be checked before pycocotools decodes it: its decoder trusts the runs to
    cover the image and leaves memory unset when they do not. ValueError for a string that
    is not one."""
    runs: list[int] = []
    p = 0
    while p < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if p >= len(counts):
                raise ValueError("it ends in the middle of a run")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {counts[p]!r} at {p} is not an RLE character")
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            p += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs
