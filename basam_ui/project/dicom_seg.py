"""DICOM Segmentation (SEG) export, core: one binary Segmentation instance per annotated source
image (a DICOM frame), one segment per object, written with highdicom. Pure functions: the
caller gives the source DICOM and the objects' masks; no project store.

Each segment: its object's class as the Segment Label, a recommended display colour (CIELab,
from the object's RGB), Segmented Property Category and Type codes (`DEFAULT_CODES`, or per
class from a labels file, below), the algorithm type (SEMIAUTOMATIC by default: masks made by
clicking with Segment Anything; MANUAL and AUTOMATIC can be given) and, optionally, a tracking
ID. The SEG references the source SOP Instance (and, for a multi-frame source, the frame) in
its Derivation Image Sequence, and carries the source's patient and study modules as the
standard requires: the one place basam-ui writes patient data.

Geometry. A source with a patient coordinate system (CT, MR slices: Image Position/Orientation
(Patient)) gives a SEG with its Frame of Reference, plane positions and pixel measures. A 2-D
image without one (radiographs, mammograms, photographs, secondary captures) gives a SEG
aligned with it pixel for pixel (Spatial Locations Preserved) and without a Frame of
Reference or pixel measures: with a Frame of Reference, the standard requires a Slice
Thickness, which a projection image has not; with Pixel Spacing and no Slice Thickness,
highdicom 0.28's `segread` refuses the file. Both `pydicom.dcmread(...).pixel_array` and
`highdicom.seg.segread` read what this writes, and dicom3tools' `dciodvfy` reports no errors.

Labels file (JSON, or YAML with the same structure; `load_labels`). Codes are
[coding scheme, code value, code meaning] or {"scheme": ..., "value": ..., "meaning": ...}:

    {
      "default": {"category": ["SCT", "85756007", "Tissue"], "type": ["SCT", "85756007", "Tissue"]},
      "classes": {
        "mass": {"category": ["SCT", "49755003", "Morphologically Altered Structure"],
                 "type": ["SCT", "4147007", "Mass"]},
        "calcification": {"type": ["SCT", "18115005", "Pathologic calcification"]}
      }
    }

A class missing from "classes", or an entry without "category" or "type", takes the default's;
"default" may be left out (then `DEFAULT_CODES`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

PathLike = Union[str, os.PathLike]
Colour = Union[tuple[int, int, int], str]  # (r, g, b) 0..255, or a colour name / "#rrggbb"
SEGMENT_LABEL_LENGTH = 64  # Segment Label is a DICOM LO
ALGORITHM_TYPES = ("MANUAL", "SEMIAUTOMATIC", "AUTOMATIC")
DEFAULT_ALGORITHM_TYPE = "SEMIAUTOMATIC"
DEFAULT_SERIES_NUMBER = 900  # a number of its own, away from the scanner's series
# the default segment codes (CID 7150 "Tissue" / CID 7166 "Tissue"), for classes a labels file leaves out
DEFAULT_CODES = {"category": ("SCT", "85756007", "Tissue"), "type": ("SCT", "85756007", "Tissue")}


@dataclass(frozen=True)
class SegObject:
    """One object to write as a segment: its class, its H x W bool mask at the source frame's
    size, its colour, and optionally an ID that tracks it (e.g. "object 17")."""

    class_name: str
    mask: np.ndarray
    colour: Colour = (255, 0, 0)
    tracking_id: Optional[str] = None


@dataclass(frozen=True)
class Labels:
    """Segment codes per class name; `codes(class_name)` -> {"category": code, "type": code},
    each code a (scheme, value, meaning) tuple."""

    default: Mapping[str, tuple[str, str, str]] = field(default_factory=lambda: dict(DEFAULT_CODES))
    classes: Mapping[str, Mapping[str, tuple[str, str, str]]] = field(default_factory=dict)

    def codes(self, class_name: str) -> dict[str, tuple[str, str, str]]:
        own = self.classes.get(class_name, {})
        return {part: own.get(part, self.default[part]) for part in ("category", "type")}


def load_labels(path: PathLike) -> Labels:
    """A labels file (JSON; YAML when it ends in .yaml or .yml; the format is in the module's
    docstring). Raises ValueError naming the file and what is wrong."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        raise ValueError(f"{path}: not a readable labels file ({e})") from e
    try:
        return parse_labels(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def parse_labels(data: Any) -> Labels:
    """Labels from the labels file's structure (a dict); ValueError saying what is wrong."""
    if not isinstance(data, dict) or set(data) - {"default", "classes"}:
        raise ValueError('a labels file is a mapping with "default" and/or "classes"')
    default = dict(DEFAULT_CODES)
    default.update(_entry(data.get("default") or {}, "default"))
    classes = data.get("classes") or {}
    if not isinstance(classes, dict):
        raise ValueError('"classes" must map class names to their codes')
    return Labels(default, {str(name): _entry(entry, f"class {name!r}") for name, entry in classes.items()})


def _entry(entry: Any, where: str) -> dict[str, tuple[str, str, str]]:
    if not isinstance(entry, dict) or set(entry) - {"category", "type"}:
        raise ValueError(f'{where}: expected a mapping with "category" and/or "type"')
    return {part: _code(value, f"{where} {part}") for part, value in entry.items()}


def _code(value: Any, where: str) -> tuple[str, str, str]:
    if isinstance(value, dict):
        value = [value.get("scheme"), value.get("value"), value.get("meaning")]
    parts_ok = isinstance(value, (list, tuple)) and len(value) == 3
    if not parts_ok or not all(isinstance(v, (str, int)) and str(v) for v in value):
        raise ValueError(f"{where}: a code is [scheme, value, meaning] or {{scheme, value, meaning}}, got {value!r}")
    return str(value[0]), str(value[1]), str(value[2])


def build_segmentation(
    source: Union[PathLike, Any],
    objects: Sequence[SegObject],
    frame: int = 0,
    labels: Optional[Labels] = None,
    algorithm_type: str = DEFAULT_ALGORITHM_TYPE,
    series_instance_uid: Optional[str] = None,
    series_number: int = DEFAULT_SERIES_NUMBER,
    content_creator_name: Optional[str] = None,
) -> Any:
    """A binary DICOM Segmentation of one frame of `source`.

    Arguments:
      source: the source DICOM file (path) or its pydicom Dataset (pixel data not needed).
      objects: one segment each, in order (segment numbers 1..n); masks H x W at the frame's size.
      frame: the source frame, 0-based (referenced as DICOM frame number frame + 1).
      labels: segment codes per class (None: DEFAULT_CODES for every class).
      algorithm_type: MANUAL, SEMIAUTOMATIC (default) or AUTOMATIC; the latter two name
        basam-ui (Segment Anything) as the algorithm.
      series_instance_uid: the SEG's series (None: a new one); give one UID to put every SEG
        of an export in one series. series_number: that series' number.
      content_creator_name: who made the masks (a DICOM person name), if to be recorded.

    Returns:
      The highdicom Segmentation (a pydicom Dataset; `.save_as(path)`).
    Raises ValueError for no objects, a mask of the wrong size or empty, a frame the source
    lacks, an unknown algorithm type.
    """
    import highdicom as hd

    from .. import __version__

    source = _source_dataset(source)
    rows, cols = int(source.Rows), int(source.Columns)
    frames = int(source.get("NumberOfFrames", 1) or 1)
    if not objects:
        raise ValueError("a segmentation needs at least one object")
    if not 0 <= frame < frames:
        raise ValueError(f"the source has {frames} frame(s); there is no frame {frame + 1}")
    if algorithm_type not in ALGORITHM_TYPES:
        raise ValueError(f"algorithm type must be one of {', '.join(ALGORITHM_TYPES)}, got {algorithm_type!r}")
    for number, obj in enumerate(objects, start=1):
        if obj.mask.shape != (rows, cols):
            raise ValueError(
                f"object {number} ({obj.class_name}): mask is {obj.mask.shape}, the source frame {(rows, cols)}"
            )
        if not obj.mask.any():
            raise ValueError(f"object {number} ({obj.class_name}): the mask is empty")
    labels = labels or Labels()
    algorithm = None
    if algorithm_type != "MANUAL":
        algorithm = hd.AlgorithmIdentificationSequence(
            name="basam-ui (Segment Anything, BA-SAM)",
            version=__version__,
            family=hd.sr.CodedConcept("123110", "DCM", "Artificial Intelligence"),
        )
    descriptions = [
        _segment(hd, number, obj, labels, algorithm_type, algorithm) for number, obj in enumerate(objects, start=1)
    ]
    masks = np.stack([np.asarray(obj.mask, bool) for obj in objects], axis=-1)[None]  # 1 x H x W x segments
    spatial = hd.spatial.get_image_coordinate_system(source) is not None
    if spatial:  # patient coordinates: highdicom derives positions per source frame; others stay empty
        view = source
        if frames > 1:
            full = np.zeros((frames, rows, cols, len(objects)), bool)
            full[frame] = masks[0]
            masks = full
    else:
        view = _planar_view(source)
    seg = hd.seg.Segmentation(
        source_images=[view],
        pixel_array=masks,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_instance_uid or hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="basam-ui",
        manufacturer_model_name="basam-ui",
        software_versions=__version__,
        device_serial_number="none",
        content_label="BASAM_UI",
        content_description="Segments annotated with basam-ui",
        content_creator_name=content_creator_name,
        omit_empty_frames=True,
    )
    if not spatial:
        if "NumberOfFrames" in source:
            _restore_references(seg, source, frame)
        # General Image: Patient Orientation is type 2C without plane orientation
        seg.PatientOrientation = source.get("PatientOrientation", "")
    return seg


def write_segmentation(
    source: Union[PathLike, Any], objects: Sequence[SegObject], path: PathLike, **options: Any
) -> Path:
    """`build_segmentation(source, objects, **options)` saved as a DICOM file at `path` (its
    folder made). Returns the path."""
    path = Path(path)
    seg = build_segmentation(source, objects, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
    return path


def _source_dataset(source: Union[PathLike, Any]) -> Any:
    import pydicom

    if isinstance(source, (str, os.PathLike)):
        return pydicom.dcmread(source, stop_before_pixels=True)
    if not isinstance(source, pydicom.Dataset):
        raise TypeError(f"source must be a path or a pydicom Dataset, got {type(source).__name__}")
    return source


def _segment(hd: Any, number: int, obj: SegObject, labels: Labels, algorithm_type: str, algorithm: Any) -> Any:
    codes = labels.codes(obj.class_name)
    colour = obj.colour
    lab = hd.color.CIELabColor
    display = lab.from_string(colour) if isinstance(colour, str) else lab.from_rgb(*colour)
    tracking = {"tracking_id": obj.tracking_id, "tracking_uid": hd.UID()} if obj.tracking_id else {}
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=obj.class_name[:SEGMENT_LABEL_LENGTH],
        segmented_property_category=_concept(hd, codes["category"]),
        segmented_property_type=_concept(hd, codes["type"]),
        algorithm_type=algorithm_type,
        algorithm_identification=algorithm,
        display_color=display,
        **tracking,
    )


def _concept(hd: Any, code: tuple[str, str, str]) -> Any:
    scheme, value, meaning = code
    return hd.sr.CodedConcept(value, scheme, meaning)


def _planar_view(source: Any) -> Any:
    """The source as highdicom should see a 2-D image without patient coordinates: no Frame of
    Reference, no pixel measures (see the module's docstring), and a multi-frame instance as
    one frame of Secondary Capture (highdicom takes multi-frame IODs as enhanced ones, with
    functional groups a legacy multi-frame image lacks; `_restore_references` puts the real
    SOP class and the frame number back into the references). A copy."""
    from pydicom.uid import SecondaryCaptureImageStorage

    from ..sources.dicom import copy_dataset

    view = copy_dataset(source)
    dropped = (
        "FrameOfReferenceUID", "PixelSpacing", "NumberOfFrames", "SharedFunctionalGroupsSequence",
        "PerFrameFunctionalGroupsSequence",
    )  # fmt: skip
    for keyword in dropped:
        if keyword in view:
            delattr(view, keyword)
    if "NumberOfFrames" in source:
        view.SOPClassUID = SecondaryCaptureImageStorage
    return view


def _restore_references(dataset: Any, source: Any, frame: Optional[int]) -> None:
    """In every item of `dataset` referencing the source instance: its real SOP Class UID, and
    in Source Image Sequence items the 1-based frame number (when `frame` is given; on a copy
    of the item, which highdicom shares with the Referenced Instance Sequence)."""
    from ..sources.dicom import copy_dataset

    for element in dataset:
        if element.VR != "SQ":
            continue
        for index, item in enumerate(element.value):
            if item.get("ReferencedSOPInstanceUID") == source.SOPInstanceUID:
                if frame is not None and element.keyword == "SourceImageSequence":
                    item = element.value[index] = copy_dataset(item)
                    item.ReferencedFrameNumber = frame + 1
                item.ReferencedSOPClassUID = source.SOPClassUID
            _restore_references(item, source, frame)
