"""DICOM test files made from numpy (no real patient data): a mammogram, a radiograph, colour
photographs (JPEG baseline, JPEG 2000, uncompressed YBR, palette colour), a 3-frame instance
and objects the reader must refuse. Every file carries a fake patient (`LEAKS`: name, IDs,
birth date, accession number, institution, referring physician, a private tag) so tests can
check that nothing basam-ui returns repeats them.

Each generator writes one file into `folder` and returns `Made(path, pixels)`: the stored
values (or, for colour images, the RGB the file was made from) for the tests' own
computations.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence

# The fake patient: values no output of basam-ui may contain (SEG files excepted).
PATIENT = {
    "PatientName": "Leakcheck^Patricia",
    "PatientID": "PID-LEAK-0042",
    "PatientBirthDate": "19010203",
    "OtherPatientIDs": "OPID-LEAK-7",
    "AccessionNumber": "ACC-LEAK-99",
    "InstitutionName": "Leakcheck General Hospital",
    "ReferringPhysicianName": "Referrer^Leakcheck",
}
PRIVATE_VALUE = "PRIVATE-LEAK-123"
# strings to look for in outputs (a person name is searched by its family name)
LEAKS = ("Leakcheck", "PID-LEAK-0042", "19010203", "OPID-LEAK-7", "ACC-LEAK-99", PRIVATE_VALUE)

MAMMOGRAM_SLOPE, MAMMOGRAM_INTERCEPT = 2.0, -1000.0
MAMMOGRAM_WINDOWS = ((30000.0, 40000.0, "STANDARD"), (24000.0, 16000.0, "HARDER"))  # centre, width, explanation
MAMMOGRAM_SPACING, MAMMOGRAM_MAGNIFICATION = 0.07, 1.1  # Imager Pixel Spacing (mm), its magnification
RADIOGRAPH_SPACING = 0.143
FRAME_WINDOW = (2048.0, 3000.0)


class Made(NamedTuple):
    path: Path
    pixels: np.ndarray  # stored values (frames x rows x cols for multi-frame), or the RGB source


def dataset(sop_class: str, modality: str, transfer_syntax: str = uid.ExplicitVRLittleEndian) -> Dataset:
    """A dataset with file meta, the fake patient, a study, a series and a private tag."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    ds.StudyInstanceUID = uid.generate_uid()
    ds.SeriesInstanceUID = uid.generate_uid()
    ds.FrameOfReferenceUID = uid.generate_uid()
    for keyword, value in PATIENT.items():
        setattr(ds, keyword, value)
    ds.PatientSex = "F"
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20240101", "120000", "1"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Modality = modality
    ds.Manufacturer = "basam-ui tests"
    ds.private_block(0x0011, "BASAM LEAK TEST", create=True).add_new(0x01, "LO", PRIVATE_VALUE)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def set_mono(ds: Dataset, stored: np.ndarray, photometric: str, bits_stored: int) -> None:
    """Native monochrome pixel data (uint16 or int16 `stored`, one frame or frames x rows x cols)."""
    ds.set_pixel_data(stored, photometric, bits_stored, generate_instance_uid=False)


