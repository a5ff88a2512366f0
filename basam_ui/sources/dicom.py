"""DICOM images: one frame of a DICOM instance (a file, its bytes or a stream) read with pydicom,
windowed to the 8-bit RGB image the model sees.

Compressed transfer syntaxes decode through pydicom's plugins: pylibjpeg with its libjpeg
(JPEG baseline, extended, lossless; JPEG-LS) and openjpeg (JPEG 2000, HTJ2K) plugins, Pillow,
pyjpegls where installed; RLE and deflate are pydicom's own. The pixels go through the Modality
LUT (Rescale Slope/Intercept, or a Modality LUT Sequence), then a `Window` (`dicom_window`:
the file's Window Center/Width presets or VOI LUT Sequence items, the first by default; else
an automatic window), then MONOCHROME1 is inverted. Colour images are not windowed: YBR_* come
out as RGB (pydicom's conversion), PALETTE COLOR through its tables, >8-bit colour scaled by its
Bits Stored. For enhanced multi-frame objects a frame's functional groups (Pixel Value
Transformation, Frame VOI LUT, Pixel Measures) override the top-level attributes.

Frames: `DicomSource(path, frame=i)` opens frame i, 0-based; users see DICOM's 1-based frame
numbers ("frame 2 of 3" in `name`, `provenance()["frame"]`). Opening reads the header only
(and walks the pixel data's item headers to catch a truncated file); `read` decodes one frame.
Nothing this module returns or raises carries patient attributes: the header stays private.
"""

from __future__ import annotations

import copy
import hashlib
import io
import struct
from typing import Any, BinaryIO, Optional, Union

import numpy as np

from .base import (
    DEFAULT_MAX_PIXELS, IDENTIFYING, FileSource, ImageReadError, Region, Source, SourceKind, check_max_pixels,
)  # fmt: skip
from .dicom_window import VOI_LUT, Window, file_windows, grey_levels, modality_values, resolve, to_uint8

EXTENSIONS = frozenset({".dcm", ".dicom"})
PREAMBLE = 128  # bytes before the "DICM" prefix of a Part 10 file
WHOLE_SLIDE = "1.2.840.10008.5.1.4.1.1.77.1.6"  # VL Whole Slide Microscopy Image Storage
SEGMENTATIONS = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")  # (label map) Segmentation
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "PALETTE COLOR")
# Pixel Data, Float Pixel Data, Double Float Pixel Data -> bytes per sample (0: by Bits Allocated)
PIXEL_TAGS = {0x7FE00010: 0, 0x7FE00008: 4, 0x7FE00009: 8}
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
# functional-group macros whose attributes override the top-level ones for a frame
FRAME_MACROS = {
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept", "RescaleType"),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction"),
    "PixelMeasuresSequence": ("PixelSpacing",),
}


def magic(head: bytes) -> bool:
    """A DICOM Part 10 file: "DICM" after the 128-byte preamble."""
    return head[PREAMBLE : PREAMBLE + 4] == b"DICM"


