"""DICOM SEG export core (basam_ui.project.dicom_seg) against sources made here (tests/dicoms.py):
the SEG reads back with pydicom and highdicom, its frames equal the masks exactly, it
references the source instance (and frame), and its segments carry the labels, colours and
codes given."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

import dicoms
from basam_ui.project.dicom_seg import (
    DEFAULT_CODES, Labels, SegObject, build_segmentation, load_labels, parse_labels, write_segmentation,
)  # fmt: skip

MAKERS = {
    "mammogram": dicoms.mammogram,  # MONOCHROME1 projection, Imager Pixel Spacing, no coordinates
    "radiograph": lambda folder: dicoms.radiograph(folder, rows=37, cols=29),  # odd size: bits straddle frames
    "ct": dicoms.ct_slice,  # patient coordinates: Frame of Reference kept
    "jpeg": dicoms.jpeg_photo,  # colour, compressed
    "frames": dicoms.multiframe,  # a frame of a legacy multi-frame instance
    "enhanced": dicoms.enhanced_ct,  # a frame of a multi-frame instance with patient coordinates
}


def blobs(rows: int, cols: int, seed: int) -> np.ndarray:
    """An irregular mask: random pixels in a box, so any bit misplaced shows."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((rows, cols), bool)
    mask[rows // 5 : rows * 4 // 5, cols // 6 : cols * 3 // 4] = True
    return mask & (rng.random((rows, cols)) < 0.7)


def objects_for(rows: int, cols: int) -> list[SegObject]:
    return [
        SegObject("mass", blobs(rows, cols, 1), (255, 0, 0), tracking_id="object 1"),
        SegObject("calcification", blobs(rows, cols, 2), "#00ff00"),  # overlaps the first
        SegObject("mass", blobs(rows, cols, 3), (0, 0, 255)),
    ]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, dicoms.Made]:
    folder = tmp_path_factory.mktemp("seg-sources")
    return {name: make(folder) for name, make in MAKERS.items()}


MULTI_FRAME = ("frames", "enhanced")


def frame_of(name: str) -> int:
    return 1 if name in MULTI_FRAME else 0


@pytest.mark.parametrize("name", list(MAKERS))
def test_seg_reads_back_with_the_masks_and_the_reference(tmp_path: Path, sources, name: str) -> None:
    source = pydicom.dcmread(sources[name].path, stop_before_pixels=True)
    objects = objects_for(int(source.Rows), int(source.Columns))
    path = write_segmentation(sources[name].path, objects, tmp_path / "out" / "seg.dcm", frame=frame_of(name))
    seg = pydicom.dcmread(path)
    assert seg.SOPClassUID == pydicom.uid.SegmentationStorage and seg.SegmentationType == "BINARY"
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)  # one frame per segment here
    assert frames.shape[0] == len(objects)
    for number, obj in enumerate(objects, start=1):
        groups = seg.PerFrameFunctionalGroupsSequence[number - 1]
        assert groups.SegmentIdentificationSequence[0].ReferencedSegmentNumber == number
        np.testing.assert_array_equal(frames[number - 1].astype(bool), obj.mask)
        reference = groups.DerivationImageSequence[0].SourceImageSequence[0]
        assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert reference.ReferencedSOPClassUID == source.SOPClassUID
        if name in MULTI_FRAME:
            assert reference.ReferencedFrameNumber == 2  # DICOM numbers frames from 1
        else:
            assert "ReferencedFrameNumber" not in reference
    series = seg.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == source.SeriesInstanceUID
    assert series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    # the patient and study modules come from the source, as the standard requires
    assert seg.PatientName == source.PatientName and seg.PatientID == source.PatientID
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.SeriesInstanceUID != source.SeriesInstanceUID

    read = hd.seg.segread(path)  # highdicom reads it too (see the module's docstring on geometry)
    if name in MULTI_FRAME:
        pixels = read.get_pixels_by_source_frame(source.SOPInstanceUID, [2])[0]
        assert not read.get_pixels_by_source_frame(source.SOPInstanceUID, [1]).any()
    else:
        pixels = read.get_pixels_by_source_instance([source.SOPInstanceUID])[0]
    for number, obj in enumerate(objects):
        np.testing.assert_array_equal(pixels[..., number].astype(bool), obj.mask)