def mammogram(folder: Path, name: str = "mammogram.dcm", rows: int = 320, cols: int = 256) -> Made:
    """A 16-bit MONOCHROME1 digital mammogram (For Presentation) with Rescale Slope/Intercept,
    two windows and Imager Pixel Spacing with a magnification factor."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    breast = ((xx / (cols * 0.85)) ** 2 + ((yy - rows / 2) / (rows * 0.48)) ** 2) < 1
    tissue = 20000 + 9000 * np.exp(-(((xx - cols * 0.3) ** 2 + (yy - rows * 0.5) ** 2) / (2 * (cols * 0.2) ** 2)))
    values = np.where(breast, tissue, 1500) + rng.normal(0, 600, (rows, cols))
    values[int(rows * 0.4) : int(rows * 0.45), int(cols * 0.3) : int(cols * 0.36)] = 31000  # a dense spot
    stored = np.clip(values, 0, 65535).astype(np.uint16)
    ds = dataset(uid.DigitalMammographyXRayImageStorageForPresentation, "MG")
    set_mono(ds, stored, "MONOCHROME1", 16)
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = MAMMOGRAM_SLOPE, MAMMOGRAM_INTERCEPT, "US"
    ds.WindowCenter = [w[0] for w in MAMMOGRAM_WINDOWS]
    ds.WindowWidth = [w[1] for w in MAMMOGRAM_WINDOWS]
    ds.WindowCenterWidthExplanation = [w[2] for w in MAMMOGRAM_WINDOWS]
    ds.PresentationLUTShape = "INVERSE"
    ds.ImagerPixelSpacing = [MAMMOGRAM_SPACING, MAMMOGRAM_SPACING]
    ds.EstimatedRadiographicMagnificationFactor = MAMMOGRAM_MAGNIFICATION
    ds.ImageLaterality, ds.ViewPosition, ds.PatientOrientation = "L", "CC", ["P", "L"]
    return Made(save(ds, folder / name), stored)


def radiograph(folder: Path, name: str = "radiograph.dcm", rows: int = 240, cols: int = 200, **attributes) -> Made:
    """A 12-bit MONOCHROME2 computed radiograph with Pixel Spacing and no window; `attributes`
    are set on the dataset last (e.g. a window, a VOI LUT Function, a VOI LUT Sequence)."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:rows, 0:cols]
    values = 900 + 1800 * (xx / cols) + 400 * np.sin(yy / 9.0) + rng.normal(0, 80, (rows, cols))
    values[:4, :4] = 4095  # outliers the automatic window should ignore
    values[-4:, -4:] = 0
    stored = np.clip(values, 0, 4095).astype(np.uint16)
    ds = dataset(uid.ComputedRadiographyImageStorage, "CR")
    set_mono(ds, stored, "MONOCHROME2", 12)
    ds.PixelSpacing = [RADIOGRAPH_SPACING, RADIOGRAPH_SPACING]
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return Made(save(ds, folder / name), stored)


def ct_slice(folder: Path, name: str = "ct.dcm", rows: int = 64, cols: int = 80) -> Made:
    """A CT slice: signed 16-bit (12 bits stored) with Rescale Intercept -1024, a soft-tissue
    window, and a patient coordinate system (Image Position/Orientation, Pixel Spacing, Slice
    Thickness)."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    body = ((xx - cols / 2) / (cols * 0.45)) ** 2 + ((yy - rows / 2) / (rows * 0.4)) ** 2 < 1
    stored = np.where(body, 1024 + 40 + (xx % 7) * 10, 0).astype(np.int16)  # air 0 -> -1024 HU
    stored[20:26, 30:40] = 1024 + 900  # bone
    ds = dataset(uid.CTImageStorage, "CT")
    set_mono(ds, stored, "MONOCHROME2", 12)
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
    ds.WindowCenter, ds.WindowWidth, ds.WindowCenterWidthExplanation = 40, 400, "SOFT TISSUE"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [-100.0, -80.0, 12.5], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 2.5
    ds.PositionReferenceIndicator = ""
    return Made(save(ds, folder / name), stored)


def enhanced_ct(folder: Path, name: str = "enhanced-ct.dcm", frames: int = 3) -> Made:
    """A multi-frame (Legacy Converted Enhanced) CT of `frames` ct_slice()s 2.5 mm apart, made by
    highdicom's converter: per-frame plane positions, shared pixel measures and windows in
    functional groups. `pixels` is frames x rows x cols."""
    import highdicom as hd
    from pydicom import dcmread

    slices = [dcmread(ct_slice(folder, f"slice{k}-{name}").path) for k in range(frames)]
    for k, ds in enumerate(slices):
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
            setattr(ds, keyword, getattr(slices[0], keyword))
        ds.InstanceNumber, ds.ImagePositionPatient = k + 1, [-100.0, -80.0, 12.5 + 2.5 * k]
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(slices, uid.generate_uid(), 2, uid.generate_uid(), 1)
    return Made(save(enhanced, folder / name), np.stack([ds.pixel_array for ds in slices]))


def voi_lut_item(first_mapped: int, table: np.ndarray, bits: int, explanation: str) -> Dataset:
    """One VOI LUT Sequence item: `table` (uint16) maps values from `first_mapped` on."""
    item = Dataset()
    item.LUTDescriptor = [len(table), first_mapped, bits]
    item.LUTExplanation = explanation
    item.LUTData = table.astype("<u2").tobytes()  # OW (the ambiguous US or OW)
    return item


def multiframe(folder: Path, name: str = "frames.dcm", frames: int = 3, rows: int = 96, cols: int = 128) -> Made:
    """A `frames`-frame MONOCHROME2 instance (12 bits stored, RLE Lossless), each frame
    different (a bar at a frame-specific place), with one window."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    stored = np.empty((frames, rows, cols), np.uint16)
    for k in range(frames):
        frame = 500 + 20 * xx + 5 * yy
        frame[:, 10 + 30 * k : 20 + 30 * k] = 3900
        stored[k] = frame
    ds = dataset(uid.MultiFrameGrayscaleWordSecondaryCaptureImageStorage, "OT")
    set_mono(ds, stored, "MONOCHROME2", 12)
    ds.WindowCenter, ds.WindowWidth = FRAME_WINDOW
    ds.compress(uid.RLELossless, generate_instance_uid=False)
    return Made(save(ds, folder / name), stored)


