"""Exporting a project as a dataset: which images go out, in which format, into which files.

`export_project(project, OUT, "coco" | "png" | "yolo" | "dicom-seg")` writes:
- coco: OUT/annotations.json (COCO instances; see `coco.coco_dataset`; each image's source facts
  under its `attributes`, without UIDs unless `keep_uids`);
- png:  OUT/semantic/<image path>.png (8-bit class index), OUT/instance/<image path>.png
  (16-bit object number), OUT/classes.txt, OUT/instances.json (number -> object id, class);
- yolo: OUT/labels/<image path>.txt (see `yolo.yolo_lines`), OUT/images/<image path>.<ext>
  (links to the originals, or copies with `copy_images`), OUT/data.yaml (Ultralytics' layout;
  `val_fraction` splits train and val by image) and OUT/classes.txt (see `yolo.write_dataset`);
- dicom-seg: OUT/<image path>.seg.dcm, one DICOM Segmentation per annotated DICOM item
  (`dicom_seg_export`), and OUT/skipped.txt listing the items left out, with the reason;
- geojson: OUT/geojson/<image path>.geojson, a QuPath-importable FeatureCollection per image
  in level-0 pixels (see `geojson_export`);
and in every case OUT/report.md, plus OUT/missing.txt, OUT/changed.txt and OUT/unreadable.txt
when images are missing (their objects are exported all the same), their file changed since
annotation, or it cannot be read. With `copy_images`, COCO and PNG exports copy the images into
OUT/images/ too (COCO under their `file_name`).
<image path> is the image's path under the project folder with its extension replaced, and
"_f<frame number>" added for a frame of a multi-frame file (`ImageRecord.stem`). An item whose
file is not a plain image (a DICOM frame) is placed beside an export as a PNG of its pixels,
never as its file (`item_files`). Done (and reviewed) images by default; with `all_images`,
also every image that has objects; with `reviewed_only`, only the reviewed ones. Objects a
reviewer rejected are left out unless `include_rejected`; of an image annotated twice, the
copy marked done first goes out (`ReviewStore.objects_to_export`). `include_proposals` adds
the pending proposals of each image (`proposal_export.with_proposals`), under a class
"proposal", marked `attributes.source = "proposal"`.
A slide (objects made in fields) is exported in level-0 pixels by COCO (polygons) and
GeoJSON, and as patches by PNG and YOLO: each field with objects becomes
OUT/images/<slide path>/<field>.png (the field's pixels) with its label maps or YOLO lines
(`patches.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from ..sources.base import public_provenance
from ..vocabulary import DATASET_FORMATS, FINISHED_STATUSES
from . import patches
from .coco import coco_dataset
from .files import inspect_file
from .item_files import ItemFile, objects_window, place_item
from .geojson_export import write_geojson
from .labelmap import label_maps, write_png
from .records import ImageRecord
from .report import report_figures, report_markdown
from .scan import EXPORT_MARKER
from .store import Project
from .yolo import write_dataset


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
    unreadable: list[str] = field(default_factory=list)  # "path: reason" lines
    skipped: list[str] = field(default_factory=list)  # dicom-seg: "item: reason" for items left out
    figures: dict = field(default_factory=dict)


def export_project(
    project: Project,
    out: PathLike,
    fmt: str,
    *,
    all_images: bool = False,
    polygons: bool = False,
    copy_images: bool = False,
    val_fraction: Optional[float] = None,
    seed: int = 0,
    keep_uids: bool = False,
    seg_labels: Optional[PathLike] = None,
    include_rejected: bool = False,
    include_proposals: bool = False,
    reviewed_only: bool = False,
) -> ExportResult:
    """Write the project's dataset into a folder; see the module doc for the files.

    Arguments:
      project: the open project.
      out: the folder (made if needed).
      fmt: "coco", "png", "yolo", "geojson" or "dicom-seg".
      all_images: every image that has objects, not only the done ones.
      polygons: COCO polygons instead of RLE (holes filled).
      copy_images: copy the images into OUT/images/ (YOLO links to them by default).
      val_fraction: YOLO: that share of the images goes to `val` (None: val = train).
      seed: the YOLO split's seed.
      keep_uids: COCO: write the DICOM Study, Series and SOP Instance UIDs into the images'
        attributes (they identify a study; left out by default).
      seg_labels: dicom-seg: a labels file giving segment codes per class (JSON or YAML; see
        `dicom_seg`); None: the default codes.
      include_rejected: also the objects a reviewer rejected.
      include_proposals: also each image's pending proposals (class "proposal").
      reviewed_only: only the reviewed images.

    Returns:
      What was written: counts, missing / changed / unreadable images, the report's figures.
    """
    if fmt not in DATASET_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(DATASET_FORMATS)}")
    codes = None
    if seg_labels is not None:
        from .dicom_seg import load_labels

        codes = load_labels(seg_labels)  # a bad file is refused before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / EXPORT_MARKER).touch()  # an export inside the project folder is not scanned as images
    labels = project.labels()
    result = ExportResult(out=out, format=fmt)
    by_image = project.objects_to_export(include_rejected)
    images = project.images()
    statuses = ("reviewed",) if reviewed_only else FINISHED_STATUSES
    chosen = [im for im in images if im.status in statuses or (all_images and not reviewed_only and im.id in by_image)]
    added: set[int] = set()  # the ids given to the proposals added (no object has them)
    if include_proposals:
        from .proposal_export import with_proposals

        by_image, labels, added = with_proposals(project, chosen, by_image, labels)
    entries = []
    for image in chosen:
        flags = _check_file(project, image, result)
        if flags is not None:
            entries.append((image, by_image.get(image.id, []), flags))
    names = _output_names([image for image, _, _ in entries])
    files = {image.id: ItemFile(project.file_path(image), image.frame, flags["plain_file"], objects_window(objects))
             for image, objects, flags in entries}  # fmt: skip
    if copy_images and fmt not in ("yolo", "dicom-seg", "png"):
        for image, _, flags in entries:
            item = files[image.id]
            target = out / "images" / (image.path if item.plain else names[image.id])
            written = place_item(item, target.with_suffix(""), copy=True)
            if written is not None and not item.plain:  # COCO names the PNG written for it
                flags["file_name"] = written.relative_to(out / "images").as_posix()
    for _, _, flags in entries:
        flags["attributes"] = public_provenance(flags.pop("provenance_kept"), keep_identifying=keep_uids)
    exported = [obj for _, objects, _ in entries for obj in objects]
    result.images, result.objects = len(entries), len(exported)
    if fmt == "coco":
        (out / "annotations.json").write_text(json.dumps(coco_dataset(entries, labels, polygons=polygons)))
    elif fmt == "geojson":
        write_geojson(out, entries, names, labels)
    elif fmt in ("png", "yolo"):  # a slide's fields become patches (their images written here)
        entries, names, made = patches.expand(entries, names)
        patches.write_images(out, made, names, lambda image, field: _field_pixels(project, image, field))
        files.update({patch_id: ItemFile(out / "images" / f"{names[patch_id]}.png") for patch_id, _, _ in made})
        if fmt == "png":
            _write_label_maps(out, entries, names, labels)
            if copy_images:
                for image, _, _ in entries:
                    place_item(files[image.id], out / "images" / names[image.id], copy=True)
        else:
            write_dataset(out, entries, names, labels, files, copy_images=copy_images, val_fraction=val_fraction,
                          seed=seed)  # fmt: skip
    else:
        from .dicom_seg_export import write_segmentations

        _, result.skipped = write_segmentations(out, entries, names, labels, files, codes)
    known = {line.split(": ", 1)[0] for line in result.unreadable}
    result.unreadable += [f"{im.path}: {im.unreadable}" for im in images if im.unreadable and im.path not in known]
    pixel_sizes = {image.id: image.pixel_size for image in images}
    from .team_report import team_figures

    made = [obj for obj in exported if obj.id not in added]  # the proposals added are nobody's work
    result.figures = {**report_figures(made, labels, project.progress(), pixel_sizes),
                      "team": team_figures(project, made)}  # fmt: skip
    warnings = []
    for kind, paths, what in (
        ("missing", result.missing, "image files missing (their objects are exported)"),
        ("changed", result.changed, "image files changed since they were annotated (objects belong to the old file)"),
        ("unreadable", result.unreadable, "image files cannot be read (the project's list says why)"),
        ("skipped", result.skipped, "annotated images have no DICOM SEG (the reasons are listed)"),
    ):
        if paths:
            # file names as their bytes are (a name that is not UTF-8 stays itself)
            (out / f"{kind}.txt").write_text("".join(f"{p}\n" for p in paths), encoding="utf-8", errors="surrogateescape")
            warnings.append(f"{len(paths)} {what}: see {kind}.txt")
    (out / "report.md").write_text(report_markdown(result.figures, f"Annotation report ({fmt})", warnings))
    return result


def export_zip(project: Project, zip_path: PathLike, fmt: str, **options: object) -> tuple[Path, ExportResult]:
    """`export_project` into a temporary folder, packed as the zip `zip_path` (for the page's
    download button). A YOLO zip holds copies of the images (a link, or this machine's paths,
    would mean nothing elsewhere). Returns (the zip's path, the result)."""
    zip_path = Path(zip_path)
    if fmt == "yolo":
        options["copy_images"] = True
    with tempfile.TemporaryDirectory(prefix="basam-ui-export-") as tmp:
        result = export_project(project, tmp, fmt, **options)
        archive = shutil.make_archive(str(zip_path.with_suffix("")), "zip", root_dir=tmp)
    if Path(archive) != zip_path:
        Path(archive).replace(zip_path)
    result.out = zip_path
    return zip_path, result


def _check_file(project: Project, image: ImageRecord, result: ExportResult) -> dict | None:
    """The image's size, whether its file is missing, changed (fingerprinted now) or unreadable,
    whether it is a plain image file, and its source's provenance (as the file says now, else as
    recorded; with its IDENTIFYING part, dropped before anything is written unless asked);
    None when its size is unknowable (never opened, and gone or unreadable)."""
    state = inspect_file(project.root, image.path, image.frame)
    changed = image.changed or (state.digest is not None and image.sha256 is not None and state.digest != image.sha256)
    width, height = (image.width, image.height) if image.width is not None else (state.size or (None, None))
    if state.missing:
        result.missing.append(image.path)
    if state.unreadable is not None:
        result.unreadable.append(f"{image.path}: {state.unreadable}")
    if changed:
        result.changed.append(image.path)
    if width is None:
        return None
    provenance = state.provenance if state.provenance is not None and not changed else image.source
    return {"width": width, "height": height, "missing": state.missing, "changed": changed,
            "unreadable": state.unreadable, "plain_file": state.plain_file, "provenance": state.provenance,
            "provenance_kept": provenance, "frame": image.frame + 1 if image.frames > 1 else None}


def _field_pixels(project: Project, image: ImageRecord, field) -> Optional[object]:
    """A field's pixels read from the image's file, or None when it can't be read."""
    from ..sources import open_source
    from ..sources.fields import read_field

    try:
        with open_source(project.file_path(image)) as source:
            return read_field(source, field)
    except (OSError, ValueError):
        return None


def _output_names(images: list[ImageRecord]) -> dict[int, str]:
    """Image id -> output path without extension (`ImageRecord.stem`: the path with its extension
    dropped, "_f<n>" added for a frame), or with the extension kept (a.jpg -> a.jpg, a.jpg_f2)
    where two images would otherwise share a name."""
    return output_names({image.id: (image.stem, _with_extension(image)) for image in images})


def output_names(items: dict) -> dict:
    """Key -> its output name: `items` maps each key to (its stem, its name with the extension
    kept); the stem unless two keys share it. (The PNG label-map importer finds files by it.)"""
    stems = [stem for stem, _ in items.values()]
    taken = {s for s in stems if stems.count(s) > 1}
    return {key: (kept if stem in taken else stem) for key, (stem, kept) in items.items()}


def _with_extension(image: ImageRecord) -> str:
    return f"{image.path}_f{image.frame + 1}" if image.frames > 1 else image.path


def _write_label_maps(out: Path, entries: list, names: dict[str, str], labels: list[str]) -> None:
    class_index = {name: i + 1 for i, name in enumerate(labels)}
    instances = {}
    for image, objects, flags in entries:
        h, w = flags["height"], flags["width"]
        semantic, instance = label_maps(objects, h, w, class_index)
        write_png(semantic, out / "semantic" / f"{names[image.id]}.png")
        write_png(instance, out / "instance" / f"{names[image.id]}.png")
        instances[image.path if image.frames == 1 else image.display_name] = [
            {"number": n, "object_id": obj.id, "class": obj.label, "class_index": class_index[obj.label]}
            for n, obj in enumerate(objects, start=1)
        ]
    (out / "classes.txt").write_text("0 background\n" + "".join(f"{i} {n}\n" for n, i in class_index.items()))
    (out / "instances.json").write_text(json.dumps(instances, indent=1))
