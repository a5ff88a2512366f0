"""Exporting a project as a dataset: which images go out, in which format, into which files.

`export_project(project, OUT, "coco" | "png" | "yolo")` writes:
- coco: OUT/annotations.json (COCO instances; see `coco.coco_dataset`);
- png:  OUT/semantic/<image path>.png (8-bit class index), OUT/instance/<image path>.png
  (16-bit object number), OUT/classes.txt, OUT/instances.json (number -> object id, class);
- yolo: OUT/labels/<image path>.txt (see `yolo.yolo_lines`), OUT/classes.txt;
and in every case OUT/report.md, plus OUT/missing.txt and OUT/changed.txt when images are
missing (their objects are exported all the same) or their file changed since annotation.
<image path> is the image's path under the project folder with its extension replaced.
Done images by default; with `all_images`, also every image that has objects.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Union

from ..checkpoints import sha256_file
from ..vocabulary import DATASET_FORMATS
from .coco import coco_dataset
from .labelmap import label_maps, write_png
from .records import ImageRecord
from .report import report_figures, report_markdown
from ..sources import image_size
from .scan import EXPORT_MARKER
from .store import Project
from .yolo import yolo_lines


PathLike = Union[str, os.PathLike]


@dataclass
class ExportResult:
    """What an export wrote: counts, the images listed as missing or changed, the figures."""

    out: Path
    format: str
    images: int = 0
    objects: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)


def export_project(
    project: Project, out: PathLike, fmt: str, *, all_images: bool = False, polygons: bool = False
) -> ExportResult:
    """Write the project's dataset in format `fmt` into folder `out` (made if needed); see
    the module doc for the files. `polygons` applies to COCO. Returns what was written."""
    if fmt not in DATASET_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(DATASET_FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / EXPORT_MARKER).touch()  # an export inside the project folder is not scanned as images
    labels = project.labels()
    result = ExportResult(out=out, format=fmt)
    by_image: dict[int, list] = {}
    for obj in project.all_objects():
        by_image.setdefault(obj.image_id, []).append(obj)
    chosen = [im for im in project.images() if im.status == "done" or (all_images and im.id in by_image)]
    entries = []
    for image in chosen:
        flags = _check_file(project, image, result)
        if flags is not None:
            entries.append((image, by_image.get(image.id, []), flags))
    names = _output_names([image.path for image, _, _ in entries])
    if fmt == "coco":
        (out / "annotations.json").write_text(json.dumps(coco_dataset(entries, labels, polygons=polygons)))
    elif fmt == "png":
        _write_label_maps(out, entries, names, labels)
    else:
        _write_yolo(out, entries, names, labels)
    exported = [obj for _, objects, _ in entries for obj in objects]
    result.images, result.objects = len(entries), len(exported)
    result.figures = report_figures(exported, labels, project.progress())
    warnings = []
    for kind, paths, what in (
        ("missing", result.missing, "image files missing (their objects are exported)"),
        ("changed", result.changed, "image files changed since they were annotated (objects belong to the old file)"),
    ):
        if paths:
            (out / f"{kind}.txt").write_text("".join(f"{p}\n" for p in paths))
            warnings.append(f"{len(paths)} {what}: see {kind}.txt")
    (out / "report.md").write_text(report_markdown(result.figures, f"Annotation report ({fmt})", warnings))
    return result


def export_zip(project: Project, zip_path: PathLike, fmt: str, **options: bool) -> tuple[Path, ExportResult]:
    """`export_project` into a temporary folder, packed as the zip `zip_path` (for the page's
    download button). Returns (the zip's path, the result)."""
    zip_path = Path(zip_path)
    with tempfile.TemporaryDirectory(prefix="basam-ui-export-") as tmp:
        result = export_project(project, tmp, fmt, **options)
        archive = shutil.make_archive(str(zip_path.with_suffix("")), "zip", root_dir=tmp)
    if Path(archive) != zip_path:
        Path(archive).replace(zip_path)
    result.out = zip_path
    return zip_path, result


def _check_file(project: Project, image: ImageRecord, result: ExportResult) -> dict | None:
    """The image's size and whether its file is missing or changed (hashing it now); None
    when its size is unknowable (never opened and gone)."""
    path = project.file_path(image)
    missing = not path.is_file()
    changed = image.changed
    width, height = image.width, image.height
    if not missing:
        changed = changed or (image.sha256 is not None and sha256_file(path) != image.sha256)
        if width is None:
            width, height = image_size(path)
    if missing:
        result.missing.append(image.path)
    if changed:
        result.changed.append(image.path)
    if width is None:
        return None
    return {"width": width, "height": height, "missing": missing, "changed": changed}


def _output_names(paths: list[str]) -> dict[str, str]:
    """Image path -> output path without extension: the path with its extension dropped, or
    kept (a.jpg -> a.jpg) where two images would otherwise share a name."""
    stems = [str(PurePosixPath(p).with_suffix("")) for p in paths]
    taken = {s for s in stems if stems.count(s) > 1}
    return {p: (p if s in taken else s) for p, s in zip(paths, stems)}


def _write_label_maps(out: Path, entries: list, names: dict[str, str], labels: list[str]) -> None:
    class_index = {name: i + 1 for i, name in enumerate(labels)}
    instances = {}
    for image, objects, flags in entries:
        h, w = flags["height"], flags["width"]
        semantic, instance = label_maps(objects, h, w, class_index)
        write_png(semantic, out / "semantic" / f"{names[image.path]}.png")
        write_png(instance, out / "instance" / f"{names[image.path]}.png")
        instances[image.path] = [
            {"number": n, "object_id": obj.id, "class": obj.label, "class_index": class_index[obj.label]}
            for n, obj in enumerate(objects, start=1)
        ]
    (out / "classes.txt").write_text("0 background\n" + "".join(f"{i} {n}\n" for n, i in class_index.items()))
    (out / "instances.json").write_text(json.dumps(instances, indent=1))


def _write_yolo(out: Path, entries: list, names: dict[str, str], labels: list[str]) -> None:
    class_index = {name: i for i, name in enumerate(labels)}
    for image, objects, flags in entries:
        path = out / "labels" / f"{names[image.path]}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = yolo_lines(objects, flags["height"], flags["width"], class_index)
        path.write_text("".join(f"{line}\n" for line in lines))
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in labels))