def smooth_rgb(rows: int, cols: int, seed: int = 3) -> np.ndarray:
    """A smooth colour picture (compresses well, so JPEG errors stay small)."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    r = 128 + 100 * np.sin(xx / 23.0 + seed)
    g = 128 + 100 * np.cos(yy / 17.0)
    b = 60 + 150 * ((xx + yy) / (rows + cols))
    return np.clip(np.stack([r, g, b], axis=2), 0, 255).astype(np.uint8)


def _colour_dataset(ds: Dataset, rows: int, cols: int, photometric: str, frames: list[bytes]) -> None:
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 3
    ds.PhotometricInterpretation = photometric
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"


def jpeg_photo(folder: Path, name: str = "dermoscopy.dcm", rows: int = 144, cols: int = 176) -> Made:
    """A dermoscopy-like RGB photograph, JPEG baseline (bytes Pillow wrote, 4:2:0) as
    YBR_FULL_422. `pixels` is Pillow's own decode of those bytes."""
    buffer = io.BytesIO()
    Image.fromarray(smooth_rgb(rows, cols)).save(buffer, format="JPEG", quality=95)
    ds = dataset(uid.VLPhotographicImageStorage, "XC", uid.JPEGBaseline8Bit)
    _colour_dataset(ds, rows, cols, "YBR_FULL_422", [buffer.getvalue()])
    expected = np.array(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return Made(save(ds, folder / name), expected)


def jpeg2000_photo(folder: Path, name: str = "fundus.dcm", rows: int = 128, cols: int = 160) -> Made:
    """An ophthalmic-like RGB photograph, lossy JPEG 2000 with the irreversible colour
    transform (YBR_ICT; a codestream Pillow wrote). `pixels` is Pillow's decode of it."""
    buffer = io.BytesIO()
    Image.fromarray(smooth_rgb(rows, cols, seed=5)).save(
        buffer, format="JPEG2000", no_jp2=True, irreversible=True, mct=1, quality_mode="rates", quality_layers=[8]
    )
    ds = dataset(uid.OphthalmicPhotography8BitImageStorage, "OP", uid.JPEG2000)
    _colour_dataset(ds, rows, cols, "YBR_ICT", [buffer.getvalue()])
    expected = np.array(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return Made(save(ds, folder / name), expected)


def rgb_to_ybr_full(rgb: np.ndarray) -> np.ndarray:
    """PS3.3 C.7.6.3.1.2's YBR_FULL from RGB (rounded to uint8)."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.1687 * r - 0.3313 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.4187 * g - 0.0813 * b + 128
    return np.clip(np.round(np.stack([y, cb, cr], axis=2)), 0, 255).astype(np.uint8)


def ybr_photo(folder: Path, name: str = "ybr.dcm", rows: int = 64, cols: int = 80) -> Made:
    """Uncompressed YBR_FULL: `pixels` is the RGB it was computed from."""
    rgb = np.random.default_rng(4).integers(0, 256, (rows, cols, 3), dtype=np.uint8)
    ds = dataset(uid.VLPhotographicImageStorage, "XC")
    ds.set_pixel_data(rgb_to_ybr_full(rgb), "YBR_FULL", 8, generate_instance_uid=False)
    return Made(save(ds, folder / name), rgb)


def ybr422_photo(folder: Path, name: str = "ybr422.dcm", rows: int = 40, cols: int = 64) -> Made:
    """Uncompressed YBR_FULL_422 (each horizontal pixel pair shares its chroma: Y1 Y2 Cb Cr).
    `pixels` is the YBR_FULL image the bytes hold, chroma repeated over each pair (uint8)."""
    ybr = rgb_to_ybr_full(np.random.default_rng(7).integers(0, 256, (rows, cols, 3), dtype=np.uint8))
    ybr[:, 1::2, 1:] = ybr[:, 0::2, 1:]  # one Cb, Cr per pair
    packed = np.empty((rows, cols // 2, 4), np.uint8)
    packed[..., 0], packed[..., 1] = ybr[:, 0::2, 0], ybr[:, 1::2, 0]
    packed[..., 2], packed[..., 3] = ybr[:, 0::2, 1], ybr[:, 0::2, 2]
    ds = dataset(uid.VLPhotographicImageStorage, "XC")
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PlanarConfiguration = rows, cols, 3, 0
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = packed.tobytes()
    return Made(save(ds, folder / name), ybr)


def palette_image(folder: Path, name: str = "palette.dcm", rows: int = 48, cols: int = 64) -> Made:
    """PALETTE COLOR: 8-bit indices and three 256-entry 16-bit tables. `pixels` is the
    indices; the tables are `palette_tables()`."""
    indices = np.random.default_rng(6).integers(0, 256, (rows, cols), dtype=np.uint8)
    ds = dataset(uid.SecondaryCaptureImageStorage, "OT")
    ds.set_pixel_data(indices, "PALETTE COLOR", 8, generate_instance_uid=False)
    for colour, table in zip(("Red", "Green", "Blue"), palette_tables()):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", table.astype("<u2").tobytes())
    return Made(save(ds, folder / name), indices)


def palette_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ramp = np.arange(256, dtype=np.uint32)
    red, green, blue = ramp * 257, (255 - ramp) * 257, (ramp * 7) % 256 * 257
    return red.astype(np.uint16), green.astype(np.uint16), blue.astype(np.uint16)


def structured_report(folder: Path, name: str = "report.dcm") -> Path:
    """A Basic Text SR: a DICOM object with no pixel data."""
    ds = dataset(uid.BasicTextSRStorage, "SR")
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "121144", "DCM", "Document Title"
    ds.ConceptNameCodeSequence = Sequence([concept])
    return save(ds, folder / name)


def whole_slide(folder: Path, name: str = "slide.dcm") -> Path:
    """A (tiny) VL Whole Slide Microscopy image."""
    ds = dataset(uid.VLWholeSlideMicroscopyImageStorage, "SM")
    ds.set_pixel_data(smooth_rgb(32, 32), "RGB", 8, generate_instance_uid=False)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.TotalPixelMatrixColumns = ds.TotalPixelMatrixRows = 32
    return save(ds, folder / name)


def unsupported_syntax(folder: Path, name: str = "video.dcm", syntax: str = uid.MPEG2MPML) -> Path:
    """A radiograph-sized header whose pixel data claims a transfer syntax nothing decodes."""
    ds = dataset(uid.VideoEndoscopicImageStorage, "ES", syntax)
    _colour_dataset(ds, 32, 32, "YBR_PARTIAL_420", [b"\x00\x00\x01\xb3" + bytes(60)])
    return save(ds, folder / name)


def truncated(made: Path, folder: Path, keep: float, name: Optional[str] = None) -> Path:
    """A copy of `made` cut to the first `keep` fraction of its bytes."""
    data = made.read_bytes()
    path = folder / (name or f"truncated-{made.name}")
    path.write_bytes(data[: int(len(data) * keep)])
    return path
