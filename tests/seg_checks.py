"""Checks of a DICOM SEG written by basam-ui, shared by the export and browser tests: read back
with pydicom and highdicom, the source instance (and frame) it references, its segments'
masks, and dicom3tools' `dciodvfy` (a missing dciodvfy skips, or fails under CI=true: CI
installs dicom3tools)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from browser import in_ci


def segments(path: Path) -> dict[int, np.ndarray]:
    """{segment number: its H x W bool mask} from the SEG's frames read with pydicom (each frame
    names its segment in its Segment Identification Sequence)."""
    import pydicom

    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.astype(bool)
    frames = frames[None] if frames.ndim == 2 else frames
    out = {}
    shared = ds.SharedFunctionalGroupsSequence[0]
    for k, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        identification = group.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence
        number = int(identification[0].ReferencedSegmentNumber)
        out[number] = out.get(number, np.zeros(frames.shape[1:], bool)) | frames[k]
    return out


def references(path: Path) -> list[tuple[str, int | None]]:
    """(Referenced SOP Instance UID, Referenced Frame Number or None) of each item of the SEG's
    Source Image Sequence (in its Shared and Per-frame Functional Groups' Derivation Image)."""
    import pydicom

    ds = pydicom.dcmread(path)
    found = []
    for group in [*ds.get("SharedFunctionalGroupsSequence", []), *ds.PerFrameFunctionalGroupsSequence]:
        for derivation in group.get("DerivationImageSequence", []):
            for source in derivation.SourceImageSequence:
                frame = source.get("ReferencedFrameNumber")
                found.append((str(source.ReferencedSOPInstanceUID), int(frame) if frame is not None else None))
    return found


def segread_masks(path: Path, sop_instance_uid: str, frame: int | None) -> list[np.ndarray]:
    """The segments' masks (in segment order) as highdicom's `segread` reads them for the source
    instance, or for its 1-based `frame` of a multi-frame source."""
    import highdicom as hd

    seg = hd.seg.segread(path)
    if frame is not None:
        pixels = seg.get_pixels_by_source_frame(sop_instance_uid, [frame])[0]
    else:
        pixels = seg.get_pixels_by_source_instance([sop_instance_uid])[0]
    return [pixels[..., k].astype(bool) for k in range(pixels.shape[-1])]


def dciodvfy_errors(path: Path) -> list[str]:
    """The "Error" lines dicom3tools' dciodvfy reports for the file ([] when it is valid).
    dciodvfy missing: the test is skipped, or failed under CI=true."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        message = "dciodvfy (Debian's dicom3tools) is not installed"
        if in_ci():
            pytest.fail(f"{message} (CI=true: .ci/run installs it, so this is a failure)", pytrace=False)
        pytest.skip(message)
    run = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