def test_geometry_of_projection_and_cross_sectional_sources(sources) -> None:
    mammogram = pydicom.dcmread(sources["mammogram"].path, stop_before_pixels=True)
    seg = build_segmentation(mammogram, objects_for(320, 256)[:1])
    assert "FrameOfReferenceUID" not in seg and seg.PatientOrientation == ["P", "L"]
    assert "FrameOfReferenceUID" in mammogram  # the source is unchanged
    ct = pydicom.dcmread(sources["ct"].path, stop_before_pixels=True)
    seg = build_segmentation(ct, objects_for(64, 80)[:1])
    assert seg.FrameOfReferenceUID == ct.FrameOfReferenceUID
    measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert float(measures.SliceThickness) == 2.5 and [float(v) for v in measures.PixelSpacing] == [0.8, 0.8]


def test_segments_carry_labels_colours_and_codes(tmp_path: Path, sources) -> None:
    labels_file = tmp_path / "labels.json"
    labels_file.write_text(json.dumps({
        "classes": {
            "mass": {
                "category": ["SCT", "49755003", "Morphologically Altered Structure"],
                "type": {"scheme": "SCT", "value": "4147007", "meaning": "Mass"},
            }
        }
    }))  # fmt: skip
    objects = objects_for(320, 256)
    seg = build_segmentation(sources["mammogram"].path, objects, labels=load_labels(labels_file))
    segments = seg.SegmentSequence
    assert [s.SegmentLabel for s in segments] == ["mass", "calcification", "mass"]
    for segment, obj in zip(segments, objects):
        lab = hd.color.CIELabColor
        expected = lab.from_string(obj.colour) if isinstance(obj.colour, str) else lab.from_rgb(*obj.colour)
        assert tuple(segment.RecommendedDisplayCIELabValue) == expected.value
        assert segment.SegmentAlgorithmType == "SEMIAUTOMATIC"
        assert segment.SegmentAlgorithmName.startswith("basam-ui")
    assert hd.color.CIELabColor.from_dicom_value(segments[0].RecommendedDisplayCIELabValue).to_rgb() == (255, 0, 0)
    code = lambda item: (item.CodingSchemeDesignator, item.CodeValue, item.CodeMeaning)  # noqa: E731
    category = ("SCT", "49755003", "Morphologically Altered Structure")
    assert code(segments[0].SegmentedPropertyCategoryCodeSequence[0]) == category
    assert code(segments[0].SegmentedPropertyTypeCodeSequence[0]) == ("SCT", "4147007", "Mass")
    assert code(segments[1].SegmentedPropertyCategoryCodeSequence[0]) == DEFAULT_CODES["category"]  # not in the file
    assert code(segments[1].SegmentedPropertyTypeCodeSequence[0]) == DEFAULT_CODES["type"]
    assert segments[0].TrackingID == "object 1" and "TrackingID" not in segments[1]


def test_manual_segments_name_no_algorithm(sources) -> None:
    seg = build_segmentation(sources["ct"].path, objects_for(64, 80)[:1], algorithm_type="MANUAL")
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "MANUAL"
    assert "SegmentAlgorithmName" not in seg.SegmentSequence[0]


def test_yaml_labels_file_and_bad_ones(tmp_path: Path) -> None:
    yaml_file = tmp_path / "labels.yaml"
    yaml_file.write_text(
        "default:\n  category: [SCT, '91723000', Anatomical Structure]\n"
        "classes:\n  lesion:\n    type: [SCT, '52988006', Lesion]\n"
    )
    labels = load_labels(yaml_file)
    assert labels.codes("lesion") == {
        "category": ("SCT", "91723000", "Anatomical Structure"), "type": ("SCT", "52988006", "Lesion")
    }
    assert labels.codes("other")["type"] == DEFAULT_CODES["type"]
    assert Labels().codes("anything") == DEFAULT_CODES
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"classes": {"mass": {"type": ["SCT", "4147007"]}}}))
    with pytest.raises(ValueError, match=r"bad\.json: class 'mass' type: a code is"):
        load_labels(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable labels file"):
        load_labels(bad)
    with pytest.raises(ValueError, match="mapping"):
        parse_labels({"colours": {}})


def test_bad_requests_are_refused(sources) -> None:
    path = sources["mammogram"].path
    good = objects_for(320, 256)[:1]
    with pytest.raises(ValueError, match="at least one object"):
        build_segmentation(path, [])
    with pytest.raises(ValueError, match=r"mask is \(10, 10\), the source frame \(320, 256\)"):
        build_segmentation(path, [SegObject("mass", np.ones((10, 10), bool))])
    with pytest.raises(ValueError, match="empty"):
        build_segmentation(path, [SegObject("mass", np.zeros((320, 256), bool))])
    with pytest.raises(ValueError, match="no frame 2"):
        build_segmentation(path, good, frame=1)
    with pytest.raises(ValueError, match="algorithm type"):
        build_segmentation(path, good, algorithm_type="GUESSED")