class DicomSource(FileSource):
    """One frame of a DICOM image.

    Arguments:
      source: a path, the file's bytes, or a binary file object.
      max_pixels: the largest frame (rows x columns) `read` decodes.
      frame: the frame to read, 0-based (users see it as frame + 1).
      window: for monochrome images, a `Window` or its `key()` text (None: `windows[0]`, the
        file's first preset, else auto). Colour images take none.

    Attributes: `frames` (the instance's frame count), `frame`, `windows` (monochrome: the file's
    presets, then auto and full range; colour: empty), `window` (the one `read` uses),
    `photometric`, `modality`. Raises ImageReadError (one sentence) for a file that is not a
    readable DICOM image: no pixel data, a whole-slide image, a segmentation, an unsupported
    transfer syntax or photometric interpretation, a truncated file, a frame it does not have.
    """

    kind = "dicom"

    def __init__(
        self, source: Source, max_pixels: int = DEFAULT_MAX_PIXELS, frame: int = 0,
        window: Union[Window, str, None] = None,
    ):  # fmt: skip
        self.max_pixels = check_max_pixels(max_pixels)
        self.take(source)
        file_name = self.name
        with self.stream() as fp:
            dataset = _read_header(fp, file_name)
            _check_image(dataset, fp, file_name)
        self.frames = int(dataset.get("NumberOfFrames", 1) or 1)
        if isinstance(frame, bool) or not hasattr(frame, "__index__"):
            raise TypeError(f"frame must be an integer (0-based), got {type(frame).__name__}")
        frame = int(frame.__index__())
        if not 0 <= frame < self.frames:
            raise ImageReadError(f"{file_name}: has {self.frames} frame(s); there is no frame {frame + 1}")
        self.frame = frame
        if self.frames > 1:
            self.name = f"{file_name} [frame {frame + 1} of {self.frames}]"
        self._header = _frame_header(dataset, frame)
        self.photometric = str(self._header.PhotometricInterpretation).strip().upper()
        self.inverted = self.photometric == "MONOCHROME1"
        self.modality = str(self._header.get("Modality", "") or "")
        monochrome = self.photometric in MONOCHROME
        self.windows: tuple[Window, ...] = (
            (*file_windows(self._header), Window.auto(), Window.full_range()) if monochrome else ()
        )
        self.window: Optional[Window] = self._choose(window)
        self._resolved = self.window if self.window is None or self.window.center is not None else None

    def _choose(self, window: Union[Window, str, None]) -> Optional[Window]:
        if not self.windows:
            if window is not None:
                raise ValueError(f"{self.name}: a {self.photometric} image has no display window")
            return None
        if window is None:
            return self.windows[0]
        if isinstance(window, str):
            window = Window.parse(window)
        if not isinstance(window, Window):
            raise TypeError(f"window must be a Window or its key text, got {type(window).__name__}")
        preset = next((w for w in self.windows if w.key() == window.key()), None)
        if preset is None and window.mode == VOI_LUT:
            raise ValueError(f"{self.name}: has no VOI LUT {window.lut}")
        return preset or window

    def with_window(self, window: Union[Window, str, None]) -> "DicomSource":
        """The same frame under another window (nothing re-read)."""
        other = copy.copy(self)
        other.window = other._choose(window)
        other._resolved = other.window if other.window is None or other.window.center is not None else None
        return other

    def __repr__(self) -> str:
        window = self.window.key() if self.window is not None else None
        return f"DicomSource({self.name!r}, frame={self.frame}, window={window!r})"

    @property
    def size(self) -> tuple[int, int]:
        return int(self._header.Columns), int(self._header.Rows)

    def read(self, region: Optional[Region] = None, scale: float = 1.0) -> np.ndarray:
        from .photo import cut

        self.check()
        stored = self._decode()
        return cut(self._render(stored), region, scale)

    def _decode(self) -> np.ndarray:
        from pydicom.pixels import pixel_array

        with self.stream() as fp:
            try:
                stored = pixel_array(fp, index=self.frame)
            except Exception as e:  # the decoders raise anything from ValueError to RuntimeError
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise ImageReadError(
                    f"{self.name}: cannot decode the pixel data, corrupt or truncated ({reason})"
                ) from e
        expected = (int(self._header.Rows), int(self._header.Columns))
        if stored.shape[:2] != expected:
            raise ImageReadError(f"{self.name}: decoded pixels are {stored.shape[:2]}, the header says {expected}")
        return stored

    def _render(self, stored: np.ndarray) -> np.ndarray:
        """Decoded frame values -> H x W x 3 uint8 RGB (windowed, for monochrome)."""
        header = self._header
        if self.photometric in MONOCHROME:
            values = modality_values(stored, header)
            self._resolved = resolve(self.window, values, header)  # type: ignore[arg-type]
            grey = to_uint8(grey_levels(values, self._resolved, header), invert=self.photometric == "MONOCHROME1")
            return np.repeat(grey[..., None], 3, axis=2)
        if self.photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            bits = int(header.RedPaletteColorLookupTableDescriptor[2])
            return _to_8bit(apply_color_lut(stored, header), bits)
        return _to_8bit(stored, int(header.get("BitsStored", 8) or 8))

    def window_record(self) -> Optional[dict[str, Any]]:
        window = self._resolved or self.window
        return window.record() if window is not None else None

    def fingerprint(self) -> str:
        """SHA-256 of the file (or bytes); for a frame of a multi-frame instance, with
        "-f<frame number>" added, so two frames differ."""
        if self.path is not None:
            digest = super().fingerprint()
        else:
            digest = hashlib.sha256(self._data or b"").hexdigest()
        return f"{digest}-f{self.frame + 1}" if self.frames > 1 else digest

    def provenance(self) -> dict[str, Any]:
        """kind, modality, SOP class (UID and name), transfer syntax, frame number (1-based)
        and frame count, photometric interpretation, bits stored, pixel spacing (mm, between
        rows then columns) and which attribute it came from, the window (`Window.record()`; for
        auto, its centre and width once read; None for colour), and under "identifying" the
        Study, Series and SOP Instance UIDs. No patient attributes."""
        header = self._header
        spacing, spacing_source = pixel_spacing(header)
        sop_class = str(header.get("SOPClassUID", ""))
        return {
            "kind": self.kind,
            "modality": self.modality,
            "sop_class_uid": sop_class,
            "sop_class": _uid_name(sop_class),
            "transfer_syntax": _uid_name(str(_transfer_syntax(header) or "")),
            "frame": self.frame + 1,
            "frames": self.frames,
            "photometric_interpretation": self.photometric,
            "bits_stored": int(header.get("BitsStored", 0) or 0) or None,
            "pixel_spacing_mm": spacing,
            "pixel_spacing_source": spacing_source,
            "window": self.window_record(),
            IDENTIFYING: {
                "study_instance_uid": str(header.get("StudyInstanceUID", "")),
                "series_instance_uid": str(header.get("SeriesInstanceUID", "")),
                "sop_instance_uid": str(header.get("SOPInstanceUID", "")),
            },
        }


def frame_count(source: Source) -> int:
    """How many frames (items) a DICOM instance holds, from its header; ImageReadError for a
    file `DicomSource` would refuse."""
    return DicomSource(source).frames


def pixel_spacing(header: Any) -> tuple[Optional[list[float]], Optional[str]]:
    """(row spacing, column spacing) in mm and the attribute it came from: Pixel Spacing, else
    Imager Pixel Spacing divided by the Estimated Radiographic Magnification Factor when there
    is one ("ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"), else (None, None)."""
    if header.get("PixelSpacing"):
        return [float(v) for v in header.PixelSpacing], "PixelSpacing"
    if header.get("ImagerPixelSpacing"):
        spacing = [float(v) for v in header.ImagerPixelSpacing]
        factor = header.get("EstimatedRadiographicMagnificationFactor")
        if factor and float(factor) > 0:
            return [v / float(factor) for v in spacing], "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"
        return spacing, "ImagerPixelSpacing"
    return None, None


def _read_header(fp: BinaryIO, name: str) -> Any:
    """The dataset up to the pixel data (fp left at the pixel data element, when there is one)."""
    import pydicom

    head = fp.read(PREAMBLE + 4)
    fp.seek(0)
    try:
        return pydicom.dcmread(fp, stop_before_pixels=True, force=not magic(head))
    except Exception as e:  # pydicom raises many kinds on damaged headers
        raise ImageReadError(f"{name}: not a readable DICOM file ({type(e).__name__}: {str(e)[:200]})") from e


def _check_image(ds: Any, fp: BinaryIO, name: str) -> None:
    """ImageReadError unless the dataset is an image basam-ui can decode (fp at the pixel data)."""
    sop_class = str(ds.get("SOPClassUID", ""))
    if not sop_class:
        raise ImageReadError(f"{name}: not a readable DICOM file (it has no SOP Class UID: truncated, or not DICOM)")
    if sop_class == WHOLE_SLIDE:
        raise ImageReadError(
            f"{name}: a whole-slide image (DICOM VL Whole Slide Microscopy); DICOM slides are not read yet"
        )
    if sop_class in SEGMENTATIONS:
        raise ImageReadError(f"{name}: a DICOM Segmentation ({_uid_name(sop_class)}), annotations rather than an image")
    what = f"a {_uid_name(sop_class)}"
    if "Rows" not in ds or "Columns" not in ds or "PhotometricInterpretation" not in ds:
        if "Image Storage" in what:  # an image's header cut short
            raise ImageReadError(f"{name}: the file is truncated ({what} without its image attributes)")
        raise ImageReadError(f"{name}: has no pixel data ({what}), so there is no image to read")
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    if photometric not in MONOCHROME + COLOUR:
        raise ImageReadError(f"{name}: photometric interpretation {photometric} is not supported")
    syntax = _transfer_syntax(ds)
    if syntax is not None:
        from pydicom.pixels import get_decoder

        try:
            decodable = get_decoder(syntax).is_available
        except NotImplementedError:
            decodable = False
        if not decodable:
            raise ImageReadError(f"{name}: its transfer syntax {_uid_name(str(syntax))} cannot be decoded here")
        if syntax.is_deflated:  # fp is the inflated stream pydicom made: nothing to walk here
            return
    _check_pixel_element(ds, fp, name, what)


def _check_pixel_element(ds: Any, fp: BinaryIO, name: str, what: str) -> None:
    """Read the pixel data element's header where dcmread stopped: ImageReadError when there is
    none, or when the file ends before its value (native) or its last fragment (encapsulated)."""
    implicit, little = ds.original_encoding
    endian = "<" if little is not False else ">"
    start = fp.tell()
    end = fp.seek(0, io.SEEK_END)
    fp.seek(start)
    tag_bytes = fp.read(4)
    if len(tag_bytes) < 4:  # the header is an image's: its pixels were cut off
        raise ImageReadError(f"{name}: the file is truncated (it ends before its pixel data)")
    group, element = struct.unpack(f"{endian}HH", tag_bytes)
    tag = group << 16 | element
    if tag not in PIXEL_TAGS:
        raise ImageReadError(f"{name}: has no pixel data ({what}), so there is no image to read")
    if implicit:
        length_bytes = fp.read(4)
    else:
        vr = fp.read(2)
        length_bytes = fp.read(2 if vr not in _LONG_VRS else 6)[-4 if vr in _LONG_VRS else -2 :]
    if len(length_bytes) not in (2, 4):
        raise ImageReadError(f"{name}: the file is truncated (it ends in the pixel data's header)")
    length = struct.unpack(f"{endian}{'L' if len(length_bytes) == 4 else 'H'}", length_bytes)[0]
    truncated = ImageReadError(f"{name}: the file is truncated (it ends inside the pixel data)")
    if length != 0xFFFFFFFF:  # native: the value must hold every frame
        sample = PIXEL_TAGS[tag]
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1) * frames
        if str(ds.PhotometricInterpretation).strip().upper() == "YBR_FULL_422":  # two chroma samples per pixel pair
            samples = samples * 2 // 3
        bits = sample * 8 or int(ds.get("BitsAllocated", 8))
        needed = -(-samples * bits // 8)
        if length < needed or fp.tell() + length > end:
            raise truncated
        return
    while True:  # encapsulated: item headers up to the sequence delimiter
        item = fp.read(8)
        if len(item) < 8:
            raise truncated
        group, element, item_length = struct.unpack(f"{endian}HHL", item)
        if (group, element) == (0xFFFE, 0xE0DD):
            return
        if (group, element) != (0xFFFE, 0xE000) or fp.tell() + item_length > end:
            raise truncated
        fp.seek(item_length, io.SEEK_CUR)


def _frame_header(ds: Any, frame: int) -> Any:
    """The dataset as frame `frame` sees it: the shared, then the frame's own functional-group
    attributes (FRAME_MACROS) over the top-level ones (a copy; `ds` is unchanged)."""
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    groups = [g for g in (shared, per_frame[frame] if frame < len(per_frame) else None) if g is not None]
    if not groups:
        return ds
    header = copy_dataset(ds)
    for group in groups:
        for sequence, keywords in FRAME_MACROS.items():
            items = group.get(sequence)
            if items:
                for keyword in keywords:
                    if keyword in items[0]:
                        setattr(header, keyword, items[0].get(keyword))
    return header


def copy_dataset(ds: Any) -> Any:
    """A dataset whose attributes can be set or deleted without touching `ds` (copy.copy of a
    pydicom Dataset shares its elements' dictionary). Elements stay raw, nothing is decoded."""
    from pydicom import Dataset

    out = Dataset()
    out.update(ds)
    if getattr(ds, "file_meta", None) is not None:
        out.file_meta = ds.file_meta
    return out


def _to_8bit(rgb: np.ndarray, bits: int) -> np.ndarray:
    """Colour values of `bits` bits as uint8 (rounded)."""
    if rgb.dtype == np.uint8 and bits <= 8:
        return np.ascontiguousarray(rgb)
    scaled = rgb.astype(np.float32) * np.float32(255.0 / (2**bits - 1)) + np.float32(0.5)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _transfer_syntax(ds: Any) -> Any:
    """The file meta's Transfer Syntax UID, or None (a dataset without file meta)."""
    meta = getattr(ds, "file_meta", None)
    return meta.get("TransferSyntaxUID") if meta is not None else None


def _uid_name(value: str) -> str:
    """A UID's registered name (e.g. "Digital Mammography X-Ray Image Storage - For
    Presentation"), or the UID itself."""
    from pydicom.uid import UID

    return UID(value).name if value else ""


DICOM = SourceKind(
    "dicom", EXTENSIONS, magic, DicomSource, streams=True, options=frozenset({"frame", "window"}), frames=frame_count
)
